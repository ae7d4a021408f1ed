"""The variants' hooks: v5 as posted (LKML, 30 Apr 2009, the seed mail) and 2.6.31's
reuse of cache-only slots (K31 = 2.6.31.3 mm/swapfile.c)."""

from __future__ import annotations

import pytest

from kernsim.model.memory import handle_mm_fault
from kernsim.model.mm import MmState
from kernsim.model.mm_types import SWAP_HAS_CACHE
from kernsim.model.swapfile import swap_duplicate
from kernsim.model.vmscan import (
    ScanControl,
    isolate_lru_pages_of,
    putback_lru_page,
    shrink_page_list,
)
from kernsim.sim.cpu import SimCpu
from kernsim.variants import VARIANTS, get_variant
from kernsim.variants.upstream import scan_swap_map_reuse
from kernsim.variants.v5 import (
    mem_cgroup_check_stale_swap,
    mem_cgroup_staleswap_hint,
    stale_swap_check_pop,
    stale_swap_check_queue,
)
from tests.support.unitkit import (
    Machine,
    drain_all,
    make_machine,
    small_mm,
    swap_out,
    swapcache_page,
)


def test_get_variant_knows_the_thread() -> None:
    """The variants are vanilla 2.6.30, the thread's versions (v5 as built and as
    intended) and 2.6.31; only 2.6.31 changes swap_map."""
    assert sorted(VARIANTS) == [
        "none", "type2-fix", "upstream", "v4", "v5", "v5-as-intended", "v6", "v7",
    ]  # fmt: skip
    names = ("none", "v5", "v5-as-intended", "upstream")
    assert [get_variant(n).swap_has_cache for n in names] == [False, False, False, True]
    with pytest.raises(
        ValueError, match="known: none, type2-fix, upstream, v4, v5, v5-as-intended, v6, v7"
    ):
        get_variant("v99")


# --- v5: the lockless hint ------------------------------------------------------------


def test_staleswap_hint_reads_swap_map_against_1(mm30: MmState) -> None:
    """v5 mem_cgroup_staleswap_hint(): ``!PageSwapCache || page_mapped`` -> 1 (stable);
    else page_swapused_nolock(): ``swap_map[offset] != 1``, read without swap_lock."""
    pfn, entry = swapcache_page(mm30)
    assert mem_cgroup_staleswap_hint(mm30, pfn) is False  # cache only: looks stale
    swap_duplicate(mm30, entry)
    assert mem_cgroup_staleswap_hint(mm30, pfn) is True  # a pte still uses the slot
    mm30.swap.swap_map[entry] = 1
    mm30.pages[pfn].mapcount = 1
    assert mem_cgroup_staleswap_hint(mm30, pfn) is True  # mapped
    mm30.pages[pfn].mapcount = 0
    mm30.pages[pfn].swapcache = False
    assert mem_cgroup_staleswap_hint(mm30, pfn) is True  # not in swap cache


def test_staleswap_hint_takes_no_lock(mm30: MmState) -> None:
    """v5: "this can be called via interrupt context, we use nolock version" -- the hint
    answers for a locked page (an I/O completion runs with PG_locked held by the reader)
    and changes nothing."""
    pfn, _ = swapcache_page(mm30, locked=True)
    refs = mm30.pages[pfn].count
    assert mem_cgroup_staleswap_hint(mm30, pfn) is False
    assert mm30.pages[pfn].locked and mm30.pages[pfn].count == refs


def test_stale_swap_check_queue_schedules_the_work_once(mm30: MmState) -> None:
    """v5 mem_cgroup_swapio_check_again(): link the entry (bio->bi_next = list: LIFO) and
    ``if (!delayed_work_pending(&sc->work)) schedule_delayed_work()``."""
    p1, e1 = swapcache_page(mm30)
    p2, e2 = swapcache_page(mm30)
    assert stale_swap_check_queue(mm30, p1) is True
    assert stale_swap_check_queue(mm30, p2) is False
    assert stale_swap_check_pop(mm30) == e2
    assert stale_swap_check_pop(mm30) == e1
    assert stale_swap_check_pop(mm30) == 0


# --- v5: the worker -----------------------------------------------------------------------


def _run_worker(m: Machine) -> None:
    k = SimCpu(m.world.engine, "kworker", "workqueue", "workqueue")
    m.run(k, mem_cgroup_check_stale_swap(k))


def test_v5_worker_frees_an_unmapped_stale_page() -> None:
    """v5 mem_cgroup_check_stale_swap(): find_get_page, not mapped -> lock_page,
    try_to_free_swap (page_swapcount 0: delete_from_swap_cache, swap_free frees the
    slot), unlock_page, put_page -- the worker's own reference is returned."""
    m = make_machine("v5")
    pfn, entry = swapcache_page(m.mm)
    refs = m.mm.pages[pfn].count
    free = m.mm.swap.nr_swap_pages
    stale_swap_check_queue(m.mm, pfn)
    _run_worker(m)
    page = m.mm.pages[pfn]
    assert not page.swapcache and entry not in m.mm.swapper_space
    assert m.mm.swap.swap_map[entry] == 0
    assert m.mm.swap.nr_swap_pages == free + 1
    assert page.count == refs - 1  # only the cache's reference went
    assert not page.locked


