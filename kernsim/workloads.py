"""The scenarios' workloads: task programs and the controllers that start and kill them.

One copy serves both ways of running kernsim: the simulation's World and the
cluster's tasks service each implement :class:`Machine`, and the programs
only use the Cpu port, so "three tasks touch 1M each, pkill every 3 s" is the
same code on the virtual clock and on real processes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from kernsim.model.madvise import madvise_dontneed
from kernsim.model.memory import VM_FAULT_OOM, do_page_fault
from kernsim.model.mmap import do_munmap
from kernsim.model.port import Cpu

Program = Callable[[Cpu], Coroutine[Any, Any, None]]
#: A thread's program: its CPU and the mm it shares (the pid of the task that exec'd it).
ThreadProgram = Callable[[Cpu, int], Coroutine[Any, Any, None]]


class Machine(Protocol):
    """What a controller needs from the machine it loads."""

    rng: random.Random

    def spawn_task(self, program: Program, threads: Sequence[ThreadProgram] = ()) -> Cpu: ...
    def kill_all(self) -> Any: ...
    def sleep(self, delay_s: float) -> Awaitable[None]: ...
    def wait_exited(self) -> Awaitable[None]: ...
    @property
    def ntasks(self) -> int: ...


async def touch(cpu: Cpu, addr: int, mm: int = 0) -> bool:
    """A write to ``addr`` of mm ``mm`` (default: the task's own); retries a fault the
    memcg OOM path refused.  False when killed."""
    while not cpu.fatal_signal_pending():
        if await do_page_fault(cpu, mm or cpu.task, addr, True) != VM_FAULT_OOM:
            return True
        await cpu.sleep(0.001)  # pagefault_out_of_memory(): back to user, fault again
    return False


class Progress:
    """How far one task got: the pages it has written so far, and whether its program
    has returned (killed, by pkill or by the memcg OOM killer)."""

    __slots__ = ("done", "touches")

    def __init__(self) -> None:
        self.touches = 0
        self.done = False


def malloc_and_touch(
    npages: int, think_s: float, passes: int = 0, progress: Progress | None = None
) -> Program:
    """A task that allocates ``npages`` and writes them all, again and again, ``think_s``
    apart (``passes`` times, or until killed when 0); ``progress`` counts its writes."""

    async def program(cpu: Cpu) -> None:
        done = 0
        try:
            while not cpu.fatal_signal_pending() and (passes == 0 or done < passes):
                for addr in range(npages):
                    if not await touch(cpu, addr):
                        return
                    if progress is not None:
                        progress.touches += 1
                done += 1
                await cpu.sleep(think_s)
        finally:
            if progress is not None:
                progress.done = True

    return program


async def kamezawa(m: Machine, p: dict[str, Any]) -> None:
    """while true; do malloc_and_touch 1M & x3; sleep 3; pkill malloc_and_touch; done

    pkill does not wait: the next round's tasks start (a few ms apart, as fork and
    exec take) while the killed ones are still exiting, so their charges and memcg
    reclaim meet the exits.

    The period is counted in the tasks' progress as well as in seconds.  Kamezawa's
    3 s assume a machine on which a task writes its 1M many times in 3 s: every kill
    finds the tasks writing pages a second time, so faulting them back in from swap,
    with swap-in readahead in flight (the window the leak needs).  The simulation's
    tasks do so too (several passes in 3 virtual seconds).  A machine slow next to its
    disk, or loaded, may not: its tasks may still be in their first pass after 3 s, and
    a kill then catches no swap-in at all.  So the kill waits, past ``period_s``,
    until every task still running has written all its pages ``passes_before_kill``
    times and at least one page more (polling every ``progress_poll_s``), or at most
    ``progress_wait_s`` more (default ten periods).  Where the tasks are already that
    far after ``period_s``, as in the simulation, the wait adds no event: the trace is
    the same.
    """
    for _ in range(p["rounds"]):
        tasks = [Progress() for _ in range(p["tasks"])]
        for progress in tasks:
            m.spawn_task(malloc_and_touch(p["pages"], p["think_s"], progress=progress))
            await m.sleep(m.rng.uniform(0.0, p["fork_s"]))
        await m.sleep(p["period_s"])
        await _until_written_again(m, tasks, p)
        m.kill_all()
    await m.wait_exited()


async def _until_written_again(m: Machine, tasks: Sequence[Progress], p: dict[str, Any]) -> None:
    """Until every running task has written more than ``passes_before_kill`` passes of
    pages (no wait when they all have), or ``progress_wait_s`` went by."""
    target = p.get("passes_before_kill", 1) * p["pages"]
    poll_s = p.get("progress_poll_s", 0.05)
    waited = 0.0
    while waited < p.get("progress_wait_s", 10 * p["period_s"]) and any(
        not t.done and t.touches <= target for t in tasks
    ):
        await m.sleep(poll_s)
        waited += poll_s


async def nishimura(m: Machine, p: dict[str, Any]) -> None:
    """Tasks that allocate, touch and exit, restarted as each one exits
    (``generations`` times over, or until ``duration_s`` when given)."""
    program = malloc_and_touch(p["pages"], p["think_s"], passes=p["passes"])
    total = p["tasks"] * p["generations"]
    deadline = p.get("duration_s", math.inf)
    started, elapsed = 0, 0.0
    while started < total and elapsed < deadline:
        while m.ntasks < p["tasks"] and started < total:
            m.spawn_task(program)
            started += 1
        await m.sleep(0.01)
        elapsed += 0.01
    await m.wait_exited()


async def race(m: Machine, p: dict[str, Any]) -> None:
    """Tasks touch their pages; at a seeded random moment every task is killed."""
    for _ in range(p["tasks"]):
        m.spawn_task(malloc_and_touch(p["pages"], p["think_s"]))
    await m.sleep(m.rng.uniform(p["kill_min_s"], p["kill_max_s"]))
    m.kill_all()
    await m.wait_exited()


def touch_thread(npages: int, think_s: float) -> ThreadProgram:
    """A thread that writes the pages of the mm it shares, last to first, again and again
    (the other thread of the same mm writes them first to last)."""

    async def program(cpu: Cpu, mm: int) -> None:
        while not cpu.fatal_signal_pending():
            for addr in reversed(range(npages)):
                if not await touch(cpu, addr, mm):
                    return
            await cpu.sleep(think_s)

    return program


def dontneed_thread(
    rng: random.Random, npages: int, span: int, think_s: float, munmap_every: int = 0
) -> ThreadProgram:
    """A thread that drops ``span`` pages of the mm it shares at a time, from a random
    page on: madvise(MADV_DONTNEED), or munmap() every ``munmap_every``-th time (0:
    never)."""

    span = min(span, npages)

    async def program(cpu: Cpu, mm: int) -> None:
        n = 0
        while not cpu.fatal_signal_pending():
            await cpu.sleep(think_s)
            addr = rng.randrange(npages - span + 1)
            n += 1
            if munmap_every and n % munmap_every == 0:
                await do_munmap(cpu, mm, addr, addr + span)
            else:
                await madvise_dontneed(cpu, mm, addr, addr + span)

    return program


async def race_threads(m: Machine, p: dict[str, Any]) -> None:
    """Processes of three threads sharing one mm: two write its pages, one drops pages
    with MADV_DONTNEED (mmap_sem read) or munmap (mmap_sem write); all killed at a seeded
    random moment."""
    pages, think_s = p["pages"], p["think_s"]
    for _ in range(p["tasks"]):
        m.spawn_task(
            malloc_and_touch(pages, think_s),
            threads=[
                touch_thread(pages, think_s),
                dontneed_thread(
                    m.rng, pages, p["dontneed_pages"], p["dontneed_s"], p["munmap_every"]
                ),
            ],
        )
    await m.sleep(m.rng.uniform(p["kill_min_s"], p["kill_max_s"]))
    m.kill_all()
    await m.wait_exited()


CONTROLLERS: dict[str, Callable[[Machine, dict[str, Any]], Awaitable[None]]] = {
    "kamezawa": kamezawa,
    "nishimura": nishimura,
    "race": race,
    "race-threads": race_threads,
}
