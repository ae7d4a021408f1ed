"""Models mm/vmscan.c (2.6.30): shrink_page_list() with all its exits, pageout(),
__remove_mapping(), and the reclaim loops of kswapd, direct and memcg reclaim.

shrink_page_list() is split along its own labels: each page ends at ``keep``
(put back as it is), ``keep_locked`` (unlock, put back), ``activate_locked``
(maybe free its swap, SetPageActive, unlock, put back) or ``free_it``.

Simplifications (docs/MODEL.md): anon pages only, so scan balancing
(get_scan_ratio) reduces to "scan anon unless swap is off for this reclaim",
and the scan target is the size of both anon lists together; writeback is
always asynchronous (no lumpy reclaim, no congestion_wait); memcg reclaim
takes both active and inactive pages from the memcg LRU in one pass and
deactivates the active ones, where the kernel keeps per-list memcg LRUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernsim.model import memcontrol, page_alloc, page_io, rmap, swap_state, swapfile
from kernsim.model.filemap import page_flags, trylock_page, unlock_page
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import SWAP_CLUSTER_MAX, SWAP_FAIL, SWAP_SUCCESS
from kernsim.model.port import Cpu, code_path, primitive
from kernsim.model.swap import lru_add_drain, lru_add_drain_all, put_page

DEF_PRIORITY = 12
PAGE_KEEP, PAGE_ACTIVATE, PAGE_SUCCESS, PAGE_CLEAN = "keep", "activate", "success", "clean"
# shrink_page_list() exits, also the `result` label of kernsim_vmscan_results_total.
KEEP, KEEP_LOCKED, ACTIVATE_LOCKED, FREED = "keep", "keep_locked", "activate", "freed"


@dataclass(slots=True)
class ScanControl:
    """struct scan_control: what this reclaim may do, and what it did."""

    memcg: int = 0  # 0: global reclaim over the zone LRU
    may_swap: bool = True
    may_unmap: bool = True
    may_writepage: bool = True
    kswapd: bool = False
    nr_scanned: int = 0
    nr_reclaimed: int = 0


@primitive("mm")
def reclaim_lru_sizes(mm: MmState) -> tuple[int, int, int]:
    """(inactive anon, active anon, nr_swap_pages) for the scan decisions."""
    return len(mm.lru_inactive), len(mm.lru_active), mm.swap.nr_swap_pages


@primitive("mm")
def zone_free_pages(mm: MmState) -> tuple[int, int]:
    """(free pages, pages_high): balance_pgdat()'s zone_watermark_ok() test."""
    return mm.nr_free_pages, mm.config.pages_high


@primitive("mm")
def kswapd_sleep(mm: MmState) -> None:
    """kswapd goes back to sleep until the allocator wakes it below pages_low."""
    mm.kswapd_running = False


# --- LRU isolation and putback ---------------------------------------------------


@primitive("mm", "page")
def page_mapping_inuse(mm: MmState, pfn: int) -> bool:
    """Models page_mapping_inuse() for an anon page: mapped, or in the swap cache."""
    page = mm.page(pfn)
    return page.mapcount > 0 or page.swapcache


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
    """Puts one isolated page back: shrink_inactive_list()'s putback loop (and
    shrink_active_list()'s), i.e. SetPageLRU + add_page_to_lru_list() under lru_lock
    (SetPageActive if ``active``), then the pagevec release of the isolation reference.
    True when that was the last reference and the page was freed.

    The kernel puts a whole batch back after shrink_page_list() returns; the model
    puts each page back as soon as its loop iteration ends (docs/MODEL.md).  K30's
    own putback_lru_page() (the unevictable path) goes through a pagevec instead.
    """
    page = mm.page(pfn)
    if page.lru:
        raise KernelBug(f"putback_lru_page: page {pfn} is already on the LRU")
    page.lru = True
    page.active = active
    (mm.lru_active if active else mm.lru_inactive)[pfn] = None
    return put_page(mm, page)


# --- shrink_page_list() ------------------------------------------------------------


