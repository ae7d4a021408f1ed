"""The scenarios' workloads: task programs and the controllers that start and kill them.

One copy serves both ways of running kernsim: :class:`TaskGroup` implements
the controllers' :class:`Machine` once (fork, exec, clone, exit, pkill, the
OOM killer's kill), and the simulation's World and the cluster's tasks service
each add only how a CPU is made, started and signalled on their clock; the
programs only use the Cpu port, so "three tasks touch 1M each, pkill every
3 s" is the same code on the virtual clock and on real processes.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar

from kernsim.model.fork import mm_init, mm_users_inc
from kernsim.model.madvise import madvise_dontneed
from kernsim.model.memcontrol import mem_cgroup_attach_task
from kernsim.model.memory import VM_FAULT_OOM, do_page_fault
from kernsim.model.mmap import do_munmap, exit_mm
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


C = TypeVar("C", bound=Cpu)


class TaskGroup(ABC, Generic[C]):
    """The Machine, once: the tasks of cgroup /A and their thread groups, and how they
    are forked, exec'd, cloned, reaped, killed by pkill and by the memcg OOM killer.

    A backend keeps the tables below (as fields or in its ``__init__``) and says how
    a task's CPU is made (:meth:`_new_cpu`), started (:meth:`_start`) and sent
    SIGKILL (:meth:`_signal`), and how the shell sleeps (``sleep``).
    """

    tasks: dict[int, C]
    #: Thread groups: each task's mm (the pid of the task that exec'd it).
    mm_of: dict[int, int]
    memcg_id: int
    next_task: int
    exited: int
    #: Tasks the memcg OOM killer chose: a count (a list of pids would grow for as long
    #: as a service runs).
    oom_killed: int
    #: How often ``wait`` looks whether every task has exited.
    exit_poll_s: float = 0.001

    @abstractmethod
    def _new_cpu(self, name: str, task: int) -> C:
        """A CPU for task ``task`` of /A (not started)."""

    @abstractmethod
    def _start(self, cpu: C, life: Coroutine[Any, Any, None]) -> None:
        """Run ``life`` on ``cpu`` from now on."""

    @abstractmethod
    def _signal(self, cpu: C, memdie: bool) -> None:
        """SIGKILL (with TIF_MEMDIE when ``memdie``): the task exits at its next return
        to user space."""

    @abstractmethod
    def sleep(self, delay_s: float) -> Awaitable[None]:
        """The shell's sleep (``sleep 3`` between rounds)."""

    @property
    def ntasks(self) -> int:
        return len(self.tasks)

    def new_task_cpu(self, name: str | None = None, mm: int = 0) -> C:
        """fork: a task of cgroup /A on a CPU of its own (not started), in the thread
        group of mm ``mm`` (default: its own)."""
        tid = self.next_task
        self.next_task += 1
        cpu = self._new_cpu(name or f"task{tid}", tid)
        self.tasks[tid] = cpu
        self.mm_of[tid] = mm or tid
        return cpu

    def spawn_task(
        self, program: Program, threads: Sequence[ThreadProgram] = (), name: str | None = None
    ) -> C:
        """fork + exec into cgroup /A: a new task running ``program`` from now on; it then
        clone()s one thread (CLONE_VM) per entry of ``threads``, which shares its mm."""
        cpu = self.new_task_cpu(name)
        self._start(cpu, self._life(cpu, program, threads))
        return cpu

    async def exec_task(self, cpu: C) -> None:
        """exec: an empty address space, and the task joins /A's tasks file."""
        await cpu.call(mm_init, cpu.task, self.memcg_id)
        await cpu.call(mem_cgroup_attach_task, self.memcg_id, cpu.task)

    async def _life(self, cpu: C, program: Program, threads: Sequence[ThreadProgram]) -> None:
        await self.exec_task(cpu)
        for thread in threads:
            await self._clone(cpu, thread)
        await program(cpu)
        await self.exit_task(cpu)

    async def _clone(self, parent: C, thread: ThreadProgram) -> None:
        """do_fork(CLONE_VM): copy_mm() takes an mm_users reference in the parent, then
        the thread joins the parent's cgroup and runs."""
        if parent.fatal_signal_pending():
            return  # copy_process(): a fatal signal is pending, no new thread
        mm = self.mm_of.get(parent.task, parent.task)
        cpu = self.new_task_cpu(mm=mm)
        try:
            await parent.call(mm_users_inc, mm, cpu.task)
            await parent.call(mem_cgroup_attach_task, self.memcg_id, cpu.task)
        except BaseException:
            self.reap(cpu)
            raise
        self._start(cpu, self._thread_life(cpu, mm, thread))

    async def _thread_life(self, cpu: C, mm: int, thread: ThreadProgram) -> None:
        await thread(cpu, mm)
        await self.exit_task(cpu)

    async def exit_task(self, cpu: C) -> None:
        """exit(): leave the mm (the last user tears it down) and the cgroup."""
        await exit_mm(cpu, self.mm_of.get(cpu.task, cpu.task))
        self.reap(cpu)

    def reap(self, cpu: C) -> None:
        """The task is gone: out of the tables (once, however its life ended)."""
        if self.tasks.pop(cpu.task, None) is not None:
            self.mm_of.pop(cpu.task, None)
            self.exited += 1

    def kill(self, task: int, memdie: bool = False) -> None:
        """Send SIGKILL to ``task`` (nothing when it is gone or already killed)."""
        cpu = self.tasks.get(task)
        if cpu is not None and not cpu.fatal_signal_pending():
            self._signal(cpu, memdie)

    def kill_all(self) -> int:
        """``pkill``: every task of the cgroup; how many there were."""
        for task in sorted(self.tasks):
            self.kill(task)
        return len(self.tasks)

    def oom_kill(self, task: int) -> None:
        """The memcg OOM killer's SIGKILL, with TIF_MEMDIE, to every task of the chosen
        task's mm (oom_kill_process() kills the threads sharing it too)."""
        self.oom_killed += 1
        mm = self.mm_of.get(task, task)
        for tid in sorted(self.tasks):
            if tid == task or self.mm_of.get(tid) == mm:
                self.kill(tid, memdie=True)

    async def wait_exited(self) -> None:
        """``wait``: until every task has exited."""
        while self.tasks:
            await self.sleep(self.exit_poll_s)


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


