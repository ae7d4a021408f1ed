"""Models mm/rmap.c for anon pages mapped by one pte: page_referenced(), try_to_unmap()."""

from __future__ import annotations

from kernsim.model import swapfile
from kernsim.model.locks import SWAP_LOCK_ID, LockId, ptl_id, takes
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import SWAP_FAIL, SWAP_SUCCESS, Pte
from kernsim.model.port import primitive
from kernsim.model.swap import put_page


def _page_ptl(mm: MmState, pfn: int) -> LockId | None:
    """page_check_address() takes the pte lock of the pte mapping the page (none when
    the page is not mapped)."""
    page = mm.page(pfn)
    if not page.mapcount or page.rmap is None:
        return None
    return ptl_id(*page.rmap)


@primitive("mm", "page")
@takes(_page_ptl)
def page_referenced(mm: MmState, pfn: int) -> int:
    """Models page_referenced(): TestClearPageReferenced() plus the young bit of the pte
    mapping the page (ptep_clear_flush_young, under the pte lock), cleared as it is
    counted."""
    page = mm.page(pfn)
    referenced = 0
    if page.referenced:
        page.referenced = False
        referenced += 1
    if page.mapcount and page.rmap is not None:
        task, addr = page.rmap
        pte = mm.mms[task].ptes.get(addr)
        if pte is not None and pte.present and pte.val == pfn and pte.young:
            pte.young = False
            referenced += 1
    return referenced


@primitive("mm", "page")
@takes(_page_ptl, SWAP_LOCK_ID)  # swap_duplicate()'s swap_lock inside the pte lock
def try_to_unmap(mm: MmState, pfn: int) -> int:
    """Models try_to_unmap() -> try_to_unmap_anon() -> try_to_unmap_one() for the page's
    one pte, under the pte lock.

    A young pte fails (SWAP_FAIL: the caller activates the page).  Otherwise
    swap_duplicate() the page's entry, install the swap pte, page_remove_rmap()
    and drop the pte's reference.  A swap-cache page keeps its memcg charge, so
    page_remove_rmap()'s mem_cgroup_uncharge_page() has nothing to do here.
    """
    page = mm.page(pfn)
    if not page.mapcount or page.rmap is None:
        # page_lock_anon_vma() finds no anon_vma (try_to_unmap_anon() answers SWAP_AGAIN),
        # then try_to_unmap(): "if (ret != SWAP_MLOCK && !page_mapped(page)) ret =
        # SWAP_SUCCESS".  A zap that unmapped the page since the caller's page_mapped()
        # read lets shrink_page_list() go on to pageout() and __remove_mapping().
        return SWAP_SUCCESS
    task, addr = page.rmap
    pte = mm.mms[task].ptes.get(addr)
    if pte is None or not pte.present or pte.val != pfn:
        raise KernelBug(f"try_to_unmap: rmap of page {pfn} is stale")
    if pte.young:
        pte.young = False
        return SWAP_FAIL
    if not page.swapcache:
        raise KernelBug(f"try_to_unmap: anon page {pfn} not in swap cache")
    if pte.dirty:
        page.dirty = True
    swapfile._swap_duplicate(mm, page.private)
    mm.mms[task].ptes[addr] = Pte(False, page.private)
    page.mapcount = 0
    page.rmap = None
    put_page(mm, page)
    return SWAP_SUCCESS
