"""The cluster across hosts: three network namespaces joined by a bridge.

Each namespace stands for a host with its own address (10.200.0.2-4, made
here and only inside these namespaces and on the bridge); two services run in
each, bound to that address with the shared token.  ``kernsim run --services``
drives them from the host (10.200.0.1 on the bridge).  The leak must show
under vanilla 2.6.30 and not under 2.6.31's fix, as on loopback
(test_leak_and_prometheus.py): vanilla runs up to ``ROUNDS`` experiments on
the same services and stops at the first memsw leak; the fix runs one.

Everything is torn down in finally blocks: the services by pid, then the
namespaces and the bridge.  Needs root and iproute2; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kernsim.services.runtime.config import SERVICES

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2 (ip); CI runs as root with both",
)

SUBNET = "10.200.0"
HOST_ADDR = f"{SUBNET}.1"
#: Which namespace ("host") each service runs in.
PLACEMENT = {"mm": 0, "memcg": 0, "blockdev": 1, "vmscan": 1, "workqueue": 2, "tasks": 2}
RPC_PORT = {s: 7001 + i for i, s in enumerate(SERVICES)}
ADMIN_PORT = {s: 9001 + i for i, s in enumerate(SERVICES)}
TOKEN = "multihost-test-token"
PROFILE = "cluster-hdd"
ROUNDS = 8
DURATION_S = 15


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def namespaces() -> Iterator[list[str]]:
    """Three namespaces on one bridge; yields their names.  Always torn down."""
    tag = f"{os.getpid() % 100000}"
    bridge, names, links = f"ksb{tag}", [f"ksim{tag}-{i}" for i in range(3)], []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{HOST_ADDR}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, ns in enumerate(names):
            outer, inner = f"ksv{tag}{i}", f"ksp{tag}{i}"
            _ip("netns", "add", ns)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            links.append(outer)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", outer, "master", bridge, "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{i + 2}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        _teardown(bridge, names, links)
        pytest.skip(f"cannot create network namespaces here: {exc.stderr.decode().strip()}")
    try:
        yield names
    finally:
        _teardown(bridge, names, links)


def _teardown(bridge: str, names: list[str], links: list[str]) -> None:
    for args in [["netns", "del", ns] for ns in names] + [["link", "del", x] for x in links]:
        subprocess.run(["ip", *args], capture_output=True, timeout=30)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=30)


def _addr(service: str) -> str:
    return f"{SUBNET}.{PLACEMENT[service] + 2}"


def services_arg() -> str:
    return ",".join(f"{s}={_addr(s)}:{RPC_PORT[s]}" for s in SERVICES)


@contextmanager
def services(names: list[str], variant: str, logs: Path) -> Iterator[None]:
    """The six services in their namespaces, as docs/multihost.md runs them per host."""
    lifeline_r, lifeline_w = os.pipe()  # they stop by themselves if this test dies
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for s in SERVICES:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("KERNSIM_")},
                "KERNSIM_HOST": _addr(s),
                "KERNSIM_PORT": str(RPC_PORT[s]),
                "KERNSIM_ADMIN_PORT": str(ADMIN_PORT[s]),
                "KERNSIM_PEERS": services_arg(),
                "KERNSIM_TOKEN": TOKEN,
                "KERNSIM_VARIANT": variant,
                "KERNSIM_FAULTS": PROFILE,
                "KERNSIM_LOG_LEVEL": "WARNING",
                "KERNSIM_LIFELINE_FD": str(lifeline_r),
            }
            with open(logs / f"{variant}-{s}.log", "wb") as log:
                cmd = ["ip", "netns", "exec", names[PLACEMENT[s]]]
                cmd += [sys.executable, "-m", f"kernsim.services.{s}"]
                procs.append(
                    subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, pass_fds=(lifeline_r,))
                )  # fmt: skip
        _wait_listening(procs)
        yield
    finally:
        os.close(lifeline_r)
        os.close(lifeline_w)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(30)


def _wait_listening(procs: list[subprocess.Popen[bytes]], timeout_s: float = 30) -> None:
    """Poll until every service accepts a TCP connection from the host."""
    deadline = time.monotonic() + timeout_s
    for s in SERVICES:
        while True:
            assert all(p.poll() is None for p in procs), "a service exited at start"
            try:
                socket.create_connection((_addr(s), RPC_PORT[s]), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"{s} not listening in {timeout_s} s"
                time.sleep(0.1)  # the poll period


def kernsim_run(variant: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNSIM_")}
    env["KERNSIM_TOKEN"] = TOKEN
    r = subprocess.run(
        [sys.executable, "-m", "kernsim", "run", "--services", services_arg(),
         "--variant", variant, "--duration", str(DURATION_S), "--json"],
        env=env, capture_output=True, text=True, timeout=DURATION_S * 3 + 300,
    )  # fmt: skip
    assert r.returncode in (0, 1), (r.returncode, r.stderr)
    result: dict[str, Any] = json.loads(r.stdout.splitlines()[0])
    return result


def test_the_leak_shows_across_hosts_under_vanilla_and_not_under_the_fix(
    tmp_path: Path,
) -> None:
    with namespaces() as names:
        with services(names, "none", tmp_path):
            vanilla = []
            for _ in range(ROUNDS):
                vanilla.append(kernsim_run("none"))
                if vanilla[-1]["memsw_leak_bytes"] > 0:
                    break
        with services(names, "upstream", tmp_path):
            fixed = kernsim_run("upstream")
    assert all(r["faults"] == PROFILE and r["messages"] > 0 for r in [*vanilla, fixed])
    kinds = {v["kind"] for r in vanilla for v in r["violations"]}
    seen = [(r["swap_slots_used"], r["stale_swapcache_pages"]) for r in vanilla]
    assert vanilla[-1]["memsw_leak_bytes"] > 0, f"no leak in {len(vanilla)} runs: {seen}"
    assert "memsw_leak" in kinds and "service_error" not in kinds
    assert fixed["memsw_leak_bytes"] == 0, fixed
    fixed_kinds = {v["kind"] for v in fixed["violations"]}
    assert not fixed_kinds & {"memsw_leak", "memsw_accounting", "service_error"}, fixed


def test_a_wrong_token_is_a_setup_error_across_hosts(tmp_path: Path) -> None:
    with namespaces() as names, services(names, "none", tmp_path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KERNSIM_")}
        env["KERNSIM_TOKEN"] = "not-the-token"
        r = subprocess.run(
            [sys.executable, "-m", "kernsim", "run", "--services", services_arg(),
             "--duration", "2"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert r.returncode == 4, r.stderr
    # Progress phase lines may come first; the error is one line, the last.
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("kernsim: setup error: the services refused the launcher's hello")
