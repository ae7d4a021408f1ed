"""The hook points a variant can change, declared by the model.

The model's code paths call ``cpu.variant.<hook>(cpu, ...)`` where a patch of the
mail thread (or 2.6.31) changes 2.6.30.  :class:`Hooks` is that interface with
vanilla 2.6.30's behaviour as the default; the variants (``kernsim.variants``)
subclass it and override the hooks their patch touches.  The model never imports
a variant: it only knows this class.
"""

from __future__ import annotations

from typing import Literal

from kernsim.model import memcontrol, swapfile
from kernsim.model.port import Cpu

#: What a swap-cache claim on a slot gives: taken, try again, or the slot is gone.
Claim = Literal["ok", "retry", "fail"]


class Hooks:
    """Vanilla 2.6.30.  Subclasses override the hooks their patch touches."""

    name = "none"
    #: swap_map[] encoding: 2.6.31's count | SWAP_HAS_CACHE instead of refs + 1.
    swap_has_cache = False
    #: shrink_zone(): 2.6.30 scans the whole anon list at priority 0 even when this
    #: reclaim may not swap or swap is full ("if (priority)"); 2.6.31 does not
    #: ("if (priority || noswap)").
    scan_anon_at_priority_0_without_swap = True
    #: Gives a stale cache-only swap slot back by design, without global reclaim.
    reuses_cache_only_slots = False

    async def get_swap_page(self, cpu: Cpu) -> int:
        """add_to_swap()'s get_swap_page()."""
        return await cpu.call(swapfile.get_swap_page)

    async def swap_duplicate_for_cache(self, cpu: Cpu, entry: int) -> Claim:
        """read_swap_cache_async(): take a reference for the cache page to come.

        2.6.30: swap_duplicate(); "fail" when the slot was freed meanwhile.
        """
        return "ok" if await cpu.call(swapfile.swap_duplicate, entry) else "fail"

    async def swapcache_free(self, cpu: Cpu, entry: int, pfn: int, mapped: bool) -> None:
        """A page (``pfn``, or 0 when none was added) leaves the swap cache of ``entry``.

        2.6.30 (delete_from_swap_cache(), __remove_mapping()):
        mem_cgroup_uncharge_swapcache(page, entry) moves the memsw charge to the
        swap slot (swap_cgroup_record), then swap_free(entry) drops the cache's
        reference to the slot.
        """
        if pfn:
            record = await cpu.call(memcontrol.mem_cgroup_uncharge_swapcache, pfn, mapped, True)
            if record:
                await cpu.call(swapfile.swap_cgroup_record, entry, record)
        await swapfile.swap_free_and_uncharge(cpu, entry)

    async def end_swap_bio_read_hook(self, cpu: Cpu, pfn: int) -> None:
        """Runs in end_swap_bio_read() after SetPageUptodate(), before unlock_page()."""

    async def end_swap_bio_write_hook(self, cpu: Cpu, pfn: int) -> None:
        """Runs in end_swap_bio_write() before end_page_writeback()."""

    async def remove_mapping_failed(self, cpu: Cpu, pfn: int) -> None:
        """shrink_page_list(): __remove_mapping() failed, the page is still locked."""

    async def swapin_readahead_window(self, cpu: Cpu, entry: int) -> tuple[int, int]:
        """swapin_readahead(): the (first offset, number of pages) its loop reads before
        the faulting entry.  2.6.30: valid_swaphandles()."""
        return await cpu.call(swapfile.valid_swaphandles, entry)

    async def after_add_to_swap(self, cpu: Cpu, pfn: int) -> bool:
        """shrink_page_list(), right after add_to_swap() succeeded (the page is locked):
        True sends the page to keep_locked.  2.6.30 has nothing here."""
        return False

    async def free_swap_and_cache_busy(self, cpu: Cpu, entry: int) -> None:
        """free_swap_and_cache(): only the swap cache was left, find_get_page() found its
        page but trylock_page() failed, so it gave up.  2.6.30 does nothing more."""

    async def read_swap_cache_async_added(self, cpu: Cpu, pfn: int, entry: int) -> None:
        """read_swap_cache_async(): the new page is in the swap cache (locked), before
        lru_cache_add_anon() and swap_readpage()."""

    async def before_add_to_swap(self, cpu: Cpu, pfn: int) -> bool:
        """shrink_page_list(): an anon page not yet in the swap cache is about to get a
        slot (the page is locked); True sends it to keep_locked.  2.6.30: nothing."""
        return False
