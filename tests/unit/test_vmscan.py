"""mm/vmscan.c (2.6.30): pageout(), __remove_mapping()'s page_freeze_refs(page, 2), and the
exits of shrink_page_list() that decide whether a stale swap cache page is left behind."""

from __future__ import annotations

import pytest

from kernsim.model.filemap import find_get_page, page_cache_release, trylock_page, unlock_page
from kernsim.model.mm import MmState
from kernsim.model.swap_state import add_to_swap_cache
from kernsim.model.swapfile import get_swap_page, swap_duplicate
from kernsim.model.vmscan import (
    KEEP,
    KEEP_LOCKED,
    PAGE_CLEAN,
    PAGE_KEEP,
    ScanControl,
    isolate_lru_pages_of,
    pageout_prepare,
    putback_lru_page,
    remove_mapping_freeze,
    shrink_page_list,
)
from tests.support.unitkit import Machine, make_machine, new_page, swapcache_page


def isolated_swapcache_page(mm: MmState, dirty: bool = False) -> tuple[int, int]:
    """An unmapped, locked swap-cache page isolated from the LRU: count 2 (cache +
    isolation), as shrink_page_list() holds it."""
    pfn, entry = swapcache_page(mm, locked=True)
    page = mm.pages[pfn]
    page.dirty = dirty
    assert page.count == 2  # the allocation reference stands for the isolation one
    return pfn, entry


def test_remove_mapping_succeeds_with_exactly_two_references(mm30: MmState) -> None:
    """K30 __remove_mapping(): page_freeze_refs(page, 2) takes the cache's and the
    isolation's references; __delete_from_swap_cache() empties the slot's cache."""
    pfn, entry = isolated_swapcache_page(mm30)
    assert remove_mapping_freeze(mm30, pfn) == (True, entry)
    page = mm30.pages[pfn]
    assert page.count == 0
    assert not page.swapcache and page.private == 0
    assert entry not in mm30.swapper_space
    assert mm30.swap.swap_map[entry] == 1  # swap_free() follows, outside tree_lock


def test_remove_mapping_fails_with_a_third_reference(mm30: MmState) -> None:
    """K30 __remove_mapping(): page_freeze_refs() fails on any extra reference
    (find_get_page() of a racing free_swap_and_cache(), the rotate pagevec, ...)."""
    pfn, entry = isolated_swapcache_page(mm30)
    assert find_get_page(mm30, entry) == pfn
    assert remove_mapping_freeze(mm30, pfn) == (False, 0)
    assert mm30.pages[pfn].count == 3
    assert mm30.swapper_space[entry] == pfn


def test_remove_mapping_fails_on_a_dirty_page(mm30: MmState) -> None:
    """K30 __remove_mapping(): ``if (unlikely(PageDirty(page))) page_unfreeze_refs(page, 2);
    goto cannot_free`` -- the count is restored."""
    pfn, entry = isolated_swapcache_page(mm30, dirty=True)
    assert remove_mapping_freeze(mm30, pfn) == (False, 0)
    assert mm30.pages[pfn].count == 2
    assert mm30.swapper_space[entry] == pfn


def test_pageout_keeps_a_page_with_an_extra_reference(mm30: MmState) -> None:
    """K30 pageout(): ``if (!is_page_cache_freeable(page)) return PAGE_KEEP;`` (page_count
    != 2) -- nothing is cleared or written."""
    pfn, entry = isolated_swapcache_page(mm30, dirty=True)
    find_get_page(mm30, entry)
    assert pageout_prepare(mm30, pfn) == PAGE_KEEP
    assert mm30.pages[pfn].dirty and not mm30.pages[pfn].reclaim


def test_pageout_of_a_clean_page(mm30: MmState) -> None:
    """K30 pageout(): ``clear_page_dirty_for_io()`` false -> PAGE_CLEAN, no write."""
    pfn, _ = isolated_swapcache_page(mm30)
    assert pageout_prepare(mm30, pfn) == PAGE_CLEAN


def test_pageout_sets_reclaim_and_cleans_before_writing(mm30: MmState) -> None:
    """K30 pageout(): clear_page_dirty_for_io(), SetPageReclaim(), then ->writepage."""
    pfn, _ = isolated_swapcache_page(mm30, dirty=True)
    assert pageout_prepare(mm30, pfn) == "write"
    page = mm30.pages[pfn]
    assert not page.dirty and page.reclaim