@primitive("mm", "page")
def pageout_prepare(mm: MmState, pfn: int) -> str:
    """pageout() up to ->writepage(): is_page_cache_freeable(), clear_page_dirty_for_io(),
    SetPageReclaim().  Returns PAGE_KEEP, PAGE_CLEAN, or "write"."""
    page = mm.page(pfn)
    if page.count != 2:  # is_page_cache_freeable(): anon swap cache has no buffers
        return PAGE_KEEP
    if not page.swapcache:
        return PAGE_KEEP  # !mapping
    if not page.dirty:
        return PAGE_CLEAN
    page.dirty = False
    page.reclaim = True
    return "write"


@primitive("mm", "page")
def remove_mapping_freeze(mm: MmState, pfn: int) -> tuple[bool, int]:
    """The tree_lock part of __remove_mapping(): page_freeze_refs(page, 2), the PageDirty
    recheck, __delete_from_swap_cache().  Returns (success, the entry it had)."""
    page = mm.page(pfn)
    if not page.swapcache or page.count != 2 or page.dirty:
        return False, 0
    page.count = 0  # frozen: the isolation and swap cache references are consumed
    entry = page.private
    del mm.swapper_space[entry]
    page.private = 0
    page.swapcache = False
    return True, entry


async def pageout(cpu: Cpu, pfn: int) -> str:
    """Models pageout() for a swap-cache page (its ->writepage is swap_writepage())."""
    res = await cpu.call(pageout_prepare, pfn)
    if res != "write":
        return res
    await page_io.swap_writepage(cpu, pfn)
    if not (await cpu.call(page_flags, pfn)).writeback:
        await cpu.call(page_io.clear_page_reclaim, pfn)  # synchronous write or freed swap
    return PAGE_SUCCESS


async def __remove_mapping(cpu: Cpu, pfn: int) -> bool:
    """Models __remove_mapping() for a swap-cache page."""
    ok, entry = await cpu.call(remove_mapping_freeze, pfn)
    if ok:
        await cpu.variant.swapcache_free(cpu, entry, pfn, False)
    return ok


async def shrink_page(cpu: Cpu, pfn: int, sc: ScanControl) -> str:
    """One iteration of shrink_page_list()'s loop; returns the label the page ends at."""
    if not await cpu.call(trylock_page, pfn):
        return KEEP
    sc.nr_scanned += 1
    flags = await cpu.call(page_flags, pfn)
    if not sc.may_unmap and flags.mapped:
        return KEEP_LOCKED
    if flags.writeback:
        return KEEP_LOCKED  # PAGEOUT_IO_ASYNC
    referenced = await cpu.call(rmap.page_referenced, pfn)
    if referenced and await cpu.call(page_mapping_inuse, pfn):
        return ACTIVATE_LOCKED
    if flags.anon and not flags.swapcache and await cpu.variant.before_add_to_swap(cpu, pfn):
        return KEEP_LOCKED
    if flags.anon and not flags.swapcache and not await swap_state.add_to_swap(cpu, pfn):
        return ACTIVATE_LOCKED
    if flags.anon and not flags.swapcache and await cpu.variant.after_add_to_swap(cpu, pfn):
        return KEEP_LOCKED
    if (await cpu.call(page_flags, pfn)).mapped:
        ret = await cpu.call(rmap.try_to_unmap, pfn)
        if ret == SWAP_FAIL:
            return ACTIVATE_LOCKED
        if ret != SWAP_SUCCESS:
            return KEEP_LOCKED
    if (await cpu.call(page_flags, pfn)).dirty:
        if referenced or not sc.may_writepage:
            return KEEP_LOCKED
        res = await pageout(cpu, pfn)
        if res == PAGE_KEEP:
            return KEEP_LOCKED
        if res == PAGE_SUCCESS:
            flags = await cpu.call(page_flags, pfn)
            if flags.writeback or flags.dirty:
                return KEEP
            # A synchronous write (or the freed-swap shortcut): try to reclaim it now.
            if not await cpu.call(trylock_page, pfn):
                return KEEP
            flags = await cpu.call(page_flags, pfn)
            if flags.dirty or flags.writeback:
                return KEEP_LOCKED
    if not await __remove_mapping(cpu, pfn):
        await cpu.variant.remove_mapping_failed(cpu, pfn)
        return KEEP_LOCKED
    await cpu.call(page_alloc.__pagevec_free, pfn)  # __clear_page_locked(); free_it
    return FREED


