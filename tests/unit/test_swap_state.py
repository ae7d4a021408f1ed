"""mm/swap_state.c: the swap cache (swapper_space) and swap-in readahead (K30 = 2.6.30.4)."""

from __future__ import annotations

from errno import EEXIST

import pytest

from kernsim.model.filemap import trylock_page
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.swap_state import (
    __delete_from_swap_cache,
    add_to_swap_cache,
    free_swap_cache_trylock,
    read_swap_cache_async,
    swapin_readahead,
)
from kernsim.model.swapfile import get_swap_page
from tests.support.unitkit import make_machine, new_page, swapcache_page


def test_add_to_swap_cache_takes_a_reference(mm30: MmState) -> None:
    """K30 add_to_swap_cache(): page_cache_get(), SetPageSwapCache, page_private = entry,
    radix_tree_insert(); swap_map is not touched."""
    entry = get_swap_page(mm30)
    pfn = new_page(mm30)
    trylock_page(mm30, pfn)
    assert add_to_swap_cache(mm30, pfn, entry, False) == 0
    page = mm30.pages[pfn]
    assert page.count == 2
    assert page.swapcache and page.private == entry
    assert mm30.swapper_space[entry] == pfn
    assert mm30.swap.swap_map[entry] == 1


def test_add_to_swap_cache_of_a_cached_entry_is_eexist(mm30: MmState) -> None:
    """K30 add_to_swap_cache(): radix_tree_insert() -EEXIST undoes everything (private 0,
    ClearPageSwapCache, page_cache_release)."""
    _, entry = swapcache_page(mm30)
    other = new_page(mm30)
    trylock_page(mm30, other)
    assert add_to_swap_cache(mm30, other, entry, False) == -EEXIST
    page = mm30.pages[other]
    assert page.count == 1
    assert not page.swapcache and page.private == 0


def test_add_to_swap_cache_needs_the_page_lock(mm30: MmState) -> None:
    """K30 add_to_swap_cache(): ``VM_BUG_ON(!PageLocked(page))``."""
    entry = get_swap_page(mm30)
    pfn = new_page(mm30)
    with pytest.raises(KernelBug):
        add_to_swap_cache(mm30, pfn, entry, False)


def test_new_readahead_page_is_added_locked(mm30: MmState) -> None:
    """K30 read_swap_cache_async(): __set_page_locked() and SetPageSwapBacked() before
    add_to_swap_cache(); the page stays locked until end_swap_bio_read().  It is not
    PageAnon: page->mapping is set by page_add_anon_rmap() when do_swap_page() maps it."""
    entry = get_swap_page(mm30)
    pfn = new_page(mm30)
    assert add_to_swap_cache(mm30, pfn, entry, True) == 0
    page = mm30.pages[pfn]
    assert page.locked and page.swapbacked and not page.anon


def test_delete_from_swap_cache_needs_lock_and_no_writeback(mm30: MmState) -> None:
    """K30 __delete_from_swap_cache(): VM_BUG_ON(!PageLocked), VM_BUG_ON(PageWriteback)."""
    pfn, entry = swapcache_page(mm30)
    with pytest.raises(KernelBug):
        __delete_from_swap_cache(mm30, pfn)
    trylock_page(mm30, pfn)
    mm30.pages[pfn].writeback = True
    with pytest.raises(KernelBug):
        __delete_from_swap_cache(mm30, pfn)
    mm30.pages[pfn].writeback = False
    assert __delete_from_swap_cache(mm30, pfn) == (entry, False)
    assert entry not in mm30.swapper_space
    assert not mm30.pages[pfn].swapcache
    assert mm30.swap.swap_map[entry] == 1  # swap_free() is the caller's job


def test_free_swap_cache_is_a_trylock_of_unmapped_cache_pages(mm30: MmState) -> None:
    """K30 free_swap_cache(): ``PageSwapCache && !page_mapped && trylock_page`` -- a locked
    or mapped page is skipped (best effort)."""
    pfn, _ = swapcache_page(mm30)
    mm30.pages[pfn].mapcount = 1
    assert free_swap_cache_trylock(mm30, pfn) is False
    mm30.pages[pfn].mapcount = 0
    assert free_swap_cache_trylock(mm30, pfn) is True
    assert free_swap_cache_trylock(mm30, pfn) is False  # already locked


# --- code paths ---------------------------------------------------------------------


def test_read_swap_cache_async_of_a_freed_entry_gives_up() -> None:
    """K30 read_swap_cache_async(): ``if (!swap_duplicate(entry)) break;`` -- the new
    page is released and NULL returned; nothing enters the swap cache."""
    m = make_machine()
    k = m.kthread()
    pages = len(m.mm.pages)
    assert m.run(k, read_swap_cache_async(k, 3)) == 0
    assert len(m.mm.pages) == pages
    assert not m.mm.swapper_space


def test_read_swap_cache_async_returns_a_cached_page_with_a_reference() -> None:
    """K30 read_swap_cache_async(): ``found_page = find_get_page(...)`` -- an existing
    cache page is returned (one more reference) and swap_map is unchanged."""
    m = make_machine()
    pfn, entry = swapcache_page(m.mm)
    refs = m.mm.pages[pfn].count
    k = m.kthread()
    assert m.run(k, read_swap_cache_async(k, entry)) == pfn
    assert m.mm.pages[pfn].count == refs + 1
    assert m.mm.swap.swap_map[entry] == 1


@pytest.mark.parametrize("variant", ["none", "upstream"])
def test_swapin_readahead_reads_the_window_uncharged(variant: str) -> None:
    """K30 swapin_readahead(): read_swap_cache_async() for every slot valid_swaphandles()
    names (each takes a swap_map reference for its cache page: swap_duplicate, or
    K31 swapcache_prepare), drop the readahead references, and return the target's page.
    Readahead pages are not charged ("memcg: handle swap caches")."""
    m = make_machine(variant, page_cluster=2)
    mm = m.mm
    entries = [get_swap_page(mm) for _ in range(4)]  # slots 1..4
    for e in entries:  # each slot: its cache page gone, one pte reference left
        mm.swap.swap_map[e] = 1
    k = m.kthread()
    pfn = m.run(k, swapin_readahead(k, entries[1]))
    assert mm.swapper_space[entries[1]] == pfn
    # valid_swaphandles(2) with page_cluster 2: block 0..3 -> slots 1..3; slot 4 is not read.
    assert sorted(mm.swapper_space) == entries[:3]
    cache_ref = 0x8000 if variant == "upstream" else 1
    for e in entries[:3]:
        assert mm.swap.swap_map[e] == 1 + cache_ref
        page = mm.pages[mm.swapper_space[e]]
        assert page.uptodate and not page.locked  # the read completed
    assert mm.swap.swap_map[entries[3]] == 1
    assert not m.memcg.page_cgroup
    assert m.memcg.group(m.memcg_id).res.usage == 0
