"""The kernel's outcome, not the model's: scripted schedules on which an earlier model
reached an end state that 2.6.30.4 (K30) or 2.6.31.3 (K31) cannot reach.

Each test forces one interleaving with the public scripting API and asserts what
the kernel source gives on it; the kernel lines are named in each docstring.
"""

from __future__ import annotations

from kernsim.model.memory import handle_mm_fault
from kernsim.model.mm_types import PAGE_SIZE, SWAP_CLUSTER_MAX
from kernsim.model.vmscan import try_to_free_mem_cgroup_pages
from kernsim.sim.cpu import SimCpu
from kernsim.sim.scripting import Run, Script, call


def _results_since(s: Script, before: dict[str, int]) -> dict[str, int]:
    now = s.world.engine.results
    return {k: now[k] - before.get(k, 0) for k in now if now[k] != before.get(k, 0)}


def _prims(s: Script, cpu: str, since: int) -> list[str]:
    return [ev.prim for ev in s.world.engine.trace[since:] if ev.cpu == cpu]


def test_w2_try_to_unmap_succeeds_when_a_zap_unmapped_the_page() -> None:
    """K30 rmap.c try_to_unmap(): ``if (ret != SWAP_MLOCK && !page_mapped(page)) ret =
    SWAP_SUCCESS``.  A zap lands between shrink_page_list()'s page_mapped() read and
    try_to_unmap(): the page goes on to pageout() -> swap_writepage() ->
    try_to_free_swap(), which frees the slot and uncharges res and memsw."""
    s = Script.create("none")
    a, k = s.task("A"), s.kthread()
    pfn = s.fault(a, 0)
    s.pte(a, 0).young = False  # aged: try_to_unmap() would not fail on the young bit
    s.race(
        [
            Run("kswapd", through=call("set_page_dirty", a0=pfn)),  # add_to_swap() done
            Run("kswapd", through=call("page_flags", a0=pfn)),  # page_mapped() == True
            Run("A"),  # exits: zap, free_swap_cache()'s trylock fails, gather released
        ],
        [(k, s.reclaim(k, [pfn], drain=True)), (a, s.exit(a))],
    )
    s.exit_all()
    assert s.world.engine.results == {"keep": 1}  # PAGE_SUCCESS, then PageDirty -> keep
    assert s.check() == []
    assert pfn not in s.mm.pages and not any(s.mm.swap.swap_map)
    group = s.memcg.group(s.memcg_id)
    assert group.res.usage == group.memsw.usage == 0


def test_w3_zap_drops_the_pte_dirty_bit_of_an_anon_page() -> None:
    """K30 memory.c zap_pte_range(): ``if (PageAnon(page)) anon_rss--; else { if
    (pte_dirty(ptent)) set_page_dirty(page); ...}``: a zapped anon page stays clean.

    A write fault maps A's page while it is under writeback (reuse_swap_page() keeps a
    page under writeback in the swap cache), then A exits before the write completes.
    The clean page is rotated by end_page_writeback() (rotate_reclaimable_page() wants
    !PageDirty), so the next reclaim's __remove_mapping() fails on the rotate pagevec's
    reference: the slot stays pinned by a charged page (Ex. A by another road)."""
    s = Script.create("none")
    a, k = s.task("A"), s.kthread()
    pfn = s.fault(a, 0)

    async def write_then_exit() -> None:
        await handle_mm_fault(a, a.task, 0, True)
        await s.exit(a)

    s.race(
        [
            Run("kswapd", through=call("putback_lru_page", a0=pfn)),  # written: keep
            Run("A"),  # write fault (reuse refused: writeback), then exit
        ],
        [(k, s.reclaim(k, [pfn], drain=True, age=True)), (a, write_then_exit())],
    )
    assert not s.world.tasks and pfn in s.mm.pages
    rotated = [ev.result for ev in s.world.engine.trace if ev.prim == "end_page_writeback"]
    assert rotated == [True]
    s.run(k, s.reclaim(k, [pfn], drain=False))  # kswapd drains only its own pagevecs
    kinds = [(v.kind, "still charged" in v.message) for v in s.check()]
    assert kinds == [("swap_slot_in_use", True)]


def _memcg_pages_in_swap_cache(s: Script, n: int) -> tuple[SimCpu, list[int]]:
    """Task A with ``n`` pages, each written to swap, clean, unmapped, charged, in the swap
    cache and on the LRU with no extra reference: ready for __remove_mapping()."""
    a, k = s.task("A"), s.kthread()
    pfns = [s.fault(a, addr) for addr in range(n)]
    s.run(k, s.reclaim(k, pfns, drain=True, age=True))
    s.drain_all()  # the rotate pagevec gives its reference back
    for pfn in pfns:
        page = s.mm.pages[pfn]
        assert page.swapcache and not page.dirty and not page.mapcount, page
    return k, pfns


def test_w4_memcg_reclaim_reports_no_progress_below_swap_cluster_max() -> None:
    """K30 vmscan.c do_try_to_free_pages(): ``ret`` is set only when ``nr_reclaimed >=
    swap_cluster_max`` or, after the last priority, for global reclaim.  A memcg
    reclaim that frees 1..31 pages returns 0, so __mem_cgroup_try_charge() falls to
    mem_cgroup_check_under_limit() and may use up one of its retries."""
    s = Script.create("none")
    k, pfns = _memcg_pages_in_swap_cache(s, 3)
    freed = s.run(k, try_to_free_mem_cgroup_pages(k, s.memcg_id, False))
    assert not any(p in s.mm.pages for p in pfns)  # all three were freed ...
    assert len(pfns) < SWAP_CLUSTER_MAX
    assert freed == 0  # ... and the kernel reports no progress