class ForkMachine(Machine, Protocol):
    """A machine whose tasks can fork (the simulation's World; the cluster's tasks
    service has no fork)."""

    def fork(self, parent: Cpu, program: Program) -> Awaitable[Cpu | None]: ...


def fork_and_touch(
    m: ForkMachine, npages: int, think_s: float, child: Program, forks: int
) -> Program:
    """A task that writes its ``npages`` pages, then forks a child running ``child``
    (sharing them: the present ones write-protected, the swapped ones by swap count)
    after each of its first ``forks`` passes, and goes on writing them until killed."""

    async def program(cpu: Cpu) -> None:
        done = 0
        while not cpu.fatal_signal_pending():
            for addr in range(npages):
                if not await touch(cpu, addr):
                    return
            if done < forks:
                await m.fork(cpu, child)
                done += 1
            await cpu.sleep(think_s)

    return program


def touch_reversed(npages: int, think_s: float, passes: int, nwrite: int) -> Program:
    """A task that writes the last ``nwrite`` of its ``npages`` pages, last to first,
    ``passes`` times, then exits."""

    async def program(cpu: Cpu) -> None:
        for _ in range(passes):
            for addr in reversed(range(npages - nwrite, npages)):
                if not await touch(cpu, addr):
                    return
            await cpu.sleep(think_s)

    return program


async def race_fork(m: ForkMachine, p: dict[str, Any]) -> None:
    """Tasks write their pages and fork a child that writes some of the same pages
    (copy-on-write of the present ones, swap-in of the shared swapped ones) and exits
    while its parent goes on writing them all; every task is killed at a seeded random
    moment."""
    pages, think_s = p["pages"], p["think_s"]
    child = touch_reversed(pages, think_s, p["child_passes"], p["child_pages"])
    for _ in range(p["tasks"]):
        m.spawn_task(fork_and_touch(m, pages, think_s, child, p["forks"]))
    await m.sleep(m.rng.uniform(p["kill_min_s"], p["kill_max_s"]))
    m.kill_all()
    await m.wait_exited()


CONTROLLERS: dict[str, Callable[[Machine, dict[str, Any]], Awaitable[None]]] = {
    "kamezawa": kamezawa,
    "nishimura": nishimura,
    "race": race,
    "race-threads": race_threads,
}