def test_v5_worker_leaks_a_reference_on_a_mapped_page() -> None:
    """v5 mem_cgroup_check_stale_swap(): ``page = find_get_page(...); if (!page ||
    page_mapped(page)) continue;`` -- find_get_page()'s reference is never dropped for a
    mapped page, so it can never again pass page_freeze_refs(page, 2).  This is the
    bug v6 fixed ("fixed page refcnt issue"); the model keeps it on purpose."""
    m = make_machine("v5")
    a = m.task()
    m.run(a, handle_mm_fault(a, a.task, 0, True))
    pfn = m.pte(a, 0).val
    swap_out(m, pfn)
    # Read fault: the page comes back mapped and stays in the swap cache (cache only).
    m.run(a, handle_mm_fault(a, a.task, 0, False))
    m.run(a, drain_all(a))
    new = m.pte(a, 0).val
    page = m.mm.pages[new]
    assert page.swapcache and page.mapcount == 1
    assert m.mm.swap.swap_map[page.private] == 1
    refs = page.count
    stale_swap_check_queue(m.mm, new)
    _run_worker(m)
    assert page.count == refs + 1  # the leaked reference
    assert page.swapcache and not page.locked


@pytest.mark.parametrize(
    ("variant", "freed"), [("none", False), ("v5", False), ("v5-as-intended", True)]
)
def test_v5_remove_mapping_failure_hook(variant: str, freed: bool) -> None:
    """v5's vmscan.c hunk: when __remove_mapping() fails (here on the rotate pagevec's
    extra reference) the page is still locked, so unuse_swapcache_check_again() would
    try_to_free_swap() it; a cache-only page (page_swapcount 0) would leave the swap
    cache and free its slot.  As posted the hunk sits under ``#ifdef
    CONFIG_CGROUP_MEM_RES_CTRL``, which no Kconfig symbol defines (2.6.30 init/Kconfig:
    CGROUP_MEM_RES_CTLR): the empty ``#else`` stub is built, and v5 keeps the page as
    vanilla does.  Only v5-as-intended frees it."""
    m = make_machine(variant)
    pfn, entry = swapcache_page(m.mm)  # written, clean, unmapped; swap_map 1
    m.mm.pages[pfn].anon = m.mm.pages[pfn].uptodate = True
    m.mm.pages[pfn].count += 1
    putback_lru_page(m.mm, pfn, False)  # on the LRU: cache + the rotate pagevec's reference
    isolate_lru_pages_of(m.mm, [pfn], False)
    k = m.kthread()
    m.run(k, shrink_page_list(k, [pfn], ScanControl()))
    assert m.world.engine.results == {"keep_locked": 1}
    page = m.mm.pages[pfn]
    assert page.swapcache is not freed
    assert (m.mm.swap.swap_map[entry] == 0) is freed


# --- 2.6.31: scan_swap_map() reuses cache-only slots ------------------------------------


def _layout(mm: MmState, values: list[int]) -> None:
    """swap_map[1..] = values, nr_swap_pages to match, scanning from slot 1."""
    sw = mm.swap
    for off, v in enumerate(values, start=1):
        sw.swap_map[off] = v
    used = sum(1 for v in sw.swap_map if v)
    sw.nr_swap_pages = sw.total_swap_pages - used
    sw.inuse_pages = used
    sw.cluster_next = 1


def test_scan_swap_map_offers_a_cache_only_slot_when_full() -> None:
    """K31 scan_swap_map(): ``if (vm_swap_full() && si->swap_map[offset] ==
    SWAP_HAS_CACHE)`` -> __try_to_reclaim_swap() before taking a free slot further on."""
    mm = small_mm(swap_has_cache=True, swap_pages=4)
    _layout(mm, [SWAP_HAS_CACHE, 1, 1, 0])  # 3 of 4 used
    assert scan_swap_map_reuse(mm, 0) == (0, 1)


def test_scan_swap_map_skips_cache_only_slots_below_half() -> None:
    """K31 scan_swap_map(): without vm_swap_full() a cache-only slot is just in use."""
    mm = small_mm(swap_has_cache=True, swap_pages=8)
    _layout(mm, [SWAP_HAS_CACHE, 1, 0])  # 2 of 8 used
    assert scan_swap_map_reuse(mm, 0) == (3, 0)
    assert mm.swap.swap_map[3] == SWAP_HAS_CACHE


def test_upstream_get_swap_page_reclaims_a_cache_only_slot() -> None:
    """K31 scan_swap_map() -> __try_to_reclaim_swap(): find_get_page, trylock_page,
    try_to_free_swap -> the freed slot is taken again (``goto checks``)."""
    m = make_machine("upstream", swap_pages=4)
    pfn, entry = swapcache_page(m.mm)  # slot 1: cache only, page unlocked
    _layout(m.mm, [SWAP_HAS_CACHE, 1, 1, 0])
    k = m.kthread()
    assert m.run(k, m.world.engine.variant.get_swap_page(k)) == entry
    assert not m.mm.pages[pfn].swapcache
    assert m.mm.swap.swap_map[entry] == SWAP_HAS_CACHE  # the new owner's cache flag


def test_scan_swap_map_does_not_run_with_no_free_slot() -> None:
    """K31 get_swap_page(): ``if (nr_swap_pages <= 0) goto noswap;`` -- with every slot in
    use there is no scan, hence no __try_to_reclaim_swap(), even for cache-only slots."""
    mm = small_mm(swap_has_cache=True, swap_pages=4)
    _layout(mm, [SWAP_HAS_CACHE, 1, 1, 1])  # all 4 used
    assert scan_swap_map_reuse(mm, 0) == (0, 0)


def test_scan_swap_map_sees_vm_swap_full_after_reserving_its_slot() -> None:
    """K31 get_swap_page(): ``nr_swap_pages--`` precedes scan_swap_map(), so its
    vm_swap_full() is ``(nr_swap_pages - 1) * 2 < total``: with exactly half in use the
    cache-only slot is already offered for reuse."""
    mm = small_mm(swap_has_cache=True, swap_pages=8)
    _layout(mm, [SWAP_HAS_CACHE, 1, 1, 1, 0])  # 4 of 8 used
    assert scan_swap_map_reuse(mm, 0) == (0, 1)
