"""Models mm/swap_state.c: the swap cache (swapper_space) and swap-in readahead.

Every page in the swap cache holds one reference for the cache, has
PG_swapcache set and page_private() = its swp_entry_t.  Readahead pages are
not charged to any memcg ("memcg: handle swap caches"): they are only charged
when do_swap_page() maps them.
"""

from __future__ import annotations

from errno import EEXIST

from kernsim.model import page_alloc, page_io, swapfile
from kernsim.model.filemap import find_get_page, page_cache_release, unlock_page
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import PAGEVEC_SIZE
from kernsim.model.port import Cpu, primitive
from kernsim.model.swap import lru_add_drain, lru_cache_add, release_pages

#: The time one turn of a busy-wait loop takes (read_swap_cache_async()'s -EEXIST retry).
SPIN_S = 1e-6


@primitive("mm", "page")
def add_to_swap_cache(mm: MmState, pfn: int, entry: int, new_page: bool) -> int:
    """Models add_to_swap_cache(): 0, or -EEXIST if ``entry`` already has a cache page.

    ``new_page`` folds in read_swap_cache_async()'s __set_page_locked() and
    SetPageSwapBacked() (and their undoing on failure): nobody else can see a
    page that is in no structure yet, so this is the same critical section.
    add_to_swap()'s SetPageDirty() on success is done by its caller.
    """
    page = mm.page(pfn)
    if not new_page and not page.locked:
        raise KernelBug(f"add_to_swap_cache: page {pfn} not locked")
    if page.swapcache:
        raise KernelBug(f"add_to_swap_cache: page {pfn} already in swap cache")
    if entry in mm.swapper_space:
        return -EEXIST
    if new_page:  # not PageAnon: that comes with page_add_anon_rmap() in do_swap_page()
        page.locked = True
        page.swapbacked = True
    page.count += 1
    page.swapcache = True
    page.private = entry
    mm.swapper_space[entry] = pfn
    return 0


@primitive("mm", "page")
def __delete_from_swap_cache(mm: MmState, pfn: int) -> tuple[int, bool]:
    """Models __delete_from_swap_cache() under tree_lock; returns (entry, page_mapped())."""
    page = mm.page(pfn)
    if not page.locked or not page.swapcache or page.writeback:
        raise KernelBug(f"__delete_from_swap_cache: bad page state {page}")
    entry = page.private
    del mm.swapper_space[entry]
    page.private = 0
    page.swapcache = False
    return entry, page.mapcount > 0


@primitive("mm", "page")
def set_page_dirty(mm: MmState, pfn: int) -> None:
    """Models SetPageDirty()."""
    mm.page(pfn).dirty = True


# --- code paths -------------------------------------------------------------


async def delete_from_swap_cache(cpu: Cpu, pfn: int, set_dirty: bool = False) -> None:
    """Models delete_from_swap_cache() (and try_to_free_swap()'s SetPageDirty after it)."""
    entry, mapped = await cpu.call(__delete_from_swap_cache, pfn)
    await cpu.variant.swapcache_free(cpu, entry, pfn, mapped)
    if set_dirty:
        await cpu.call(set_page_dirty, pfn)
    await cpu.call(page_cache_release, pfn)


async def add_to_swap(cpu: Cpu, pfn: int) -> bool:
    """Models add_to_swap(): give a locked, uptodate anon page a swap slot and cache it."""
    while True:
        entry = await cpu.variant.get_swap_page(cpu)
        if not entry:
            return False
        err = await cpu.call(add_to_swap_cache, pfn, entry, False)
        if err == 0:
            await cpu.call(set_page_dirty, pfn)
            return True
        # -EEXIST: raced with "speculative" read_swap_cache_async
        await cpu.variant.swapcache_free(cpu, entry, 0, False)


async def read_swap_cache_async(cpu: Cpu, entry: int) -> int:
    """Models read_swap_cache_async(): the cache page for ``entry``, reading it in if needed.

    Returns a pfn holding a reference for the caller, or 0.
    """
    new_pfn = 0
    found = 0
    while True:
        found = await cpu.call(find_get_page, entry)
        if found:
            break
        if not new_pfn:
            new_pfn = await page_alloc.alloc_page_vma(cpu)
            if not new_pfn:
                break  # out of memory
        # Swap entry may have been freed since our caller observed it.
        claimed = await cpu.variant.swap_duplicate_for_cache(cpu, entry)
        if claimed == "retry":
            # 2.6.31 loops straight back ("seems racy"): a busy wait until the cache page
            # being added for ``entry`` is in the swap cache.  Each turn takes this CPU
            # some time; in the model time passes only by the clock, and a schedule
            # search's steps cost none, so without it a spinning CPU froze the clock at
            # one instant and the bio completion it waited for never came due.
            await cpu.sleep(SPIN_S)
            continue
        if claimed == "fail":
            break
        err = await cpu.call(add_to_swap_cache, new_pfn, entry, True)
        if err == 0:
            await cpu.variant.read_swap_cache_async_added(cpu, new_pfn, entry)
            await cpu.call(lru_cache_add, new_pfn, cpu.pvec, False)
            await page_io.swap_readpage(cpu, new_pfn)
            return new_pfn
        await cpu.variant.swapcache_free(cpu, entry, 0, False)
    if new_pfn:
        await cpu.call(page_cache_release, new_pfn)
    return found


async def swapin_readahead(cpu: Cpu, entry: int) -> int:
    """Models swapin_readahead(): read the aligned window around ``entry``, then ``entry``."""
    offset, nr_pages = await cpu.variant.swapin_readahead_window(cpu, entry)
    for off in range(offset, offset + nr_pages):
        pfn = await read_swap_cache_async(cpu, off)
        if not pfn:
            break
        await cpu.call(page_cache_release, pfn)
    await cpu.call(lru_add_drain, cpu.pvec)  # push any new pages onto the LRU now
    return await read_swap_cache_async(cpu, entry)


@primitive("mm", "page")
def free_swap_cache_trylock(mm: MmState, pfn: int) -> bool:
    """free_swap_cache()'s test: PageSwapCache && !page_mapped && trylock_page.

    The kernel reads the two flags locklessly just before the trylock; the
    model does the three in one step.
    """
    page = mm.page(pfn)
    if page.swapcache and page.mapcount == 0 and not page.locked:
        page.locked = True
        return True
    return False


async def free_pages_and_swap_cache(cpu: Cpu, pfns: list[int]) -> None:
    """Models free_pages_and_swap_cache() (the mmu_gather flush of a zap)."""
    await cpu.call(lru_add_drain, cpu.pvec)
    for start in range(0, len(pfns), PAGEVEC_SIZE):
        batch = pfns[start : start + PAGEVEC_SIZE]
        for pfn in batch:  # free_swap_cache()
            if await cpu.call(free_swap_cache_trylock, pfn):
                await swapfile.try_to_free_swap(cpu, pfn)
                await cpu.call(unlock_page, pfn)
        await cpu.call(release_pages, batch)
