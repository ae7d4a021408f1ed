"""mm/filemap.c and mm/swap.c: the page lock, page references, end_page_writeback()'s
rotate_reclaimable_page(), and the per-CPU lru_add pagevec (K30 = 2.6.30.4)."""

from __future__ import annotations

import pytest

from kernsim.model.filemap import (
    end_page_writeback,
    find_get_page,
    lock_page,
    page_cache_release,
    trylock_page,
    unlock_page,
)
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import PAGEVEC_SIZE
from kernsim.model.port import WouldBlock
from kernsim.model.swap import lru_add_drain, lru_cache_add
from kernsim.model.vmscan import putback_lru_page
from tests.support.unitkit import new_page, swapcache_page

# --- PG_locked ---------------------------------------------------------------------


def test_trylock_page_fails_under_a_held_lock(mm30: MmState) -> None:
    """K30 trylock_page(): test_and_set_bit_lock(PG_locked) -- succeeds once, then fails
    until unlock_page()."""
    pfn = new_page(mm30)
    assert trylock_page(mm30, pfn) is True
    assert trylock_page(mm30, pfn) is False
    assert mm30.pages[pfn].locked


def test_lock_page_on_a_locked_page_would_block_and_changes_nothing(mm30: MmState) -> None:
    """K30 lock_page() -> __lock_page(): sleeps on the page's PG_locked wait queue; the
    primitive must answer WouldBlock(("PG_locked", pfn)) without touching the page."""
    pfn = new_page(mm30)
    assert lock_page(mm30, pfn) is True
    before = (mm30.pages[pfn].count, mm30.pages[pfn].locked, list(mm30.woken))
    res = lock_page(mm30, pfn)
    assert res == WouldBlock(("PG_locked", pfn))
    assert (mm30.pages[pfn].count, mm30.pages[pfn].locked, list(mm30.woken)) == before


def test_unlock_page_wakes_the_waiters(mm30: MmState) -> None:
    """K30 unlock_page(): clear PG_locked, then wake_up_page(page, PG_locked)."""
    pfn = new_page(mm30)
    trylock_page(mm30, pfn)
    unlock_page(mm30, pfn)
    assert not mm30.pages[pfn].locked
    assert mm30.woken == [("PG_locked", pfn)]
    assert lock_page(mm30, pfn) is True


def test_unlock_page_of_an_unlocked_page_is_a_bug(mm30: MmState) -> None:
    """K30 unlock_page(): ``VM_BUG_ON(!PageLocked(page))``."""
    pfn = new_page(mm30)
    with pytest.raises(KernelBug):
        unlock_page(mm30, pfn)


# --- references --------------------------------------------------------------------


def test_find_get_page_takes_a_reference(mm30: MmState) -> None:
    """K30 find_get_page(&swapper_space, e): the cache page with page_cache_get(), or NULL."""
    pfn, entry = swapcache_page(mm30)
    refs = mm30.pages[pfn].count
    assert find_get_page(mm30, entry) == pfn
    assert mm30.pages[pfn].count == refs + 1
    assert find_get_page(mm30, entry + 1) == 0


def test_put_page_frees_at_zero(mm30: MmState) -> None:
    """K30 put_page(): the last reference frees the page."""
    pfn = new_page(mm30)
    free = mm30.nr_free_pages
    assert page_cache_release(mm30, pfn) is True
    assert pfn not in mm30.pages
    assert mm30.nr_free_pages == free + 1


def test_freeing_a_page_still_in_swap_cache_is_a_bug(mm30: MmState) -> None:
    """K30 free_pages_check() -> bad_page(): a freed page must not be PG_swapcache/locked.
    Dropping the cache's reference by hand leaves a page that must not be freed."""
    pfn, _ = swapcache_page(mm30)
    page_cache_release(mm30, pfn)  # the allocation reference
    with pytest.raises(KernelBug):
        page_cache_release(mm30, pfn)  # would free a page still in the swap cache


