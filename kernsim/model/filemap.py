"""Models mm/filemap.c: the page lock, find_get_page(), end_page_writeback().

PG_locked is a sleeping lock: trylock_page() can fail, lock_page() waits its
turn (the primitive answers WouldBlock and is run again when unlock_page()
wakes the page's wait queue).
"""

from __future__ import annotations

from typing import NamedTuple

from kernsim.model.mm import KernelBug, MmState
from kernsim.model.port import WouldBlock, primitive
from kernsim.model.swap import put_page, rotate_reclaimable_page


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


@primitive("mm", "page")
def page_cache_get(mm: MmState, pfn: int) -> None:
    """Models page_cache_get() (get_page): one more reference on a page the caller holds
    by a pte or a lock."""
    mm.page(pfn).count += 1


@primitive("mm", "page")
def page_cache_release(mm: MmState, pfn: int) -> bool:
    """Models page_cache_release() (put_page); True when the page was freed."""
    return put_page(mm, mm.page(pfn))


@primitive("mm", "page")
def end_page_writeback(mm: MmState, pfn: int, cpu: str) -> bool:
    """Models end_page_writeback(), in interrupt context: if TestClearPageReclaim(),
    rotate_reclaimable_page(); then clear PG_writeback and wake its waiters.
    Returns True when the page was put on the rotate pagevec."""
    page = mm.page(pfn)
    rotated = False
    if page.reclaim:
        page.reclaim = False
        rotated = rotate_reclaimable_page(mm, page, cpu)
    if not page.writeback:
        raise KernelBug(f"end_page_writeback: page {pfn} is not under writeback")
    page.writeback = False
    mm.woken.append(("PG_writeback", pfn))
    return rotated
