"""fix leak of swap accounting as stale swap cache under memcg, v4 (KAMEZAWA Hiroyuki,
linux-mm, 27 Apr 2009), as the compiler builds it with CONFIG_CGROUP_MEM_RES_CTLR=y,
CONFIG_CGROUP_MEM_RES_CTLR_SWAP=y and CONFIG_SWAP=y.

Message: <20090427181259.6efec90b.kamezawa.hiroyu@jp.fujitsu.com>, read in full.  Every
hunk builds: the declarations in include/linux/swap.h are under
CONFIG_CGROUP_MEM_RES_CTLR, the GC in mm/memcontrol.c under CONFIG_SWAP,
memcg_sanity_check_swapin() in mm/swapfile.c under CONFIG_CGROUP_MEM_RES_CTLR.

1. free_swap_and_cache(): when trylock_page() fails on the cache page,
   memcg_mark_swapent_stale(entry) records the entry in a static buffer of
   STALE_ENTS (512) entries and schedules the GC (HZ/10).
2. read_swap_cache_async(): a page just added to the swap cache whose
   page_swapcount() is already 0 (its slot's last pte went while it was being
   added) is recorded too (memcg_sanity_check_swapin()).
3. The GC (memcg_fixup_stale_swapcache()): for each recorded entry, find_get_page(),
   lock_page(), try_to_free_swap(); an entry whose page is still under writeback is
   kept for the next run, every other one is forgotten; run again while any is left.
4. "Congestion": once more than STALE_ENTS/2 entries are recorded,
   swapin_readahead() reads only the faulting entry and shrink_page_list() sends an
   anon page that is not yet in the swap cache to keep_locked instead of
   add_to_swap(); it ends when the GC brings the count under STALE_ENTS/2.

kernsim records the entry right after free_swap_and_cache()'s swap_lock section rather
than inside it; the buffer has its own lock in the kernel, so nothing else orders
against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernsim.model import swapfile
from kernsim.model.filemap import (
    find_get_page,
    lock_page,
    page_cache_release,
    page_flags,
    unlock_page,
)
from kernsim.model.mm import MmState
from kernsim.model.port import Cpu, code_path, primitive
from kernsim.variants.base import Variant

STALE_ENTS = 512
HZ_10_S = 0.1  # schedule_ssc_gc(): schedule_delayed_work(&ssc.gc_work, HZ/10)


@dataclass(slots=True)
class StaleSwapControl:
    """v4's ``static struct stale_swap_control ssc``: the usemap as a dict pos -> entry."""

    ents: dict[int, int] = field(default_factory=dict)
    congestion: bool = False
    work_pending: bool = False


def _ssc(mm: MmState) -> StaleSwapControl:
    ssc = mm.extra.get("stale_swap_control")
    if ssc is None:
        ssc = mm.extra["stale_swap_control"] = StaleSwapControl()
    assert isinstance(ssc, StaleSwapControl)
    return ssc


def _schedule(ssc: StaleSwapControl) -> bool:
    """schedule_delayed_work(): True if it was not already pending."""
    if ssc.work_pending:
        return False
    ssc.work_pending = True
    return True


@primitive("mm", "swp")
def memcg_mark_swapent_stale(mm: MmState, entry: int) -> bool:
    """v4 memcg_mark_swapent_stale() under ssc.lock, then schedule_ssc_gc().

    Returns True when the GC work must be posted (it was not pending)."""
    ssc = _ssc(mm)
    if len(ssc.ents) < STALE_ENTS:  # WARN_ON(ssc.num >= STALE_ENTS) otherwise
        pos = next(p for p in range(STALE_ENTS) if p not in ssc.ents)  # find_first_zero_bit
        ssc.ents[pos] = entry
        if len(ssc.ents) > STALE_ENTS // 2:
            ssc.congestion = True
    return _schedule(ssc)