def test_w5_noswap_memcg_reclaim_scans_anon_at_priority_0_in_2_6_30() -> None:
    """K30 vmscan.c shrink_zone(): get_scan_ratio()'s percentages (anon 0 % when
    !may_swap) are applied only ``if (priority)``; at priority 0 the whole anon list is
    scanned.  Noswap memcg reclaim (memsw limit hit) there frees swap-cache pages through
    __remove_mapping(): the page goes, its charge moves to the swap slot."""
    s = Script.create("none")
    k, pfns = _memcg_pages_in_swap_cache(s, 1)
    entry = s.mm.pages[pfns[0]].private
    s.run(k, try_to_free_mem_cgroup_pages(k, s.memcg_id, True))
    assert pfns[0] not in s.mm.pages
    assert s.mm.swap.swap_map[entry] == 1  # A's swap pte only
    group = s.memcg.group(s.memcg_id)
    assert group.res.usage == 0 and group.memsw.usage == PAGE_SIZE


def test_w5_noswap_memcg_reclaim_scans_no_anon_in_2_6_31() -> None:
    """K31 vmscan.c shrink_zone(): ``if (priority || noswap)``: with noswap the anon
    scan target is 0 at every priority."""
    s = Script.create("upstream")
    k, pfns = _memcg_pages_in_swap_cache(s, 1)
    s.run(k, try_to_free_mem_cgroup_pages(k, s.memcg_id, True))
    assert pfns[0] in s.mm.pages and s.mm.pages[pfns[0]].swapcache


def test_w7_swapcache_free_never_records_on_a_reused_slot() -> None:
    """K31 swapfile.c swapcache_free(): swap_entry_free(SWAP_CACHE) and
    mem_cgroup_uncharge_swapcache() (with its swap_cgroup_record()) run under one
    swap_lock.  Here A's last swap pte is zapped, the slot is given to B's page Q and
    try_to_unmap(Q) takes a reference, all while kswapd is inside __remove_mapping()'s
    swapcache_free() of A's page: A's record must not land on Q's slot, where Q's own
    record (Q leaves the cache while B's swap pte holds the slot) would overwrite it
    and the memsw charge it stands for would never be uncharged."""
    s = Script.create("upstream", swap_pages=1)
    a, b = s.task("A"), s.task("B")
    k, k2 = s.kthread("kswapd"), s.kthread("kswapd2")
    pfn = s.fault(a, 0)
    q = s.fault(b, 0)
    s.run(k, s.reclaim(k, [pfn], drain=True, age=True))  # written; slot 1 = A's pte + cache
    s.pte(b, 0).young = False
    s.race(
        [
            Run("kswapd", through=call("mem_cgroup_uncharge_swapcache", a0=pfn)),
            Run("A"),  # exits: its swap pte goes
            Run("kswapd2", through=call("try_to_unmap", a0=q)),
        ],
        [(k, s.reclaim(k, [pfn], drain=True)), (a, s.exit(a)), (k2, s.reclaim(k2, [q]))],
    )
    s.drain_all()
    s.run(k2, s.reclaim(k2, [q], drain=True))  # Q leaves the cache: its slot is recorded
    s.exit_all()
    assert s.check() == []
    group = s.memcg.group(s.memcg_id)
    assert group.memsw.usage == group.res.usage == 0
    assert group.swap_refs == 0


def test_w8_a_readahead_page_is_not_anon_until_mapped() -> None:
    """K30 swap_state.c read_swap_cache_async() sets only PG_locked and PG_swapbacked;
    PageAnon comes with page_add_anon_rmap() in do_swap_page().  A readahead page that
    leaves the swap cache unmapped while reclaim holds it isolated is !PageAnon with no
    mapping: shrink_page_list() does not add_to_swap() it; pageout() answers PAGE_KEEP
    (!is_page_cache_freeable) -> keep_locked, and the page is freed at putback."""
    s = Script.create("none")
    a, b = s.task("A"), s.task("B")
    pa, pb = s.fault(a, 0), s.fault(b, 0)
    s.swap_out([pa, pb])
    ea, eb = s.pte(a, 0).val, s.pte(b, 0).val
    s.run(b, handle_mm_fault(b, b.task, 0, False))  # readahead brings eA's page in too
    ra = s.mm.swapper_space[ea]
    assert not s.mm.pages[ra].mapcount and s.mm.pages[s.pte(b, 0).val].private == eb
    assert not s.mm.pages[ra].anon
    k = s.kthread()
    before, mark = dict(s.world.engine.results), len(s.world.engine.trace)
    s.race(
        [
            Run("kswapd", through=call("isolate_lru_pages_of", a1=False)),
            Run("A"),  # exits: free_swap_and_cache(eA) deletes the readahead page
        ],
        [(k, s.reclaim(k, [ra], drain=True)), (a, s.exit(a))],
    )
    assert _results_since(s, before) == {"keep_locked": 1}
    assert "get_swap_page" not in _prims(s, "kswapd", mark)
    assert ra not in s.mm.pages
    s.exit_all()
    assert s.check() == []
