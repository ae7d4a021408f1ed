"""Models mm/page_alloc.c: the page allocator of one zone with min/low/high watermarks.

Simplification: pfns are never reused, so a stale pfn can never alias a new
page; nr_free_pages counts what is left of MmConfig.total_pages.
"""

from __future__ import annotations

from kernsim.model import vmscan
from kernsim.model.mm import MmState
from kernsim.model.mm_types import Page
from kernsim.model.port import Cpu, primitive


@primitive("mm")
def alloc_page(mm: MmState, kswapd_ok: bool) -> tuple[int, bool]:
    """Models get_page_from_freelist(): a new page (count 1), or 0 below pages_min.

    Returns (pfn, wake kswapd?): kswapd is woken below pages_low unless it runs.
    """
    cfg = mm.config
    wake = kswapd_ok and mm.nr_free_pages < cfg.pages_low and not mm.kswapd_running
    if wake:
        mm.kswapd_running = True
    if mm.nr_free_pages <= cfg.pages_min:
        return 0, wake
    pfn = mm.next_pfn
    mm.next_pfn += 1
    mm.pages[pfn] = Page(pfn)
    mm.nr_free_pages -= 1
    return pfn, wake


@primitive("mm", "page")
def __pagevec_free(mm: MmState, pfn: int) -> None:
    """Models shrink_page_list()'s free_it: __pagevec_free() (free_hot_cold_page()) of a
    page whose references __remove_mapping() froze to 0."""
    del mm.pages[pfn]
    mm.nr_free_pages += 1


async def alloc_page_vma(cpu: Cpu) -> int:
    """Models __alloc_pages_internal(): wake kswapd, direct reclaim, retry; 0 on failure."""
    for _ in range(4):
        pfn, wake = await cpu.call(alloc_page, True)
        if wake:
            await cpu.post("vmscan", "kswapd")
        if pfn:
            return pfn
        if not await vmscan.try_to_free_pages(cpu):
            break
    return 0
