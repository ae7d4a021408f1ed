"""A real distributed run: a Dask scheduler and two workers, each its own process on
127.0.0.1, run `kernsim explore --executor dask://...`; the failures are the ones
`--jobs 1` finds for the same seeds."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernsim.cli import main

distributed = pytest.importorskip("dask.distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dask_cli() -> list[str]:
    exe = shutil.which("dask", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "dask"]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Workers first, then the scheduler: a worker closing on SIGTERM talks to it."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


def _workers(address: str) -> int:
    client: Any = distributed.Client(address, timeout="5s")
    try:
        return len(client.scheduler_info()["workers"])
    finally:
        client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = (tmp_path / "dask.log").open("wb")
    dask = _dask_cli()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard", "--no-show"], stdout=log, stderr=log))  # fmt: skip
        for _ in range(2):
            procs.append(subprocess.Popen(
                [*dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--no-dashboard", "--no-nanny"], stdout=log, stderr=log))  # fmt: skip
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline:  # poll, with a deadline, until both are up
            if any(p.poll() is not None for p in procs):
                raise AssertionError(
                    f"a dask process exited: {(tmp_path / 'dask.log').read_text()}"
                )
            try:
                seen = _workers(address)
            except OSError:
                seen = 0
            if seen == 2:
                break
            time.sleep(0.2)
        assert seen == 2, f"2 workers not up in 60 s: {(tmp_path / 'dask.log').read_text()}"
        yield f"dask://127.0.0.1:{port}"
    finally:
        _stop(procs)
        log.close()


def _explore(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    argv = ["explore", "--scenario", "race", "--variant", "none", "--strategy", "random",
            "--schedules", "24", "--seed", "5", "--shrink-budget", "10",
            "--json", *extra]  # fmt: skip
    status = main(argv)
    s: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert status == (1 if s["failures"] else 0)
    return s


def _failures(s: dict[str, Any]) -> Any:
    races = sorted((r["class"], r["kinds"], r["count"], r["seeds"], r.get("trace_sha256"))
                   for r in s["races"])  # fmt: skip
    return s["failures"], s["first_failure_at"], s["coverage"], races


def test_two_dask_worker_processes_find_what_one_process_finds(
    cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = _explore(capsys, "--executor", cluster)
    local = _explore(capsys, "--jobs", "1")
    assert remote["schedules_run"] == local["schedules_run"] == 24
    assert local["failures"] > 0  # the comparison is about something
    assert _failures(remote) == _failures(local)
