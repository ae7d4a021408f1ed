"""The scenarios' workloads on the cluster, with kernsim.sim.scenarios' parameters.

The simulation's controllers drive a World on the virtual clock; these drive
the tasks service's ``Machine`` in real time, step for step the same
programs: kamezawa's "three tasks touch 1M each, pkill every period", and
the rest.  ``duration_s`` sets how long the load runs: kamezawa keeps its
round count at least, and shortens its period to fit when asked to.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from kernsim.services.remote_cpu import RemoteCpu

from kernsim.model.memory import VM_FAULT_OOM, handle_mm_fault

Program = Callable[[RemoteCpu], Coroutine[Any, Any, None]]


class Machine(Protocol):
    """What a controller needs from the machine it loads."""

    rng: random.Random

    def spawn_task(self, program: Program) -> RemoteCpu: ...
    def kill_all(self) -> int: ...
    def sleep(self, delay_s: float) -> Awaitable[None]: ...
    def wait_exited(self) -> Awaitable[None]: ...
    @property
    def ntasks(self) -> int: ...


async def touch(cpu: RemoteCpu, addr: int) -> bool:
    """A write to ``addr``; retries a fault the memcg OOM path refused. False when killed."""
    while not cpu.fatal_signal_pending():
        if await handle_mm_fault(cpu, cpu.task, addr, True) != VM_FAULT_OOM:
            return True
        await cpu.sleep(0.001)  # pagefault_out_of_memory(): back to user, fault again
    return False


def malloc_and_touch(npages: int, think_s: float, passes: int = 0) -> Program:
    """Allocate ``npages`` and write them all, ``think_s`` apart, ``passes`` times (0: forever)."""

    async def program(cpu: RemoteCpu) -> None:
        done = 0
        while not cpu.killed and (passes == 0 or done < passes):
            for addr in range(npages):
                if not await touch(cpu, addr):
                    return
            done += 1
            await cpu.sleep(think_s)

    return program


async def kamezawa(m: Machine, p: dict[str, Any], duration_s: float) -> None:
    """while true; do malloc_and_touch 1M & x3; sleep PERIOD; pkill malloc_and_touch; done"""
    period_s = min(p["period_s"], duration_s / p["rounds"])
    rounds = max(p["rounds"], int(duration_s // period_s))
    for _ in range(rounds):
        for _ in range(p["tasks"]):
            m.spawn_task(malloc_and_touch(p["pages"], p["think_s"]))
            await m.sleep(m.rng.uniform(0.0, p["fork_s"]))
        await m.sleep(period_s)
        m.kill_all()
    await m.wait_exited()


async def nishimura(m: Machine, p: dict[str, Any], duration_s: float) -> None:
    """Tasks that allocate, touch and exit, restarted as each exits, for up to ``duration_s``."""
    program = malloc_and_touch(p["pages"], p["think_s"], passes=p["passes"])
    total = p["tasks"] * p["generations"]
    started = 0
    elapsed = 0.0
    while started < total and elapsed < duration_s:
        while m.ntasks < p["tasks"] and started < total:
            m.spawn_task(program)
            started += 1
        await m.sleep(0.01)
        elapsed += 0.01
    await m.wait_exited()


async def race(m: Machine, p: dict[str, Any], duration_s: float) -> None:
    """Tasks touch their pages; at a seeded random moment every task is killed."""
    for _ in range(p["tasks"]):
        m.spawn_task(malloc_and_touch(p["pages"], p["think_s"]))
    await m.sleep(m.rng.uniform(p["kill_min_s"], p["kill_max_s"]))
    m.kill_all()
    await m.wait_exited()


CONTROLLERS: dict[str, Callable[[Machine, dict[str, Any], float], Awaitable[None]]] = {
    "kamezawa": kamezawa,
    "nishimura": nishimura,
    "race": race,
}
