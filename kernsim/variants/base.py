"""The hook points a variant can change, with vanilla 2.6.30's behaviour as the default."""

from __future__ import annotations

from typing import Literal

from kernsim.model.port import Cpu

Claim = Literal["ok", "retry", "fail"]


class Variant:
    """Vanilla 2.6.30.  Subclasses override the hooks their patch touches."""

    name = "none"
    #: swap_map[] encoding: 2.6.31's count | SWAP_HAS_CACHE instead of refs + 1.
    swap_has_cache = False
    #: Gives a stale cache-only swap slot back by design, without global reclaim.
    reuses_cache_only_slots = False

    async def get_swap_page(self, cpu: Cpu) -> int:
        """add_to_swap()'s get_swap_page()."""
        from kernsim.model.swapfile import get_swap_page

        return await cpu.call(get_swap_page)

    async def swap_duplicate_for_cache(self, cpu: Cpu, entry: int) -> Claim:
        """read_swap_cache_async(): take a reference for the cache page to come.

        2.6.30: swap_duplicate(); "fail" when the slot was freed meanwhile.
        """
        from kernsim.model.swapfile import swap_duplicate

        return "ok" if await cpu.call(swap_duplicate, entry) else "fail"

    async def swapcache_free(self, cpu: Cpu, entry: int, pfn: int, mapped: bool) -> None:
        """A page (``pfn``, or 0 when none was added) leaves the swap cache of ``entry``.

        2.6.30 (delete_from_swap_cache(), __remove_mapping()):
        mem_cgroup_uncharge_swapcache(page, entry) moves the memsw charge to the
        swap slot (swap_cgroup_record), then swap_free(entry) drops the cache's
        reference to the slot.
        """
        from kernsim.model.memcontrol import mem_cgroup_uncharge_swapcache
        from kernsim.model.swapfile import swap_cgroup_record, swap_free_and_uncharge

        if pfn:
            record = await cpu.call(mem_cgroup_uncharge_swapcache, pfn, mapped, True)
            if record:
                await cpu.call(swap_cgroup_record, entry, record)
        await swap_free_and_uncharge(cpu, entry)

    async def end_swap_bio_read_hook(self, cpu: Cpu, pfn: int) -> None:
        """Runs in end_swap_bio_read() after SetPageUptodate(), before unlock_page()."""

    async def end_swap_bio_write_hook(self, cpu: Cpu, pfn: int) -> None:
        """Runs in end_swap_bio_write() before end_page_writeback()."""

    async def remove_mapping_failed(self, cpu: Cpu, pfn: int) -> None:
        """shrink_page_list(): __remove_mapping() failed, the page is still locked."""