def test_lru_cache_add_holds_a_pagevec_reference_until_drained(mm30: MmState) -> None:
    """K30 __lru_cache_add(): page_cache_get() while the page waits in this CPU's
    lru_add_pvecs; ____pagevec_lru_add() sets PageLRU and release_pages() drops it."""
    pfn = new_page(mm30)
    lru_cache_add(mm30, pfn, "cpu0", False)
    assert mm30.pages[pfn].count == 2
    assert not mm30.pages[pfn].lru
    lru_add_drain(mm30, "cpu1")  # another CPU's drain does not touch cpu0's pagevec
    assert mm30.pages[pfn].count == 2
    lru_add_drain(mm30, "cpu0")
    assert mm30.pages[pfn].count == 1
    assert mm30.pages[pfn].lru
    assert pfn in mm30.lru_inactive


def test_a_full_lru_add_pagevec_drains_itself(mm30: MmState) -> None:
    """K30 __lru_cache_add(): ``if (!pagevec_add(pvec, page)) ____pagevec_lru_add()`` --
    the PAGEVEC_SIZE-th page flushes the pagevec."""
    pfns = [new_page(mm30) for _ in range(PAGEVEC_SIZE)]
    for pfn in pfns[:-1]:
        lru_cache_add(mm30, pfn, "cpu0", True)
    assert not any(mm30.pages[p].lru for p in pfns)
    lru_cache_add(mm30, pfns[-1], "cpu0", True)
    assert all(mm30.pages[p].lru and mm30.pages[p].count == 1 for p in pfns)
    assert list(mm30.lru_active) == pfns


# --- end_page_writeback() and rotate_reclaimable_page() ------------------------------


def _written_page(mm: MmState) -> int:
    """An inactive swap-cache page on the LRU, under writeback with PG_reclaim, unlocked
    and clean: what pageout() leaves behind for end_swap_bio_write()."""
    pfn, _ = swapcache_page(mm)
    page = mm.pages[pfn]
    page.count += 1  # isolated
    putback_lru_page(mm, pfn, False)
    page.writeback = True
    page.reclaim = True
    return pfn


def test_end_page_writeback_rotates_a_reclaim_page(mm30: MmState) -> None:
    """K30 end_page_writeback(): TestClearPageReclaim() -> rotate_reclaimable_page(), which
    takes page_cache_get() while the page sits in this CPU's lru_rotate_pvecs; then
    PG_writeback is cleared and its waiters woken."""
    pfn = _written_page(mm30)
    refs = mm30.pages[pfn].count
    assert end_page_writeback(mm30, pfn, "irq") is True
    page = mm30.pages[pfn]
    assert page.count == refs + 1
    assert mm30.lru_rotate_pvecs["irq"] == [pfn]
    assert not page.reclaim
    assert not page.writeback
    assert ("PG_writeback", pfn) in mm30.woken
    lru_add_drain(mm30, "irq")  # pagevec_move_tail(): to the tail, reference dropped
    assert page.count == refs
    assert next(iter(mm30.lru_inactive)) == pfn


@pytest.mark.parametrize("why", ["locked", "dirty", "active", "not_on_lru", "no_reclaim"])
def test_end_page_writeback_does_not_rotate(mm30: MmState, why: str) -> None:
    """K30 rotate_reclaimable_page(): only ``!PageLocked && !PageDirty && !PageActive &&
    PageLRU`` pages are rotated (and only with PG_reclaim); otherwise no extra reference."""
    pfn = _written_page(mm30)
    page = mm30.pages[pfn]
    if why == "locked":
        page.locked = True
    elif why == "dirty":
        page.dirty = True
    elif why == "active":
        mm30.lru_inactive.pop(pfn)
        mm30.lru_active[pfn] = None
        page.active = True
    elif why == "not_on_lru":
        mm30.lru_inactive.pop(pfn)
        page.lru = False
    else:
        page.reclaim = False
    refs = page.count
    assert end_page_writeback(mm30, pfn, "irq") is False
    assert page.count == refs
    assert not mm30.lru_rotate_pvecs.get("irq")
    assert not page.reclaim
    assert not page.writeback


def test_end_page_writeback_without_writeback_is_a_bug(mm30: MmState) -> None:
    """K30 end_page_writeback(): ``if (!test_clear_page_writeback(page)) BUG();``"""
    pfn, _ = swapcache_page(mm30)
    with pytest.raises(KernelBug):
        end_page_writeback(mm30, pfn, "irq")
