"""A simulated machine: the engine, one memcg, the tasks, and the workloads they run.

``World`` is both machines a run needs: the workloads' ``Machine``
(kernsim.workloads.TaskGroup: spawn, kill_all, oom_kill, wait_exited, run on
the engine's CPUs) and the checks' ``Settleable`` (kernsim.check.settle:
quiesce, drain, state, global reclaim), each running the engine on the
virtual clock.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from kernsim.check.invariants import Violation
from kernsim.check.settle import State
from kernsim.faults import Profile
from kernsim.model.fork import dup_mmap
from kernsim.model.memcontrol import MemcgState, mem_cgroup_attach_task, mem_cgroup_resize_limit
from kernsim.model.mm import MmConfig, MmState
from kernsim.model.port import Cpu
from kernsim.model.swap import lru_add_drain_all
from kernsim.model.vmscan import global_reclaim
from kernsim.sim.checker import ContinuousChecker, attach_events
from kernsim.sim.cpu import SimCpu
from kernsim.sim.engine import Engine, Strategy
from kernsim.variants.base import Variant
from kernsim.workloads import Program, TaskGroup


@dataclass(slots=True)
class World(TaskGroup[SimCpu]):
    """What a scenario builds on: the engine plus the cgroup ``/A`` the tasks run in."""

    engine: Engine
    memcg_id: int
    tasks: dict[int, SimCpu] = field(default_factory=dict)
    exited: int = 0
    next_task: int = 1
    oom_killed: int = 0
    #: The CPU the controller runs on (the shell that forks and pkills).
    shell: SimCpu | None = None
    #: Thread groups: each task's mm (the pid of the task that exec'd it).
    mm_of: dict[int, int] = field(default_factory=dict)
    #: The continuous checks, when a run attached them (see check_continuously).
    checker: ContinuousChecker | None = None

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

    def check_continuously(self) -> ContinuousChecker:
        """Attach the continuous checks as an observer of the engine."""
        self.checker = ContinuousChecker()
        self.engine.observers.append(self.checker)
        return self.checker

    # --- kernsim.workloads.TaskGroup: a task's CPU on the engine ----------------

    def _new_cpu(self, name: str, task: int) -> SimCpu:
        return SimCpu(self.engine, name, "tasks", name, self.memcg_id, task)

    def _start(self, cpu: SimCpu, life: Coroutine[Any, Any, None]) -> None:
        self.engine.start(cpu, life)

    async def fork(self, parent: Cpu, program: Program) -> Cpu | None:
        """fork() by the task running on ``parent``: copy_mm() copies its mm (dup_mmap(),
        in the parent's context), the child joins the parent's cgroup and runs
        ``program``, then exits.  None when the parent has a fatal signal pending
        (copy_process() gives up).  The simulation's alone: the cluster's tasks service
        has no fork."""
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

    def _signal(self, cpu: SimCpu, memdie: bool) -> None:
        cpu.killed = True
        cpu.memdie = memdie
        self.engine.wake(cpu)

    def run_to_idle(self) -> None:
        self.engine.run()

    def sleep(self, delay_s: float) -> Awaitable[None]:
        """The shell's sleep (``sleep 3`` between rounds)."""
        assert self.shell is not None, "controllers run on the shell CPU"
        return self.shell.sleep(delay_s)

    # --- kernsim.check.settle.Settleable: what settle_and_check drives ---------
    # Each runs the engine to idle inside the call: none of these awaits suspends.

    async def quiesce(self) -> None:
        self.kill_all()
        self.engine.run()

    async def drain(self) -> None:
        async def drain(cpu: SimCpu) -> None:
            await cpu.call(lru_add_drain_all)

        self._run_kernel("kworker", drain)

    async def state(self) -> State:
        found = self.checker.violations if self.checker is not None else []
        return State(self.engine.mm, self.engine.memcg, list(found))

    async def global_reclaim(self) -> None:
        self._run_kernel("reclaim", global_reclaim)

    def explain(self, violations: list[Violation]) -> None:
        attach_events(violations, self.engine.trace)

    def _run_kernel(self, name: str, path: Callable[[SimCpu], Coroutine[Any, Any, None]]) -> None:
        cpu = SimCpu(self.engine, self.engine.unique_name(name), "workqueue", "workqueue")
        self.engine.start(cpu, path(cpu))
        self.engine.run()


def _check(err: int) -> None:
    if err:
        raise ValueError(f"could not set the cgroup limit: errno {-err}")
