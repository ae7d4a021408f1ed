"""Models mm/filemap.c: the page lock, find_get_page(), end_page_writeback(), put_page().

PG_locked is a sleeping lock: trylock_page() can fail, lock_page() waits its
turn (the primitive answers WouldBlock and is run again when unlock_page()
wakes the page's wait queue).
"""

from __future__ import annotations

from typing import NamedTuple

from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import PAGEVEC_SIZE, Page
from kernsim.model.port import WouldBlock, primitive


class PageFlags(NamedTuple):
    """A lockless read of a page's flags (PageSwapCache(), page_mapped(), ...)."""

    swapcache: bool
    writeback: bool
    mapped: bool
    dirty: bool
    locked: bool
    uptodate: bool
    anon: bool
    refcount: int
    private: int


@primitive("mm", "page")
def page_flags(mm: MmState, pfn: int) -> PageFlags:
    """Read PageSwapCache(), PageWriteback(), page_mapped() ... in one go."""
    p = mm.page(pfn)
    return PageFlags(
        p.swapcache,
        p.writeback,
        p.mapcount > 0,
        p.dirty,
        p.locked,
        p.uptodate,
        p.anon,
        p.count,
        p.private,
    )


@primitive("mm", "page")
def trylock_page(mm: MmState, pfn: int) -> bool:
    """Models trylock_page(): test_and_set_bit_lock(PG_locked)."""
    page = mm.page(pfn)
    if page.locked:
        return False
    page.locked = True
    return True


@primitive("mm", "page")
def lock_page(mm: MmState, pfn: int) -> bool | WouldBlock:
    """Models lock_page(): sleeps on the page's wait queue until PG_locked is ours."""
    page = mm.page(pfn)
    if page.locked:
        return WouldBlock(("PG_locked", pfn))
    page.locked = True
    return True


@primitive("mm", "page")
def unlock_page(mm: MmState, pfn: int) -> None:
    """Models unlock_page(): clear PG_locked and wake the waiters."""
    page = mm.page(pfn)
    if not page.locked:
        raise KernelBug(f"unlock_page: page {pfn} is not locked")
    page.locked = False
    mm.woken.append(("PG_locked", pfn))


@primitive("mm", "swp")
def find_get_page(mm: MmState, entry: int) -> int:
    """Models find_get_page(&swapper_space, entry): the cache page with a reference, or 0."""
    pfn = mm.swapper_space.get(entry, 0)
    if pfn:
        mm.pages[pfn].count += 1
    return pfn


def put_page(mm: MmState, page: Page) -> bool:
    """Models put_page(): drop a reference; at zero take it off the LRU and free it."""
    page.count -= 1
    if page.count > 0:
        return False
    if page.count < 0:
        raise KernelBug(f"put_page: page {page.pfn} count went negative")
    if page.swapcache or page.mapcount or page.locked or page.writeback:
        raise KernelBug(f"freeing page {page.pfn} still in use: {page}")
    if page.lru:  # __page_cache_release()
        (mm.lru_active if page.active else mm.lru_inactive).pop(page.pfn, None)
        page.lru = False
    del mm.pages[page.pfn]
    mm.nr_free_pages += 1
    return True


@primitive("mm", "page")
def page_cache_release(mm: MmState, pfn: int) -> bool:
    """Models page_cache_release() (put_page); True when the page was freed."""
    return put_page(mm, mm.page(pfn))


@primitive("mm", "page")
def end_page_writeback(mm: MmState, pfn: int, cpu: str) -> bool:
    """Models end_page_writeback() with rotate_reclaimable_page(), in interrupt context.

    If PG_reclaim was set (pageout() sets it) and the page is unlocked, clean,
    inactive and on the LRU, rotate_reclaimable_page() takes an extra reference
    while the page waits in this CPU's lru_rotate_pvecs.  That reference makes
    __remove_mapping()'s page_freeze_refs(page, 2) fail until the pagevec drains.
    Returns True when the page was put on the rotate pagevec.
    """
    page = mm.page(pfn)
    rotated = False
    if page.reclaim:
        page.reclaim = False
        if not page.locked and not page.dirty and not page.active and page.lru:
            page.count += 1
            pvec = mm.lru_rotate_pvecs.setdefault(cpu, [])
            pvec.append(pfn)
            rotated = True
            mm.count("rotate_reclaimable_page")
            if len(pvec) >= PAGEVEC_SIZE:
                pagevec_move_tail(mm, cpu)
    if not page.writeback:
        raise KernelBug(f"end_page_writeback: page {pfn} is not under writeback")
    page.writeback = False
    mm.woken.append(("PG_writeback", pfn))
    return rotated


def pagevec_move_tail(mm: MmState, cpu: str) -> None:
    """Models pagevec_move_tail(): rotate to the LRU tail, then release the references."""
    pvec = mm.lru_rotate_pvecs.get(cpu)
    if not pvec:
        return
    mm.lru_rotate_pvecs[cpu] = []
    for pfn in pvec:
        page = mm.pages[pfn]
        if page.lru and not page.active:
            mm.lru_inactive.move_to_end(pfn, last=False)
        put_page(mm, page)
