"""What went into 2.6.31 (the "memcg fix swap accounting" series, May/June 2009), as a
diff against vanilla 2.6.30:

1. mm: add swap cache interface for swap reference -- read_swap_cache_async()
   claims the slot with swapcache_prepare() (looping on -EEXIST) instead of
   swap_duplicate(); a page leaving the cache calls swapcache_free(entry, page).
2. mm: modify swap_map and add SWAP_HAS_CACHE flag -- the swap_map encoding
   (MmConfig.swap_has_cache, in model/swapfile.py).
3. mm: reuse unused swap entry if necessary -- scan_swap_map() reclaims a
   cache-only slot (__try_to_reclaim_swap()) when vm_swap_full().
4. memcg: fix swap accounting -- memsw is uncharged when the count reaches 0
   (in swapfile.swap_entry_free()), and mem_cgroup_uncharge_swapcache() takes
   ``swapout``: the DROP type uncharges res and memsw when no swap user is left.
"""

from __future__ import annotations

from errno import EEXIST

from kernsim.model import memcontrol, swapfile
from kernsim.model.filemap import find_get_page, page_cache_release, trylock_page, unlock_page
from kernsim.model.locks import SWAP_LOCK_ID, takes
from kernsim.model.mm import MmState
from kernsim.model.mm_types import SWAP_HAS_CACHE
from kernsim.model.port import Cpu, primitive
from kernsim.variants.base import Claim, Variant


@primitive("mm")
@takes(SWAP_LOCK_ID)
def scan_swap_map_reuse(mm: MmState, start: int) -> tuple[int, int]:
    """2.6.31 scan_swap_map(si, SWAP_CACHE) from offset ``start``.

    Returns (allocated entry, 0), or (0, offset of a cache-only slot to try to
    reclaim first when vm_swap_full()), or (0, 0) when swap is full.
    """
    sw = mm.swap
    if sw.nr_swap_pages <= 0:
        return 0, 0  # get_swap_page(): goto noswap
    # get_swap_page() reserves its slot (nr_swap_pages--) before scan_swap_map()
    # asks vm_swap_full().
    full = (sw.nr_swap_pages - 1) * 2 < sw.total_swap_pages
    n = len(sw.swap_map)
    offset = start if 0 < start < n else sw.cluster_next
    for _ in range(n - 1):
        if offset >= n:
            offset = 1
        value = sw.swap_map[offset]
        if full and value == SWAP_HAS_CACHE:
            return 0, offset
        if value == 0 and sw.nr_swap_pages > 0:
            sw.swap_map[offset] = SWAP_HAS_CACHE
            sw.nr_swap_pages -= 1
            sw.inuse_pages += 1
            sw.cluster_next = offset + 1
            return offset, 0
        offset += 1
    return 0, 0


class Upstream(Variant):
    name = "upstream"
    swap_has_cache = True
    scan_anon_at_priority_0_without_swap = False
    reuses_cache_only_slots = True  # scan_swap_map(): vm_swap_full() && SWAP_HAS_CACHE only

    async def get_swap_page(self, cpu: Cpu) -> int:
        """get_swap_page() with 2.6.31's reuse of cache-only slots."""
        start = 0
        for _ in range(64):  # each failed reclaim moves the scan on by one slot
            entry, candidate = await cpu.call(scan_swap_map_reuse, start)
            if entry or not candidate:
                return entry
            await try_to_reclaim_swap(cpu, candidate)
            start = candidate  # freed: "goto checks" takes it; busy: scan on from it
            if not await _slot_free(cpu, candidate):
                start = candidate + 1
        return 0

    async def swap_duplicate_for_cache(self, cpu: Cpu, entry: int) -> Claim:
        """swapcache_prepare(): -EEXIST means another cache page is being added: retry."""
        err = await cpu.call(swapfile.swapcache_prepare, entry)
        if err == 0:
            return "ok"
        return "retry" if err == -EEXIST else "fail"

    async def swapcache_free(self, cpu: Cpu, entry: int, pfn: int, mapped: bool) -> None:
        """swapcache_free(entry, page): clear SWAP_HAS_CACHE and uncharge the page,
        SWAPOUT (memsw moves to the slot) if a swap user is left, else DROP.

        The kernel does all of it under swap_lock.  The memcg half runs first here
        (res -1, memsw kept, mem_cgroup_get() as SWAPOUT does), then the swap_lock
        section decides SWAPOUT or DROP and records the slot in the same step as
        swap_entry_free(), so the record can never land on a slot that was freed and
        given to another page in between; on DROP memsw is uncharged after it.  No
        lock-free reader tells the orders apart: the page is locked and out of the
        swap cache, and its slot still has SWAP_HAS_CACHE until the mm step.
        """
        record = 0
        if pfn:
            record = await cpu.call(memcontrol.mem_cgroup_uncharge_swapcache, pfn, mapped, True)
        _, uncharge_id, drop = await cpu.call(swapfile.swapcache_free, entry, record)
        if uncharge_id:
            await cpu.call(memcontrol.mem_cgroup_uncharge_swap, uncharge_id)
        if drop:
            await cpu.call(memcontrol.mem_cgroup_uncharge_swap, record)


@primitive("mm", "swp")
@takes(SWAP_LOCK_ID)  # scan_swap_map()'s re-check, under swap_lock again
def swap_slot_value(mm: MmState, entry: int) -> int:
    """Read swap_map[entry]."""
    return mm.swap.swap_map[entry]


async def _slot_free(cpu: Cpu, entry: int) -> bool:
    return await cpu.call(swap_slot_value, entry) == 0


async def try_to_reclaim_swap(cpu: Cpu, entry: int) -> bool:
    """Models 2.6.31 __try_to_reclaim_swap(): find_get_page, trylock_page, try_to_free_swap.

    (Named without the underscores: called from a class body, Python would mangle them.)
    """
    pfn = await cpu.call(find_get_page, entry)
    if not pfn:
        return False
    freed = False
    if await cpu.call(trylock_page, pfn):
        freed = await swapfile.try_to_free_swap(cpu, pfn)
        await cpu.call(unlock_page, pfn)
    await cpu.call(page_cache_release, pfn)
    return freed