async def finish_page(cpu: Cpu, pfn: int, label: str) -> None:
    """The labels after the loop body: activate_locked, keep_locked, keep; then putback."""
    if label == FREED:
        return
    # activate_locked: not a candidate for swapping, so reclaim swap space.
    if (
        label == ACTIVATE_LOCKED
        and (await cpu.call(page_flags, pfn)).swapcache
        and await cpu.call(swapfile.vm_swap_full)
    ):
        await swapfile.try_to_free_swap(cpu, pfn)
    if label in (ACTIVATE_LOCKED, KEEP_LOCKED):
        await cpu.call(unlock_page, pfn)
    await cpu.call(putback_lru_page, pfn, label == ACTIVATE_LOCKED)


async def shrink_page_list(cpu: Cpu, pfns: list[int], sc: ScanControl) -> int:
    """Models shrink_page_list() plus shrink_inactive_list()'s putback of what is left."""
    reclaimed = 0
    for pfn in pfns:
        label = await shrink_page(cpu, pfn, sc)
        cpu.note_result(label)
        reclaimed += label == FREED
        await finish_page(cpu, pfn, label)
    sc.nr_reclaimed += reclaimed
    return reclaimed


async def deactivate_pages(cpu: Cpu, pfns: list[int]) -> None:
    """shrink_active_list() for anon pages (2.6.30): clear the young bits, move all to inactive."""
    for pfn in pfns:
        if await cpu.call(page_mapping_inuse, pfn):
            await cpu.call(rmap.page_referenced, pfn)
        await cpu.call(putback_lru_page, pfn, False)


async def shrink_batch(cpu: Cpu, sc: ScanControl, nr: int) -> None:
    """Isolate up to ``nr`` pages (zone LRU, or the memcg's) and reclaim them."""
    await cpu.call(lru_add_drain, cpu.pvec)
    if sc.memcg:
        candidates = await cpu.call(memcontrol.mem_cgroup_lru_candidates, sc.memcg, nr)
        active = await cpu.call(isolate_lru_pages_of, candidates, True)
        inactive = await cpu.call(isolate_lru_pages_of, candidates, False)
    else:
        n_inactive, n_active, _ = await cpu.call(reclaim_lru_sizes)
        active = []
        if n_inactive < n_active:  # inactive_anon_is_low()
            active = await cpu.call(isolate_lru_pages, nr, True)
        inactive = await cpu.call(isolate_lru_pages, nr, False)
    if active:
        await deactivate_pages(cpu, active)
    if inactive:
        await shrink_page_list(cpu, inactive, sc)


@primitive("mm")
def zone_nr_scan(mm: MmState, scan: int) -> int:
    """shrink_zone()'s zone->lru[].nr_scan for global reclaim: scan targets accumulate
    across calls and are handed out once they reach SWAP_CLUSTER_MAX."""
    acc = mm.extra.get("nr_scan", 0) + scan
    if acc >= SWAP_CLUSTER_MAX:
        mm.extra["nr_scan"] = 0
        return int(acc)
    mm.extra["nr_scan"] = acc
    return 0


async def shrink_zone(cpu: Cpu, sc: ScanControl, priority: int, memcg_size: int = 0) -> None:
    """Models shrink_zone() for the anon lists at ``priority``.

    get_scan_ratio() gives anon 0 % without swap (!may_swap, or nr_swap_pages <= 0),
    else (anon pages only) 100 %.  2.6.30 applies the ratio only ``if (priority)``:
    at priority 0 the whole anon list is scanned even without swap.  2.6.31 applies
    it ``if (priority || noswap)`` (Variant.scan_anon_at_priority_0_without_swap).
    The scan target is the list size >> priority; global reclaim accumulates it in
    the zone, memcg reclaim uses it as it is.
    """
    if sc.memcg:
        noswap, scan = not sc.may_swap, memcg_size
    else:
        n_inactive, n_active, nr_swap_pages = await cpu.call(reclaim_lru_sizes)
        noswap, scan = not sc.may_swap or nr_swap_pages <= 0, n_inactive + n_active
    if priority or (noswap and not cpu.variant.scan_anon_at_priority_0_without_swap):
        scan = 0 if noswap else scan >> priority
    nr_scan = scan
    if not sc.memcg and scan:
        nr_scan = await cpu.call(zone_nr_scan, scan)
    while nr_scan > 0:
        n = min(nr_scan, SWAP_CLUSTER_MAX)
        nr_scan -= n
        await shrink_batch(cpu, sc, n)
        # nr_reclaimed counts from sc->nr_reclaimed, i.e. what this reclaim freed so far.
        if sc.nr_reclaimed > SWAP_CLUSTER_MAX and priority < DEF_PRIORITY and not sc.kswapd:
            break


