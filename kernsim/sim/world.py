"""A simulated machine: the engine, one memcg, the tasks, and the workloads they run."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from kernsim.faults import Profile
from kernsim.model.fork import dup_mmap
from kernsim.model.memcontrol import MemcgState, mem_cgroup_attach_task, mem_cgroup_resize_limit
from kernsim.model.memory import exit_mm, mm_init, mm_users_inc
from kernsim.model.mm import MmConfig, MmState
from kernsim.model.port import Cpu
from kernsim.sim.engine import Engine, SimCpu, Strategy
from kernsim.variants.base import Variant
from kernsim.workloads import Program, ThreadProgram


@dataclass(slots=True)
class World:
    """What a scenario builds on: the engine plus the cgroup ``/A`` the tasks run in."""

    engine: Engine
    memcg_id: int
    tasks: dict[int, SimCpu] = field(default_factory=dict)
    exited: int = 0
    next_task: int = 1
    oom_killed: list[int] = field(default_factory=list)
    #: The CPU the controller runs on (the shell that forks and pkills).
    shell: SimCpu | None = None
    #: Thread groups: each task's mm (the pid of the task that exec'd it).
    mm_of: dict[int, int] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        variant: Variant,
        seed: int,
        profile: Profile,
        mm_config: MmConfig,
        strategy: Callable[[random.Random], Strategy] = Strategy,
        limit_bytes: int | None = None,
        memsw_limit_bytes: int | None = None,
        keep_trace: bool = True,
        max_steps: int = 5_000_000,
    ) -> World:
        mm = MmState(mm_config)
        memcg = MemcgState()
        memcg_id = memcg.create("/A")
        # Written as the cgroupfs files would be: memsw first when raising it.
        if memsw_limit_bytes is not None:
            _check(mem_cgroup_resize_limit(memcg, memcg_id, memsw_limit_bytes, True))
        if limit_bytes is not None:
            _check(mem_cgroup_resize_limit(memcg, memcg_id, limit_bytes, False))
        engine = Engine(
            mm,
            memcg,
            variant,
            profile,
            seed,
            strategy,
            keep_trace=keep_trace,
            max_steps=max_steps,
        )
        world = cls(engine, memcg_id)
        engine.on_post["oom_kill"] = world.oom_kill
        return world

    @property
    def rng(self) -> random.Random:
        return self.engine.rng

    def new_task_cpu(self, name: str | None = None) -> SimCpu:
        """fork: a task of cgroup /A, on a CPU of its own (not started)."""
        tid = self.next_task
        self.next_task += 1
        name = name or f"task{tid}"
        cpu = SimCpu(self.engine, name, "tasks", name, self.memcg_id, tid)
        self.tasks[tid] = cpu
        self.mm_of[tid] = tid
        return cpu

    async def exec_task(self, cpu: SimCpu) -> None:
        """exec: an empty address space, and the task joins /A's tasks file."""
        await cpu.call(mm_init, cpu.task, self.memcg_id)
        await cpu.call(mem_cgroup_attach_task, self.memcg_id, cpu.task)

    def spawn_task(
        self, program: Program, threads: Sequence[ThreadProgram] = (), name: str | None = None
    ) -> SimCpu:
        """fork + exec into cgroup /A: a new task running ``program`` from now on; it then
        clone()s one thread (CLONE_VM) per entry of ``threads``, which shares its mm."""
        cpu = self.new_task_cpu(name)
        self.engine.start(cpu, self._life(cpu, program, threads))
        return cpu

    async def _life(self, cpu: SimCpu, program: Program, threads: Sequence[ThreadProgram]) -> None:
        await self.exec_task(cpu)
        for thread in threads:
            await self._clone(cpu, thread)
        await program(cpu)
        await self.exit_task(cpu)

    async def _clone(self, parent: SimCpu, thread: ThreadProgram) -> None:
        """do_fork(CLONE_VM): copy_mm() takes an mm_users reference in the parent, then
        the thread joins the parent's cgroup and runs."""
        if parent.fatal_signal_pending():
            return  # copy_process(): a fatal signal is pending, no new thread
        mm = self.mm_of.get(parent.task, parent.task)
        cpu = self.new_task_cpu()
        self.mm_of[cpu.task] = mm
        await parent.call(mm_users_inc, mm, cpu.task)
        await parent.call(mem_cgroup_attach_task, self.memcg_id, cpu.task)

        async def life() -> None:
            await thread(cpu, mm)
            await self.exit_task(cpu)

        self.engine.start(cpu, life())

    async def fork(self, parent: Cpu, program: Program) -> Cpu | None:
        """fork() by the task running on ``parent``: copy_mm() copies its mm (dup_mmap(),
        in the parent's context), the child joins the parent's cgroup and runs
        ``program``, then exits.  None when the parent has a fatal signal pending
        (copy_process() gives up)."""
        if parent.fatal_signal_pending():
            return None
        cpu = self.new_task_cpu()
        await dup_mmap(parent, self.mm_of.get(parent.task, parent.task), cpu.task)
        await parent.call(mem_cgroup_attach_task, self.memcg_id, cpu.task)

        async def life() -> None:
            await program(cpu)
            await self.exit_task(cpu)

        self.engine.start(cpu, life())
        return cpu

    async def exit_task(self, cpu: SimCpu) -> None:
        """exit(): leave the mm (the last user tears it down) and the cgroup."""
        await exit_mm(cpu, self.mm_of.get(cpu.task, cpu.task))
        del self.tasks[cpu.task]
        self.mm_of.pop(cpu.task, None)
        self.exited += 1

    def kill(self, task: int, memdie: bool = False) -> None:
        """Send SIGKILL: the task exits at its next return to user space."""
        cpu = self.tasks.get(task)
        if cpu is None or cpu.killed:
            return
        cpu.killed = True
        cpu.memdie = memdie
        self.engine.wake(cpu)

    def kill_all(self) -> None:
        """``pkill``: every task of the cgroup."""
        for task in sorted(self.tasks):
            self.kill(task)

    def oom_kill(self, task: int) -> None:
        """The memcg OOM killer's SIGKILL, with TIF_MEMDIE, to every task of the chosen
        task's mm (oom_kill_process() kills the threads sharing it too)."""
        self.oom_killed.append(task)
        mm = self.mm_of.get(task, task)
        for tid in sorted(self.tasks):
            if tid == task or self.mm_of.get(tid) == mm:
                self.kill(tid, memdie=True)

    def run_to_idle(self) -> None:
        self.engine.run()

    # --- kernsim.workloads.Machine: what the controllers drive ---------------

    @property
    def ntasks(self) -> int:
        return len(self.tasks)

    def sleep(self, delay_s: float) -> Awaitable[None]:
        """The shell's sleep (``sleep 3`` between rounds)."""
        assert self.shell is not None, "controllers run on the shell CPU"
        return self.shell.sleep(delay_s)

    async def wait_exited(self) -> None:
        """``wait``: until every task has exited."""
        while self.tasks:
            await self.sleep(0.001)


def _check(err: int) -> None:
    if err:
        raise ValueError(f"could not set the cgroup limit: errno {-err}")
