"""A loaded machine starts the services slowly; that is no failure, a stuck service is.

The start of a cluster is judged by the services' CPU time, not the wall clock
(services/launch/patience.py): a service that keeps being given CPU is starting,
however long it takes; one that is stopped, or is given no CPU for a while, is
named at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess

import pytest
from kernsim.services.launch import cluster as launch_cluster
from kernsim.services.launch.cluster import Cluster, ServiceFailure
from kernsim.services.launch.patience import Stalled, StartWatch, cpu_ticks, until_done_or_stalled


class _Clock:
    """A pid's CPU ticks and state as the test sets them."""

    def __init__(self) -> None:
        self.ticks = {1: 10, 2: 10}
        self.states = {1: "R", 2: "R"}


def _watch(c: _Clock, idle_s: float = 30.0) -> StartWatch:
    return StartWatch({"mm": 1, "memcg": 2}, 0.0, idle_s, c.ticks.get, c.states.get)


def test_a_service_given_cpu_is_never_stuck_however_long_it_takes() -> None:
    c = _Clock()
    w = _watch(c)
    # An hour of wall time in steps of 20 s, each with one tick of CPU: a loaded machine.
    for step in range(1, 180):
        c.ticks[1] += 1
        c.ticks[2] += 1
        assert w.check(step * 20.0, ["mm", "memcg"]) is None


def test_a_service_given_no_cpu_for_idle_s_is_named() -> None:
    c = _Clock()
    w = _watch(c, idle_s=30.0)
    c.ticks[1] += 5
    assert w.check(20.0, ["mm", "memcg"]) is None
    c.ticks[1] += 5
    assert w.check(31.0, ["mm", "memcg"]) == (
        "memcg",
        "used no CPU for 30 s before answering its health check",
    )
    # Once healthy, a service is no longer waited for: idle is then its normal state.
    assert w.check(60.0, ["mm"]) is None


def test_a_stopped_service_is_named_at_once() -> None:
    c = _Clock()
    w = _watch(c)
    c.states[1] = "T"
    found = w.check(0.1, ["mm", "memcg"])
    assert found is not None and found[0] == "mm" and "stopped" in found[1]


def test_cpu_ticks_reads_this_process_and_nothing_for_a_gone_one() -> None:
    ticks = cpu_ticks(os.getpid())
    assert ticks is not None and ticks >= 0
    p = subprocess.Popen(["true"])
    p.wait()
    assert cpu_ticks(p.pid) is None


class _StopsOne(Cluster):
    """A cluster whose ``victim`` is stopped (SIGSTOP) as soon as it is spawned."""

    victim = "memcg"

    def _spawn(self, name: str, peers: str, lifeline: int) -> subprocess.Popen[bytes]:
        proc = super()._spawn(name, peers, lifeline)
        if name == self.victim:
            os.kill(proc.pid, signal.SIGSTOP)
        return proc


async def test_a_service_stopped_while_starting_is_named_not_waited_out() -> None:
    cluster = _StopsOne(variant="none", scenario="kamezawa", faults="none")
    try:
        with pytest.raises(ServiceFailure) as got:
            await cluster.start()
        assert got.value.service == "memcg", got.value
        assert "stopped" in str(got.value) and "health check" in str(got.value), got.value
    finally:
        await cluster.stop()


async def test_a_wait_that_sees_the_kernel_progress_is_never_cut_short() -> None:
    steps = 0
    done = asyncio.Event()

    async def progress() -> int:
        nonlocal steps
        steps += 1
        if steps == 50:  # many readings, far past stall_s, each with a new step
            done.set()
        return steps

    async def workload() -> str:
        await done.wait()
        return "ended"

    assert await until_done_or_stalled(workload(), progress, 0.05, every_s=0.01) == "ended"


async def test_a_wait_on_a_kernel_that_makes_no_step_is_a_stall() -> None:
    forever = asyncio.Event()

    async def progress() -> int:
        return 7

    with pytest.raises(Stalled, match=r"no step for 0\.05 s"):
        await until_done_or_stalled(forever.wait(), progress, 0.05, every_s=0.01)


async def test_a_port_taken_before_its_service_binds_it_starts_the_services_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another cluster starting at the same time may bind a port found free before the
    # service it was meant for does: the services start again on other ports.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    calls: list[list[int]] = []

    free_ports = launch_cluster.free_ports

    def ports_once_taken(n: int) -> list[int]:
        ports = free_ports(n)
        if not calls:
            ports[0] = taken.getsockname()[1]  # mm's RPC port
        calls.append(ports)
        return ports

    monkeypatch.setattr(launch_cluster, "free_ports", ports_once_taken)
    cluster = Cluster(variant="none", scenario="kamezawa", faults="none")
    try:
        await cluster.start()
        assert len(calls) == 2, calls
        assert (await cluster.rpc("mm", "ping")) is not None
    finally:
        await cluster.stop()
        taken.close()
