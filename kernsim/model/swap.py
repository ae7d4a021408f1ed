"""Models mm/swap.c: put_page(), per-CPU pagevecs and the LRU lists (one zone, anon only).

The first key of an LRU OrderedDict is the list's tail in kernel terms: the
page that reclaim isolates next.  New pages go to the other end.
"""

from __future__ import annotations

from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import PAGEVEC_SIZE, Page
from kernsim.model.port import primitive


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


def pagevec_move_tail(mm: MmState, cpu: str) -> None:
    """Models pagevec_move_tail(): rotate to the LRU tail, then release the references."""
    pvec = mm.lru_rotate_pvecs.get(cpu)
    if not pvec:
        return
    # Drained: the entry goes, so that the CPUs of exited tasks leave nothing behind
    # (a kernel CPU's pagevec is per-CPU storage; ours are per simulated CPU).
    del mm.lru_rotate_pvecs[cpu]
    for pfn in pvec:
        page = mm.pages[pfn]
        if page.lru and not page.active:
            mm.lru_inactive.move_to_end(pfn, last=False)
        put_page(mm, page)


def rotate_reclaimable_page(mm: MmState, page: Page, cpu: str) -> bool:
    """Models rotate_reclaimable_page(), called by end_page_writeback() in interrupt context.

    If the page is unlocked, clean, inactive and on the LRU, take an extra reference
    while it waits in this CPU's lru_rotate_pvecs.  That reference makes
    __remove_mapping()'s page_freeze_refs(page, 2) fail until the pagevec drains.
    Returns True when the page was put on the rotate pagevec.
    """
    if page.locked or page.dirty or page.active or not page.lru:
        return False
    page.count += 1
    pvec = mm.lru_rotate_pvecs.setdefault(cpu, [])
    pvec.append(page.pfn)
    mm.count("rotate_reclaimable_page")
    if len(pvec) >= PAGEVEC_SIZE:
        pagevec_move_tail(mm, cpu)
    return True


def _pagevec_lru_add(mm: MmState, cpu: str) -> None:
    """Models ____pagevec_lru_add(): SetPageLRU, onto the list, drop the pagevec's reference."""
    pvec = mm.lru_add_pvecs.get(cpu)
    if not pvec:
        return
    del mm.lru_add_pvecs[cpu]  # drained: see pagevec_move_tail()
    for pfn, active in pvec:
        page = mm.pages[pfn]
        if page.lru:
            raise KernelBug(f"page {pfn} added to the LRU twice")
        page.lru = True
        page.active = active
        (mm.lru_active if active else mm.lru_inactive)[pfn] = None
        put_page(mm, page)


@primitive("mm", "page")
def lru_cache_add(mm: MmState, pfn: int, cpu: str, active: bool) -> None:
    """Models lru_cache_add_anon() / lru_cache_add_active_or_unevictable().

    The page waits in this CPU's pagevec, holding a reference, until the pagevec
    fills or lru_add_drain() runs on this CPU.
    """
    page = mm.page(pfn)
    page.count += 1
    pvec = mm.lru_add_pvecs.setdefault(cpu, [])
    pvec.append((pfn, active))
    if len(pvec) >= PAGEVEC_SIZE:
        _pagevec_lru_add(mm, cpu)


@primitive("mm")
def lru_add_drain(mm: MmState, cpu: str) -> None:
    """Models lru_add_drain(): drain this CPU's lru_add and lru_rotate pagevecs."""
    _pagevec_lru_add(mm, cpu)
    pagevec_move_tail(mm, cpu)


@primitive("mm")
def lru_add_drain_all(mm: MmState) -> None:
    """Models lru_add_drain_all(): every CPU drains its pagevecs (schedule_on_each_cpu)."""
    for cpu in sorted(set(mm.lru_add_pvecs) | set(mm.lru_rotate_pvecs)):
        _pagevec_lru_add(mm, cpu)
        pagevec_move_tail(mm, cpu)


@primitive("mm")
def release_pages(mm: MmState, pfns: list[int]) -> int:
    """Models release_pages(): drop one reference on each page; returns how many were freed."""
    return sum(put_page(mm, mm.page(pfn)) for pfn in pfns)
