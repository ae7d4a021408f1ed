"""The v5 hole (docs/v5-hole.md), forced step by step with the scripting API.

do_swap_page()'s reuse_swap_page() deletes A's page P from the swap cache before
its swap_free(); in between, B's readahead re-adds the slot with a new page Q,
whose read completes while the slot still counts A's pte: v5's lockless
end_swap_bio_read() check sees swap_map == 2 and lets Q be.  The final
swap_free() leaves Q cache-only, uncharged, with memsw charged through
swap_cgroup.
"""

from __future__ import annotations

import pytest

from kernsim.model.memory import handle_mm_fault
from kernsim.sim.scripting import Run, Script, call


def v5_hole(variant: str) -> Script:
    s = Script.create(variant)
    a, b = s.task("A"), s.task("B")
    pa, pb = s.fault(a, 0), s.fault(b, 0)
    k = s.kthread()
    s.run(k, s.reclaim(k, [pa, pb], drain=True, age=True))  # both written, kept in cache
    s.drain_all()
    s.run(k, s.reclaim(k, [pb], drain=True))  # B's page freed: B's pte alone holds eB
    assert pa in s.mm.pages and pb not in s.mm.pages, "setup"
    s.race(
        [
            Run("A", through=call("page_cache_release", a0=pa)),  # reuse_swap_page()
            Run("B", through=call("lru_cache_add")),  # readahead re-adds eA with Q
            Run("irq2", through=call("unlock_page")),  # the read completes
            Run("A"),  # map, commit, swap_free(eA)
        ],
        [(a, handle_mm_fault(a, a.task, 0, True)), (b, handle_mm_fault(b, b.task, 0, True))],
    )
    s.exit_all()
    return s


@pytest.mark.parametrize("variant", ["none", "v5", "v5-as-intended"])
def test_the_hole_leaks_memsw_under_2_6_30_and_v5(variant: str) -> None:
    s = v5_hole(variant)
    hints = [e.result for e in s.world.engine.trace if e.prim == "mem_cgroup_staleswap_hint"]
    assert (True in hints) == variant.startswith("v5")  # the check saw swap_map == 2
    kinds = sorted(v.kind for v in s.check())
    assert kinds == ["memsw_leak", "swap_slot_in_use"]


def test_upstream_uncharges_memsw_but_keeps_the_slot() -> None:
    kinds = [v.kind for v in v5_hole("upstream").check()]
    assert kinds == ["swap_slot_in_use"]
