"""Setup and environment errors are not findings: their own exit status, one line.

Exit 1 means "invariants violated"; a CI job must never read a bad token or a
refused configuration as a race.  ``KERNSIM_TOKEN`` in the environment is
given to the services and said by the launcher in every hello.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kernsim.exits import Exit
from tests.support.processes import ServiceProcess

EXIT_SETUP = Exit.SETUP


def _kernsim(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KERNSIM_")} | env
    return subprocess.run(
        [sys.executable, "-m", "kernsim", *args],
        env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_run_with_a_token_in_the_environment_uses_it() -> None:
    r = _kernsim("run", "--duration", "2", "--variant", "upstream", "--json",
                 env={"KERNSIM_TOKEN": "s3cret"})  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 1), r.stderr
    result = json.loads(r.stdout.splitlines()[0])
    assert result["variant"] == "upstream" and result["ops"] > 0


@pytest.mark.parametrize("command", [["run", "--duration", "2"], ["up"]])
def test_a_service_that_refuses_its_configuration_is_a_setup_error(command: list[str]) -> None:
    # No token on a non-loopback address: every service refuses to start (and binds nothing).
    r = _kernsim(*command, env={"KERNSIM_HOST": "0.0.0.0"})
    assert r.returncode == EXIT_SETUP, (r.returncode, r.stderr)
    # Progress phase lines ("kernsim: none: starting the six services") may come first;
    # the error itself is one line, the last, and no traceback.
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in lines if "error" in line]
    assert errors == lines[-1:] and errors[0].startswith("kernsim: setup error: service "), r.stderr
    assert "without a token" in errors[0]


def test_a_bad_limit_is_a_setup_error() -> None:
    r = _kernsim("run", "--duration", "2", env={"KERNSIM_MAX_CONNECTIONS": "0"})
    assert r.returncode == EXIT_SETUP, (r.returncode, r.stderr)
    assert "bad configuration: max_connections: must be a finite number > 0" in r.stderr


def test_an_unusable_out_folder_is_a_setup_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = _kernsim("run", "--duration", "2", "--out", str(blocker / "run"), env={})
    assert r.returncode == EXIT_SETUP, (r.returncode, r.stderr)
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("kernsim: setup error: --out ")


@pytest.mark.parametrize(
    "env",
    [
        {"KERNSIM_PAGE_CLUSTER": "9"},
        {"KERNSIM_SEED": "-1"},
        {"KERNSIM_RPC_TIMEOUT_S": "0"},
        {"KERNSIM_EVENT_LOOP": "libev"},
    ],
)
def test_a_service_refuses_a_bad_value_in_its_environment(env: dict[str, str]) -> None:
    """The compose file configures services through KERNSIM_*: a value the model would
    refuse later (page_cluster 9 in MmConfig) is refused at start with status 2 and a
    line naming it, before the service serves anything."""
    svc = ServiceProcess("mm", env=env)
    try:
        assert svc.proc.wait(timeout=60) == Exit.USAGE
        assert svc.proc.stderr is not None
        err = svc.proc.stderr.read().decode()
        (name,) = env
        assert name.removeprefix("KERNSIM_").lower() in err, err
    finally:
        svc.stop()


@pytest.mark.parametrize("flag", ["--port", "--admin-port"])
def test_a_port_in_use_is_one_line_and_status_2(flag: str) -> None:
    # What compose's single-service entry point meets when a port is taken.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KERNSIM_")}
        r = subprocess.run(
            [sys.executable, "-m", "kernsim.services.memcg", flag, str(port)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == Exit.USAGE, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    what = "rpc" if flag == "--port" else "admin"
    assert f"memcg: {what} port 127.0.0.1:{port}: Address already in use" in r.stderr
