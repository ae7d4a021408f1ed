"""The known races of docs/KERNEL.md section 8, each forced by a scripted schedule.

Each function builds the starting state with ordinary code paths run one at a
time (fault the pages in, swap them out through shrink_page_list), then lets
two CPUs race under a script that reproduces the diagram, then lets
everything else finish in time order.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from kernsim.model.memory import PTE_SWAP, do_swap_page, exit_mmap, handle_mm_fault
from kernsim.model.mm_types import Pte
from kernsim.model.rmap import page_referenced
from kernsim.model.swap import isolate_lru_pages_of, lru_add_drain_all
from kernsim.model.vmscan import ScanControl, shrink_page_list
from kernsim.sim.engine import SimCpu
from kernsim.sim.scripted import Run, Scripted, call
from kernsim.sim.world import World


def _run(world: World, cpu: SimCpu, coro: Coroutine[Any, Any, Any]) -> None:
    world.engine.start(cpu, coro)
    world.engine.run()


def _task(world: World, name: str) -> SimCpu:
    cpu = world.new_task_cpu(name)
    _run(world, cpu, world.exec_task(cpu))
    return cpu


def _kswapd(world: World) -> SimCpu:
    return SimCpu(world.engine, "kswapd", "vmscan", "vmscan")


def _pte(world: World, task: SimCpu, addr: int) -> Pte:
    return world.engine.mm.mms[task.task].ptes[addr]


def _fault(world: World, task: SimCpu, addr: int) -> int:
    _run(world, task, handle_mm_fault(task, task.task, addr, True))
    return _pte(world, task, addr).val


async def _isolate(cpu: SimCpu, pfns: list[int], drain: bool) -> list[int]:
    if drain:
        await cpu.call(lru_add_drain_all)
    return (await cpu.call(isolate_lru_pages_of, pfns, True)) + (
        await cpu.call(isolate_lru_pages_of, pfns, False)
    )


async def _reclaim(cpu: SimCpu, pfns: list[int], drain: bool, age: bool) -> None:
    """Reclaim exactly ``pfns`` (aged first, as shrink_active_list() would)."""
    if age:
        for pfn in pfns:
            await cpu.call(page_referenced, pfn)
    await shrink_page_list(cpu, await _isolate(cpu, pfns, drain), ScanControl())


def _swap_out(world: World, pfns: list[int]) -> None:
    """Swap pages out all the way: add_to_swap + unmap + write, then free once written."""
    kswapd = _kswapd(world)
    _run(world, kswapd, _reclaim(kswapd, pfns, drain=True, age=True))
    live = [p for p in pfns if p in world.engine.mm.pages]
    _run(world, kswapd, _reclaim(kswapd, live, drain=True, age=False))


def _race(
    world: World, script: list[Run], starts: list[tuple[SimCpu, Coroutine[Any, Any, Any]]]
) -> None:
    engine = world.engine
    engine.strategy = Scripted(engine.rng, script)
    for cpu, coro in starts:
        engine.start(cpu, coro)
    engine.run()


def _exit(world: World, task: SimCpu) -> Coroutine[Any, Any, None]:
    async def run() -> None:
        await exit_mmap(task, task.task)
        del world.tasks[task.task]
        world.exited += 1

    return run()


def _two_swapped_tasks(world: World) -> tuple[SimCpu, SimCpu, int, int]:
    """Tasks A and B, each with one page swapped out to neighbouring slots eA, eB."""
    a, b = _task(world, "A"), _task(world, "B")
    pa, pb = _fault(world, a, 0), _fault(world, b, 0)
    _swap_out(world, [pa, pb])
    ea, eb = _pte(world, a, 0), _pte(world, b, 0)
    assert not ea.present and not eb.present, "setup: pages were not swapped out"
    return a, b, ea.val, eb.val


def example_b(world: World) -> None:
    """CPU0 zap_pte -> free_swap_and_cache(eA) between CPU1's swap_duplicate(eA) (in
    swapin_readahead for B's fault on eB) and its add_to_swap_cache(P, eA)."""
    a, b, ea, eb = _two_swapped_tasks(world)
    _race(
        world,
        [
            Run("B", through=call(("swap_duplicate", "swapcache_prepare"), a0=ea)),
            Run("A"),
        ],
        [(b, do_swap_page(b, b.task, 0, eb, True)), (a, _exit(world, a))],
    )
    _exit_all(world)


def type_1(world: World) -> None:
    """CPU0 free_swap_and_cache(eA) while the readahead page P of eA is locked for I/O."""
    a, b, ea, eb = _two_swapped_tasks(world)
    _race(
        world,
        [
            Run("B", through=call("add_to_swap_cache", a1=ea)),
            Run("A"),
        ],
        [(b, do_swap_page(b, b.task, 0, eb, True)), (a, _exit(world, a))],
    )
    _exit_all(world)


def example_a(world: World) -> None:
    """CPU1 shrink_page_list() holds the lock of A's unmapped swap-cache page P while CPU0
    zaps A's swap pte; __remove_mapping() then fails on rotate_reclaimable_page()'s
    extra reference."""
    a = _task(world, "A")
    pfn = _fault(world, a, 0)
    kswapd = _kswapd(world)
    # add_to_swap, try_to_unmap, pageout: written, kept; the write completes while P is
    # back on the LRU with PG_reclaim, so it waits in the irq CPU's rotate pagevec.
    _run(world, kswapd, _reclaim(kswapd, [pfn], drain=True, age=True))
    pte = _pte(world, a, 0)
    assert not pte.present and pfn in world.engine.mm.pages, "setup: P not in swap cache"
    _race(
        world,
        [
            Run("kswapd", through=call("trylock_page", a0=pfn)),
            Run("A"),
        ],
        [(kswapd, _reclaim(kswapd, [pfn], drain=False, age=False)), (a, _exit(world, a))],
    )
    _exit_all(world)


def type_2(world: World) -> None:
    """CPU0 zaps A's present pte between CPU1's page_referenced() and add_to_swap()."""
    a = _task(world, "A")
    pfn = _fault(world, a, 0)
    kswapd = _kswapd(world)

    async def reclaim() -> None:
        await shrink_page_list(kswapd, await _isolate(kswapd, [pfn], True), ScanControl())

    _race(
        world,
        [
            Run("kswapd", through=call("page_referenced", a0=pfn)),
            Run("A"),
        ],
        [(kswapd, reclaim()), (a, _exit(world, a))],
    )
    _exit_all(world)


def _exit_all(world: World) -> None:
    """Whatever task is left exits (kill all tasks), in time order."""
    for task in list(world.tasks.values()):
        _run(world, task, _exit(world, task))


CATALOGUE: dict[str, Callable[[World], None]] = {
    "example-a": example_a,
    "example-b": example_b,
    "type-1": type_1,
    "type-2": type_2,
}

__all__ = ["CATALOGUE", "PTE_SWAP"]