@primitive("mm")
def memcg_stale_swap_congestion(mm: MmState) -> tuple[bool, bool]:
    """v4 memcg_stale_swap_congestion(): (congested, the GC must be posted)."""
    ssc = _ssc(mm)
    if ssc.congestion:
        return True, _schedule(ssc)
    return False, False


@primitive("mm")
def ssc_gc_start(mm: MmState) -> None:
    """The workqueue clears the work's pending bit just before running it."""
    _ssc(mm).work_pending = False


@primitive("mm")
def ssc_next(mm: MmState, pos: int) -> tuple[int, int]:
    """``while (ssc.num) { pos = find_next_bit(ssc.usemap, STALE_ENTS, pos); ...}``:
    (pos, entry), or (STALE_ENTS, 0) when nothing is recorded at or after ``pos`` or
    nothing is recorded at all."""
    ents = _ssc(mm).ents
    if not ents:
        return STALE_ENTS, 0
    after = [p for p in ents if p >= pos]
    if not after:
        return STALE_ENTS, 0
    p = min(after)
    return p, ents[p]


@primitive("mm")
def ssc_forget(mm: MmState, pos: int) -> None:
    """clear_bit(pos); ssc.num--; congestion ends below STALE_ENTS/2."""
    ssc = _ssc(mm)
    ssc.ents.pop(pos, None)
    if len(ssc.ents) < STALE_ENTS // 2:
        ssc.congestion = False


@primitive("mm")
def ssc_reschedule(mm: MmState) -> bool:
    """``if (ssc.num) schedule_ssc_gc();``"""
    ssc = _ssc(mm)
    return bool(ssc.ents) and _schedule(ssc)


@code_path
async def memcg_fixup_stale_swapcache(cpu: Cpu) -> None:
    """v4's GC work: try_to_free_swap() every recorded entry, keep those under writeback."""
    await cpu.call(ssc_gc_start)
    pos = 0
    while True:
        pos, entry = await cpu.call(ssc_next, pos)
        if pos >= STALE_ENTS:
            break
        forget = True
        pfn = await cpu.call(find_get_page, entry)
        if pfn:
            await cpu.call(lock_page, pfn)
            freed = await swapfile.try_to_free_swap(cpu, pfn)
            # "If it's still under I/O, don't forget it"
            if not freed and (await cpu.call(page_flags, pfn)).writeback:
                forget = False
            await cpu.call(unlock_page, pfn)
            await cpu.call(page_cache_release, pfn)
        if forget:
            await cpu.call(ssc_forget, pos)
        pos += 1
    if await cpu.call(ssc_reschedule):
        await cpu.post("workqueue", "memcg_fixup_stale_swapcache", delay_s=HZ_10_S)


async def _mark(cpu: Cpu, entry: int) -> None:
    if await cpu.call(memcg_mark_swapent_stale, entry):
        await cpu.post("workqueue", "memcg_fixup_stale_swapcache", delay_s=HZ_10_S)


async def _congested(cpu: Cpu) -> bool:
    congested, post = await cpu.call(memcg_stale_swap_congestion)
    if post:
        await cpu.post("workqueue", "memcg_fixup_stale_swapcache", delay_s=HZ_10_S)
    return congested


class V4(Variant):
    name = "v4"

    async def free_swap_and_cache_busy(self, cpu: Cpu, entry: int) -> None:
        await _mark(cpu, entry)

    async def read_swap_cache_async_added(self, cpu: Cpu, pfn: int, entry: int) -> None:
        """memcg_sanity_check_swapin(): ``if (!page_swapcount(page))`` record the entry."""
        if not await cpu.call(swapfile.page_swapcount, pfn):
            await _mark(cpu, entry)

    async def swapin_readahead_window(self, cpu: Cpu, entry: int) -> tuple[int, int]:
        if await _congested(cpu):
            return entry, 1  # offset = swp_offset(entry); nr_pages = 1
        return await super().swapin_readahead_window(cpu, entry)

    async def before_add_to_swap(self, cpu: Cpu, pfn: int) -> bool:
        # "avoid making more stale swap caches"
        return await _congested(cpu)