async def do_try_to_free_pages(cpu: Cpu, sc: ScanControl) -> int:
    """Models do_try_to_free_pages(): shrink at falling priority until a batch is freed;
    returns the pages freed, or 0 (see the end).

    For memcg reclaim, swap running out (get_scan_ratio()) and the LRU size are
    read once per call rather than per shrink_zone().
    """
    size = 0
    if sc.memcg:
        if (await cpu.call(reclaim_lru_sizes))[2] <= 0:
            sc.may_swap = False
        # The memcg LRU's size is read once per call: at the high priorities
        # size >> priority is 0 and the kernel scans nothing either.
        size = await cpu.call(memcontrol.mem_cgroup_lru_size, sc.memcg)
    for priority in range(DEF_PRIORITY, -1, -1):
        if sc.memcg and not size >> priority and priority:
            continue
        await shrink_zone(cpu, sc, priority, size)
        if sc.nr_reclaimed >= SWAP_CLUSTER_MAX:
            return sc.nr_reclaimed
    # "top priority shrink_zones still had more to do? don't OOM, then" is for global
    # reclaim only: memcg reclaim that freed fewer than SWAP_CLUSTER_MAX pages returns 0.
    return 0 if sc.memcg else sc.nr_reclaimed


async def try_to_free_pages(cpu: Cpu) -> int:
    """Models try_to_free_pages(): direct reclaim over the zone LRU."""
    return await do_try_to_free_pages(cpu, ScanControl())


async def try_to_free_mem_cgroup_pages(cpu: Cpu, memcg_id: int, noswap: bool) -> int:
    """Models try_to_free_mem_cgroup_pages(): reclaim from one memcg's LRU only."""
    return await do_try_to_free_pages(cpu, ScanControl(memcg=memcg_id, may_swap=not noswap))


@code_path
async def kswapd(cpu: Cpu) -> None:
    """Models kswapd() -> balance_pgdat(): reclaim until free pages reach pages_high."""
    sc = ScanControl(kswapd=True)
    for priority in range(DEF_PRIORITY, -1, -1):
        free, high = await cpu.call(zone_free_pages)
        if free >= high:
            break
        await shrink_zone(cpu, sc, priority)
    await cpu.call(kswapd_sleep)


@code_path
async def global_reclaim(cpu: Cpu) -> None:
    """Global reclaim over the whole zone LRU, as memory pressure from outside the
    cgroup would cause (the checker's last step): what it can free, it frees.

    Two passes at least (the first deactivates, the second reclaims); more while the
    last one still changed something and pages are left, as balance_pgdat() keeps
    scanning at falling priorities while the zone stays short (DEF_PRIORITY + 1 passes
    at most).  A page two passes missed (kept back in a batch while a page deactivated
    behind it was never reached) is then reclaimed, not reported as a leak.
    """
    await cpu.call(lru_add_drain_all)
    sizes = await cpu.call(reclaim_lru_sizes)
    sc = ScanControl()
    for npass in range(DEF_PRIORITY + 1):
        before, reclaimed = sizes, sc.nr_reclaimed
        remaining = sizes[0] + sizes[1]
        while remaining > 0:
            await shrink_batch(cpu, sc, min(remaining, SWAP_CLUSTER_MAX))
            remaining -= SWAP_CLUSTER_MAX
        sizes = await cpu.call(reclaim_lru_sizes)
        if npass >= 1 and (
            not sizes[0] + sizes[1] or (sizes, sc.nr_reclaimed) == (before, reclaimed)
        ):
            break