# --- shrink_page_list() exits --------------------------------------------------------


def _lru_anon_page(m: Machine, referenced: bool) -> int:
    """An unmapped, uncharged, dirty anon page on the inactive LRU, not in swap cache: the
    page Type-2 is about once its pte was zapped."""
    pfn = new_page(m.mm)
    page = m.mm.pages[pfn]
    page.anon = page.swapbacked = page.uptodate = page.dirty = True
    page.referenced = referenced
    page.count += 1  # isolated ...
    putback_lru_page(m.mm, pfn, False)  # ... and put back: count 1, on the LRU
    return pfn


@pytest.mark.parametrize("variant", ["none", "v5", "upstream"])
def test_type_2_referenced_dirty_page_ends_at_keep_locked(variant: str) -> None:
    """K30 shrink_page_list(): PageAnon && !PageSwapCache -> add_to_swap (swap_map 1,
    SetPageDirty); not mapped; ``if (PageDirty(page)) { if (referenced) goto keep_locked;``
    -- a cache-only, uncharged page with no I/O and no __remove_mapping (Type-2)."""
    m = make_machine(variant)
    pfn = _lru_anon_page(m, referenced=True)
    k = m.kthread()
    assert isolate_lru_pages_of(m.mm, [pfn], False) == [pfn]
    m.run(k, shrink_page_list(k, [pfn], ScanControl()))
    assert m.world.engine.results == {KEEP_LOCKED: 1}
    page = m.mm.pages[pfn]
    assert page.swapcache and not page.writeback and not page.locked and page.lru
    cache_only = 0x8000 if variant == "upstream" else 1
    assert m.mm.swap.swap_map[page.private] == cache_only
    assert pfn not in m.memcg.page_cgroup


def test_shrink_page_list_skips_a_locked_page() -> None:
    """K30 shrink_page_list(): ``if (!trylock_page(page)) goto keep;`` -- untouched."""
    m = make_machine()
    pfn = _lru_anon_page(m, referenced=False)
    isolate_lru_pages_of(m.mm, [pfn], False)
    trylock_page(m.mm, pfn)
    k = m.kthread()
    m.run(k, shrink_page_list(k, [pfn], ScanControl()))
    assert m.world.engine.results == {KEEP: 1}
    assert not m.mm.pages[pfn].swapcache
    assert m.mm.pages[pfn].locked  # still the other holder's


@pytest.mark.parametrize("racing_ref", [True, False])
def test_pageout_page_keep_ends_at_keep_locked(racing_ref: bool) -> None:
    """K30 shrink_page_list(): pageout() == PAGE_KEEP -> keep_locked (Ex. A: a concurrent
    free_swap_and_cache()'s find_get_page() reference); the page stays in the swap cache,
    dirty, unlocked, back on the LRU.  Without that reference the same page is written
    (async: ``keep`` under writeback)."""
    m = make_machine()
    pfn = _lru_anon_page(m, referenced=False)
    # Already in the swap cache from an earlier pass, unmapped and dirty: Ex. A's P.
    trylock_page(m.mm, pfn)
    entry = get_swap_page(m.mm)
    add_to_swap_cache(m.mm, pfn, entry, False)
    unlock_page(m.mm, pfn)
    page_cache_release(m.mm, pfn)  # unmapped: only the cache's reference is left
    swap_duplicate(m.mm, entry)  # A's swap pte, about to be zapped on the other CPU
    isolate_lru_pages_of(m.mm, [pfn], False)
    if racing_ref:
        find_get_page(m.mm, entry)
    k = m.kthread()
    m.run(k, shrink_page_list(k, [pfn], ScanControl()))
    page = m.mm.pages[pfn]
    assert page.lru and not page.locked and page.swapcache
    if racing_ref:
        assert m.world.engine.results == {KEEP_LOCKED: 1}
        assert page.dirty and not page.reclaim
        assert page.count == 2  # the cache's and the racing CPU's
    else:
        assert m.world.engine.results == {KEEP: 1}
        assert not page.dirty
        assert m.mm.stats.get("rotate_reclaimable_page") == 1  # the write completed
