"""A public scripting API: build a starting state, then force one interleaving.

A :class:`Script` wraps a :class:`~kernsim.sim.world.World`.  Its setup steps
(``task``, ``fault``, ``swap_out``, ``run``) each run one code path to
completion, with whatever bio completions and work items it posts, before
the next one starts.  :meth:`Script.race` then starts several code paths at
once under a scripted schedule (:class:`~kernsim.sim.scripted.Run` steps),
and :meth:`Script.exit_all` / :meth:`Script.check` finish and judge the run::

    s = Script.create("none")
    a, k = s.task("A"), s.kthread("kswapd")
    pfn = s.fault(a, 0)
    s.race(
        [Run("kswapd", through=call("page_referenced", a0=pfn)), Run("A")],
        [(k, s.reclaim(k, [pfn], drain=True)), (a, s.exit(a))],
    )
    s.exit_all()
    assert not s.check()

The catalogue races (kernsim.sim.catalogue) are written with it.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from kernsim.check.invariants import Violation, quiescent_violations
from kernsim.faults import load_profile
from kernsim.model.memcontrol import MemcgState
from kernsim.model.mm import MmConfig, MmState
from kernsim.model.mm_types import Pte
from kernsim.sim.cpu import SimCpu
from kernsim.sim.scripted import Run, Scripted, call
from kernsim.sim.world import World
from kernsim.variants import get_variant

Start = tuple[SimCpu, Coroutine[Any, Any, Any]]


@dataclass(slots=True)
class Script:
    """Scripted steps on one simulated machine (cgroup ``/A`` plus kernel threads)."""

    world: World

    @classmethod
    def create(
        cls,
        variant: str = "none",
        *,
        seed: int = 1,
        total_pages: int = 1024,
        swap_pages: int = 16,
        page_cluster: int | None = None,
        limit_bytes: int | None = None,
        memsw_limit_bytes: int | None = None,
    ) -> Script:
        """A fresh machine running ``variant`` with the ``none`` fault profile (every
        message on time); the swap_map encoding follows the variant."""
        var = get_variant(variant)
        cfg: dict[str, Any] = {
            "total_pages": total_pages,
            "swap_pages": swap_pages,
            "swap_has_cache": var.swap_has_cache,
        }
        if page_cluster is not None:
            cfg["page_cluster"] = page_cluster
        world = World.create(
            var,
            seed,
            load_profile("none"),
            MmConfig(**cfg),
            limit_bytes=limit_bytes,
            memsw_limit_bytes=memsw_limit_bytes,
        )
        return cls(world)

    # --- state ------------------------------------------------------------------

    @property
    def mm(self) -> MmState:
        """The mm owner's state (pages, ptes, swap_map, the swap cache, the LRU)."""
        return self.world.engine.mm

    @property
    def memcg(self) -> MemcgState:
        """The memcg owner's state (res/memsw counters, page_cgroup)."""
        return self.world.engine.memcg

    @property
    def memcg_id(self) -> int:
        """The css id of cgroup ``/A``, where every task runs."""
        return self.world.memcg_id

    def pte(self, task: SimCpu, addr: int) -> Pte:
        """The pte of ``task`` at ``addr`` (KeyError when there is none)."""
        return self.mm.mms[task.task].ptes[addr]

    # --- one code path at a time -----------------------------------------------

    def run(self, cpu: SimCpu, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on ``cpu`` and everything it starts until the machine is idle;
        return its result.  AssertionError if it never finished (slept forever)."""
        box: list[Any] = []

        async def wrapper() -> None:
            box.append(await coro)

        engine = self.world.engine
        engine.start(cpu, wrapper())
        engine.run()
        assert box, f"{cpu.name} did not finish; blocked: {engine.blocked_cpus()}"
        return box[0]

    def task(self, name: str = "A") -> SimCpu:
        """fork + exec: a task of ``/A`` called ``name`` with an empty address space."""
        cpu = self.world.new_task_cpu(name)
        self.run(cpu, self.world.exec_task(cpu))
        return cpu

    def fork(self, parent: SimCpu, name: str) -> SimCpu:
        """fork() by ``parent``: a task of ``/A`` called ``name`` whose mm is a copy of the
        parent's (dup_mmap(): swap ptes duplicated, present pages shared write-protected)."""
        from kernsim.model.fork import dup_mmap
        from kernsim.model.memcontrol import mem_cgroup_attach_task

        child = self.world.new_task_cpu(name)

        async def copy_process() -> None:
            await dup_mmap(parent, parent.task, child.task)
            await parent.call(mem_cgroup_attach_task, self.memcg_id, child.task)

        self.run(parent, copy_process())
        return child

    def kthread(self, name: str = "kswapd") -> SimCpu:
        """A kernel thread (no memcg, its own pagevecs): kswapd, a kworker, ..."""
        return SimCpu(self.world.engine, name, "vmscan", name)

    def fault(self, task: SimCpu, addr: int, write: bool = True) -> int:
        """A user access by ``task`` at ``addr`` (handle_mm_fault); returns the pfn mapped."""
        from kernsim.model.memory import handle_mm_fault

        self.run(task, handle_mm_fault(task, task.task, addr, write))
        return self.pte(task, addr).val

    def swap_out(self, pfns: list[int], kswapd: SimCpu | None = None) -> None:
        """Swap ``pfns`` out all the way: one reclaim pass (add_to_swap, try_to_unmap,
        pageout; the write completes), then a second that frees what was written."""
        k = kswapd or self.kthread()
        self.run(k, self.reclaim(k, pfns, drain=True, age=True))
        live = [p for p in pfns if p in self.mm.pages]
        self.run(k, self.reclaim(k, live, drain=True))

    # --- coroutines to start in a race -----------------------------------------

    def isolate(self, cpu: SimCpu, pfns: list[int], drain: bool) -> Coroutine[Any, Any, list[int]]:
        """See :func:`isolate`."""
        return isolate(cpu, pfns, drain)

    def reclaim(
        self, cpu: SimCpu, pfns: list[int], drain: bool = True, age: bool = False
    ) -> Coroutine[Any, Any, int]:
        """See :func:`reclaim`."""
        return reclaim(cpu, pfns, drain, age)

    async def exit(self, task: SimCpu) -> None:
        """The task exits: exit_mmap() zaps every pte, then the task is gone."""
        from kernsim.model.mmap import exit_mmap

        await exit_mmap(task, task.task)
        del self.world.tasks[task.task]
        self.world.exited += 1

    # --- races and the end ------------------------------------------------------

    def race(self, script: Sequence[Run], starts: Sequence[Start]) -> None:
        """Start every (cpu, coroutine) of ``starts`` at once and run them under ``script``:
        each :class:`Run` step lets one CPU run up to (``until``) or through (``through``)
        a primitive call; what is left runs in time order once the script is done."""
        engine = self.world.engine
        engine.strategy = Scripted(engine.rng, script)
        for cpu, coro in starts:
            engine.start(cpu, coro)
        engine.run()

    def exit_all(self) -> None:
        """Every task still alive exits, one after the other (kill all, in time order)."""
        for task in list(self.world.tasks.values()):
            self.run(task, self.exit(task))

    def drain_all(self) -> None:
        """lru_add_drain_all() on a kworker: every CPU's lru_add and lru_rotate pagevecs
        give back the references they hold."""
        from kernsim.model.swap import lru_add_drain_all

        async def drain(cpu: SimCpu) -> None:
            await cpu.call(lru_add_drain_all)

        kworker = self.kthread("kworker")
        self.run(kworker, drain(kworker))

    def check(self) -> list[Violation]:
        """Drain every CPU's pagevecs (:meth:`drain_all`) and return what the checker
        calls a failure at quiescence (docs/MODEL.md); [] when the invariants hold."""
        self.drain_all()
        return quiescent_violations(self.mm, self.memcg)


async def isolate(cpu: SimCpu, pfns: list[int], drain: bool) -> list[int]:
    """isolate_lru_pages() of exactly ``pfns`` (active, then inactive), after
    lru_add_drain_all() if ``drain``; returns the pages isolated."""
    from kernsim.model.swap import lru_add_drain_all
    from kernsim.model.vmscan import isolate_lru_pages_of

    if drain:
        await cpu.call(lru_add_drain_all)
    return (await cpu.call(isolate_lru_pages_of, pfns, True)) + (
        await cpu.call(isolate_lru_pages_of, pfns, False)
    )


async def reclaim(cpu: SimCpu, pfns: list[int], drain: bool = True, age: bool = False) -> int:
    """shrink_page_list() of exactly ``pfns``, aged first if ``age`` (page_referenced(),
    as shrink_active_list() would); returns the number freed."""
    from kernsim.model.rmap import page_referenced
    from kernsim.model.vmscan import ScanControl, shrink_page_list

    if age:
        for pfn in pfns:
            await cpu.call(page_referenced, pfn)
    return await shrink_page_list(cpu, await isolate(cpu, pfns, drain), ScanControl())


__all__ = ["Run", "Script", "Start", "call", "isolate", "reclaim"]
