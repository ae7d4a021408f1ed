"""The known races of the 2009 thread (docs/KERNEL.md section 8), forced by scripted schedules.

Each function builds the starting state with ordinary code paths run one at a
time (fault the pages in, swap them out through shrink_page_list), then lets
two CPUs race under a script that reproduces the diagram, then lets
everything else finish in time order.  They are written with the public
scripting API (kernsim.sim.scripting).
"""

from __future__ import annotations

from collections.abc import Callable

from kernsim.model.memory import PTE_SWAP, do_swap_page
from kernsim.sim.cpu import SimCpu
from kernsim.sim.scripting import Run, Script, call
from kernsim.sim.world import World


def two_swapped_tasks(s: Script) -> tuple[SimCpu, SimCpu, int, int]:
    """Tasks A and B, each with one page swapped out to neighbouring slots eA, eB."""
    a, b = s.task("A"), s.task("B")
    pa, pb = s.fault(a, 0), s.fault(b, 0)
    s.swap_out([pa, pb])
    ea, eb = s.pte(a, 0), s.pte(b, 0)
    assert not ea.present and not eb.present, "setup: pages were not swapped out"
    return a, b, ea.val, eb.val


def example_b(world: World) -> None:
    """CPU0 zap_pte -> free_swap_and_cache(eA) between CPU1's swap_duplicate(eA) (in
    swapin_readahead for B's fault on eB) and its add_to_swap_cache(P, eA)."""
    s = Script(world)
    a, b, ea, eb = two_swapped_tasks(s)
    s.race(
        [
            Run("B", through=call(("swap_duplicate", "swapcache_prepare"), a0=ea)),
            Run("A"),
        ],
        [(b, do_swap_page(b, b.task, 0, eb, True)), (a, s.exit(a))],
    )
    s.exit_all()


def type_1(world: World) -> None:
    """CPU0 free_swap_and_cache(eA) while the readahead page P of eA is locked for I/O."""
    s = Script(world)
    a, b, ea, eb = two_swapped_tasks(s)
    s.race(
        [
            Run("B", through=call("add_to_swap_cache", a1=ea)),
            Run("A"),
        ],
        [(b, do_swap_page(b, b.task, 0, eb, True)), (a, s.exit(a))],
    )
    s.exit_all()


def example_a(world: World) -> None:
    """CPU1 shrink_page_list() holds the lock of A's unmapped swap-cache page P while CPU0
    zaps A's swap pte; __remove_mapping() then fails on rotate_reclaimable_page()'s
    extra reference."""
    s = Script(world)
    a = s.task("A")
    pfn = s.fault(a, 0)
    kswapd = s.kthread()
    # add_to_swap, try_to_unmap, pageout: written, kept; the write completes while P is
    # back on the LRU with PG_reclaim, so it waits in the irq CPU's rotate pagevec.
    s.run(kswapd, s.reclaim(kswapd, [pfn], drain=True, age=True))
    assert not s.pte(a, 0).present and pfn in s.mm.pages, "setup: P not in swap cache"
    s.race(
        [
            Run("kswapd", through=call("trylock_page", a0=pfn)),
            Run("A"),
        ],
        [(kswapd, s.reclaim(kswapd, [pfn], drain=False)), (a, s.exit(a))],
    )
    s.exit_all()


def type_2(world: World) -> None:
    """CPU0 zaps A's present pte between CPU1's page_referenced() and add_to_swap()."""
    s = Script(world)
    a = s.task("A")
    pfn = s.fault(a, 0)
    kswapd = s.kthread()
    s.race(
        [
            Run("kswapd", through=call("page_referenced", a0=pfn)),
            Run("A"),
        ],
        [(kswapd, s.reclaim(kswapd, [pfn], drain=True)), (a, s.exit(a))],
    )
    s.exit_all()


CATALOGUE: dict[str, Callable[[World], None]] = {
    "example-a": example_a,
    "example-b": example_b,
    "type-1": type_1,
    "type-2": type_2,
}


__all__ = ["CATALOGUE", "PTE_SWAP"]
