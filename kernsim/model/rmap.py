"""Models mm/rmap.c for anon pages: page_referenced(), try_to_unmap(), over every pte that
maps the page (fork shares a page between the mms of one anon_vma).

A page's reverse map is the kernel's: page->mapping is its anon_vma, page->index its
address, and the walk visits each mm linked into that anon_vma, in list order (the
parent before the children it forked), and takes the pte at that address if it maps
the page (page_check_address()).

Simplification (docs/MODEL.md): each walk is one step.  The kernel holds
anon_vma->lock across it, which keeps fork's anon_vma_link() out, but takes each
mm's pte lock in turn; the model takes the pte locks of every pte mapping the page
at once, so a fault or zap of the second mapping cannot run between the two visits.
With one mapping (no fork) the step is exactly the kernel's one pte-locked section.
"""

from __future__ import annotations

from kernsim.model import swapfile
from kernsim.model.locks import SWAP_LOCK_ID, LockId, ptl_id, takes
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import SWAP_AGAIN, SWAP_FAIL, SWAP_SUCCESS, Page, Pte
from kernsim.model.port import primitive
from kernsim.model.swap import put_page


def page_mappings(mm: MmState, page: Page) -> list[tuple[int, int]]:
    """The (mm, address) pairs whose pte maps ``page``: page_lock_anon_vma(), then
    page_check_address() for each VMA of the anon_vma.  [] when the page is not mapped
    (page_lock_anon_vma() answers NULL)."""
    if not page.mapcount or not page.anon_vma:
        return []
    found = []
    for task in mm.anon_vmas.get(page.anon_vma, ()):
        mms = mm.mms.get(task)
        pte = mms.ptes.get(page.index) if mms is not None else None
        if pte is not None and pte.present and pte.val == page.pfn:
            found.append((task, page.index))
    if len(found) != page.mapcount:
        raise KernelBug(f"rmap of page {page.pfn}: mapcount {page.mapcount}, ptes {found}")
    return found


def _page_ptl(mm: MmState, pfn: int) -> list[LockId] | None:
    """page_check_address() takes the pte lock of each pte mapping the page (none when
    the page is not mapped)."""
    maps = page_mappings(mm, mm.page(pfn))
    return [ptl_id(task, addr) for task, addr in maps] or None


@primitive("mm", "page")
@takes(_page_ptl)
def page_referenced(mm: MmState, pfn: int) -> int:
    """Models page_referenced(): TestClearPageReferenced() plus page_referenced_anon():
    the young bit of each pte mapping the page (ptep_clear_flush_young, under its pte
    lock), cleared as it is counted."""
    page = mm.page(pfn)
    referenced = 0
    if page.referenced:
        page.referenced = False
        referenced += 1
    for task, addr in page_mappings(mm, page):
        pte = mm.mms[task].ptes[addr]
        if pte.young:
            pte.young = False
            referenced += 1
    return referenced


@primitive("mm", "page")
@takes(_page_ptl, SWAP_LOCK_ID)  # swap_duplicate()'s swap_lock inside the pte lock
def try_to_unmap(mm: MmState, pfn: int) -> int:
    """Models try_to_unmap() -> try_to_unmap_anon() -> try_to_unmap_one() for each pte
    mapping the page, in anon_vma order, each under its pte lock.

    A young pte fails (SWAP_FAIL: the walk stops, the caller activates the page;
    the ptes unmapped before it stay swap ptes).  Otherwise swap_duplicate() the
    page's entry, install the swap pte, page_remove_rmap() and drop the pte's
    reference.  A swap-cache page keeps its memcg charge, so page_remove_rmap()'s
    mem_cgroup_uncharge_page() has nothing to do here.
    """
    page = mm.page(pfn)
    maps = page_mappings(mm, page)
    if not maps:
        # page_lock_anon_vma() finds no anon_vma (try_to_unmap_anon() answers SWAP_AGAIN),
        # then try_to_unmap(): "if (ret != SWAP_MLOCK && !page_mapped(page)) ret =
        # SWAP_SUCCESS".  A zap that unmapped the page since the caller's page_mapped()
        # read lets shrink_page_list() go on to pageout() and __remove_mapping().
        return SWAP_SUCCESS
    ret = SWAP_AGAIN
    for task, addr in maps:
        ret = try_to_unmap_one(mm, page, task, addr)
        if ret == SWAP_FAIL or not page.mapcount:
            break
    return SWAP_SUCCESS if not page.mapcount else ret


def try_to_unmap_one(mm: MmState, page: Page, task: int, addr: int) -> int:
    """try_to_unmap_one() for the pte of mm ``task`` at ``addr`` (it maps the page)."""
    pte = mm.mms[task].ptes[addr]
    if pte.young:
        pte.young = False
        return SWAP_FAIL
    if not page.swapcache:
        raise KernelBug(f"try_to_unmap: anon page {page.pfn} not in swap cache")
    if pte.dirty:  # Move the dirty bit to the physical page now the pte is gone.
        page.dirty = True
    swapfile._swap_duplicate(mm, page.private)
    mm.mms[task].ptes[addr] = Pte(False, page.private)
    page.mapcount -= 1
    put_page(mm, page)
    return SWAP_AGAIN
