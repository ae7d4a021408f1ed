"""Models mm/swap.c: per-CPU pagevecs and the LRU lists (one zone, anon only).

The first key of an LRU OrderedDict is the list's tail in kernel terms: the
page that reclaim isolates next.  New pages go to the other end.
"""

from __future__ import annotations

from kernsim.model.filemap import pagevec_move_tail, put_page
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import PAGEVEC_SIZE
from kernsim.model.port import primitive


def _pagevec_lru_add(mm: MmState, cpu: str) -> None:
    """Models ____pagevec_lru_add(): SetPageLRU, onto the list, drop the pagevec's reference."""
    pvec = mm.lru_add_pvecs.get(cpu)
    if not pvec:
        return
    mm.lru_add_pvecs[cpu] = []
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


def _isolate(mm: MmState, pfn: int) -> bool:
    """Models __isolate_lru_page() + del_page_from_lru(): take it off, with a reference."""
    page = mm.pages.get(pfn)
    if page is None or not page.lru or page.count == 0:
        return False
    (mm.lru_active if page.active else mm.lru_inactive).pop(pfn)
    page.lru = False
    page.count += 1
    return True


@primitive("mm")
def isolate_lru_pages(mm: MmState, nr: int, active: bool) -> list[int]:
    """Models isolate_lru_pages() on the zone's anon list: up to ``nr`` from the tail."""
    lru = mm.lru_active if active else mm.lru_inactive
    taken: list[int] = []
    for pfn in list(lru)[:nr]:
        if _isolate(mm, pfn):
            taken.append(pfn)
    return taken


@primitive("mm")
def isolate_lru_pages_of(mm: MmState, pfns: list[int], active: bool) -> list[int]:
    """The zone half of mem_cgroup_isolate_pages(): isolate the memcg's candidates.

    memcg picks the candidates from its own LRU (USED pages only); a page that is
    not on the zone LRU (isolated, in a pagevec, on the other list) is skipped.
    """
    taken: list[int] = []
    for pfn in pfns:
        page = mm.pages.get(pfn)
        if page is not None and page.active == active and _isolate(mm, pfn):
            taken.append(pfn)
    return taken


@primitive("mm", "page")
def putback_lru_page(mm: MmState, pfn: int, active: bool) -> bool:
    """Models putback_lru_page(): back on the LRU (SetPageActive if ``active``), drop the
    isolation reference.  True when that was the last reference and the page was freed."""
    page = mm.page(pfn)
    if page.lru:
        raise KernelBug(f"putback_lru_page: page {pfn} is already on the LRU")
    page.lru = True
    page.active = active
    (mm.lru_active if active else mm.lru_inactive)[pfn] = None
    return put_page(mm, page)


@primitive("mm")
def release_pages(mm: MmState, pfns: list[int]) -> int:
    """Models release_pages(): drop one reference on each page; returns how many were freed."""
    return sum(put_page(mm, mm.page(pfn)) for pfn in pfns)
