"""Models mm/swapfile.c: swap_map counting, slot allocation, free_swap_and_cache().

Two encodings of swap_map[] are modelled, chosen by MmConfig.swap_has_cache:

- 2.6.30: the value is the number of pte/shmem references **plus one while a
  swap-cache page exists**; the slot is free at 0 and only then is memsw
  uncharged.  "Only the swap cache holds it" is ``swap_map == 1`` *and* a page
  in swapper_space.
- 2.6.31 ("mm: modify swap_map and add SWAP_HAS_CACHE flag"): the value is
  ``count | SWAP_HAS_CACHE``; memsw is uncharged when the count reaches 0
  ("memcg: fix swap accounting") even while a cache page still pins the slot.

Simplification: scan_swap_map() is one critical section doing a next-fit
search from cluster_next; the kernel drops swap_lock while it looks for a free
SWAPFILE_CLUSTER, which only changes which free slot is chosen.
"""

from __future__ import annotations

from errno import EEXIST, ENOENT
from typing import NamedTuple

from kernsim.model import memcontrol, swap_state
from kernsim.model.filemap import (
    find_get_page,
    page_cache_release,
    page_flags,
    trylock_page,
    unlock_page,
)
from kernsim.model.locks import (
    SWAP_LOCK_ID,
    held,
    spin_lock_swap_lock,
    spin_unlock_swap_lock,
    takes,
)
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import (
    SWAP_CACHE,
    SWAP_COUNT_MASK,
    SWAP_HAS_CACHE,
    SWAP_MAP,
    SWAP_MAP_MAX,
    SWAP_MAP_MAX_31,
)
from kernsim.model.port import Cpu, primitive


def swap_count(mm: MmState, value: int) -> int:
    """References other than the swap cache's, read from a swap_map value."""
    if mm.config.swap_has_cache:
        return value & SWAP_COUNT_MASK
    return value


def _check_entry(mm: MmState, entry: int) -> None:
    if not 0 < entry < len(mm.swap.swap_map):
        raise KernelBug(f"swp_entry {entry} is out of range")


def _slot_freed(mm: MmState, entry: int) -> None:
    sw = mm.swap
    sw.nr_swap_pages += 1
    sw.inuse_pages -= 1


def _uncharge_swap(mm: MmState, entry: int) -> int:
    """mem_cgroup_uncharge_swap(): swap_cgroup_record(ent, 0); memsw goes on memcg."""
    old = mm.swap.swap_cgroup[entry]
    mm.swap.swap_cgroup[entry] = 0
    return old


def swap_entry_free(mm: MmState, entry: int, usage: int = SWAP_MAP) -> tuple[int, int]:
    """Models swap_entry_free() of 2.6.30 (``usage`` ignored) and of 2.6.31.

    Returns (new swap_map value, memcg id whose memsw must be uncharged or 0).
    Not a primitive by itself: callers hold swap_lock, i.e. run inside one.
    """
    sw = mm.swap
    value = sw.swap_map[entry]
    if value == 0:
        raise KernelBug(f"swap_free: unused swap entry {entry}")
    if not mm.config.swap_has_cache:
        if value < SWAP_MAP_MAX:
            value -= 1
            sw.swap_map[entry] = value
            if value == 0:
                _slot_freed(mm, entry)
                return 0, _uncharge_swap(mm, entry)
        return value, 0
    count, has_cache = value & SWAP_COUNT_MASK, bool(value & SWAP_HAS_CACHE)
    if usage == SWAP_MAP:
        if count == 0:
            raise KernelBug(f"swap_free: entry {entry} has no map count")
        if count < SWAP_MAP_MAX_31:
            count -= 1
    else:
        if not has_cache:
            raise KernelBug(f"swapcache_free: entry {entry} has no SWAP_HAS_CACHE")
        has_cache = False
    value = count | (SWAP_HAS_CACHE if has_cache else 0)
    sw.swap_map[entry] = value
    if value == 0:
        _slot_freed(mm, entry)
    # memcg: fix swap accounting: memsw goes when no pte/shmem reference is left.
    return value, _uncharge_swap(mm, entry) if count == 0 else 0


@primitive("mm")
@takes(SWAP_LOCK_ID)
def get_swap_page(mm: MmState) -> int:
    """Models get_swap_page() -> scan_swap_map(): a free slot, or 0 when swap is full.

    The new slot's value is 1 (2.6.30: the swap cache's reference) or
    SWAP_HAS_CACHE (2.6.31: scan_swap_map(si, SWAP_CACHE)).
    """
    sw = mm.swap
    if sw.nr_swap_pages <= 0:
        return 0
    n = len(sw.swap_map)
    offset = sw.cluster_next
    for _ in range(n):
        if offset >= n:
            offset = 1
        if sw.swap_map[offset] == 0:
            sw.swap_map[offset] = SWAP_HAS_CACHE if mm.config.swap_has_cache else 1
            sw.nr_swap_pages -= 1
            sw.inuse_pages += 1
            sw.cluster_next = offset + 1
            return offset
        offset += 1
    raise KernelBug("nr_swap_pages > 0 but no free slot in swap_map")


@primitive("mm", "swp")
@takes(SWAP_LOCK_ID)
def swap_duplicate(mm: MmState, entry: int) -> int:
    """Models swap_duplicate(): +1 reference if the slot is in use; 1 on success, 0 if free."""
    _check_entry(mm, entry)
    return _swap_duplicate(mm, entry)


def _swap_duplicate(mm: MmState, entry: int) -> int:
    """swap_duplicate()'s body, for a caller already inside swap_lock's section."""
    sw = mm.swap
    value = sw.swap_map[entry]
    if mm.config.swap_has_cache:
        count = value & SWAP_COUNT_MASK
        if value == 0:
            return 0
        if count < SWAP_MAP_MAX_31:
            sw.swap_map[entry] = (count + 1) | (value & SWAP_HAS_CACHE)
        return 1
    if value == 0:
        return 0
    sw.swap_map[entry] = min(value + 1, SWAP_MAP_MAX)
    return 1


@primitive("mm", "swp")
@takes(SWAP_LOCK_ID)
def swapcache_prepare(mm: MmState, entry: int) -> int:
    """Models 2.6.31 swapcache_prepare(): claim SWAP_HAS_CACHE for a cache page to come.

    0 when claimed, -EEXIST when another cache page has it (the caller loops),
    -ENOENT when no pte references the slot any more.
    """
    _check_entry(mm, entry)
    value = mm.swap.swap_map[entry]
    count, has_cache = value & SWAP_COUNT_MASK, bool(value & SWAP_HAS_CACHE)
    if has_cache:
        return -EEXIST
    if count == 0:
        return -ENOENT
    mm.swap.swap_map[entry] = count | SWAP_HAS_CACHE
    return 0


@primitive("mm", "swp")
@takes(SWAP_LOCK_ID)
def swap_free(mm: MmState, entry: int) -> tuple[int, int]:
    """Models swap_free(): drop one pte reference (2.6.30: or the cache's)."""
    _check_entry(mm, entry)
    return swap_entry_free(mm, entry, SWAP_MAP)


@primitive("mm", "swp")
@takes(SWAP_LOCK_ID)
def swapcache_free(mm: MmState, entry: int, memcg_id: int) -> tuple[int, int, bool]:
    """The swap_lock section of 2.6.31 swapcache_free(entry, page).

    swap_entry_free(SWAP_CACHE) clears SWAP_HAS_CACHE; then, for the page's
    mem_cgroup_uncharge_swapcache(page, entry, swapout = value != 0): with a swap
    user left (SWAPOUT) the memsw charge moves to the slot (swap_cgroup_record()),
    with none (DROP) it must be uncharged.  ``memcg_id`` is the group the caller's
    memcg half already took res from (0: the page was not uncharged, or no page).

    Returns (new value, memcg id whose old record swap_entry_free() dropped, DROP?):
    the caller uncharges memsw for the first id and, on DROP, for ``memcg_id``.
    Doing the record here, in the same section as swap_entry_free(), keeps the
    kernel's guarantee that it can never land on a slot freed and reused meanwhile.
    """
    _check_entry(mm, entry)
    value, uncharge_id = swap_entry_free(mm, entry, SWAP_CACHE)
    if memcg_id and value:
        mm.swap.swap_cgroup[entry] = memcg_id
    return value, uncharge_id, bool(memcg_id) and not value


@primitive("mm", "page")
@takes(SWAP_LOCK_ID)
def page_swapcount(mm: MmState, pfn: int) -> int:
    """Models page_swapcount(): references to the page's slot besides the cache's.

    Read under swap_lock, which swap_info_get() takes.
    """
    page = mm.page(pfn)
    value = mm.swap.swap_map[page.private]
    if mm.config.swap_has_cache:
        return value & SWAP_COUNT_MASK
    return value - 1


@primitive("mm")
def vm_swap_full(mm: MmState) -> bool:
    """Models vm_swap_full(): more than half of swap in use."""
    sw = mm.swap
    return sw.nr_swap_pages * 2 < sw.total_swap_pages


@primitive("mm", "swp")
@takes(SWAP_LOCK_ID)
def valid_swaphandles(mm: MmState, entry: int) -> tuple[int, int]:
    """Models valid_swaphandles(): the readahead window around ``entry``.

    Returns (first offset, number of pages); (0, 0) when there is no readahead
    (page_cluster 0, or no slot in use next to ``entry``).
    """
    page_cluster = mm.config.page_cluster
    if not page_cluster:
        return 0, 0
    sw = mm.swap
    base = (entry >> page_cluster) << page_cluster
    end = min(base + (1 << page_cluster), len(sw.swap_map))
    base = max(base, 1)  # the first page is the swap header
    nr = 0
    toff = entry + 1
    while toff < end and sw.swap_map[toff]:
        nr += 1
        toff += 1
    toff = entry - 1
    while toff >= base and sw.swap_map[toff]:
        nr += 1
        toff -= 1
    return (toff + 1, nr + 1) if nr else (0, 0)


class SwapEntryFreed(NamedTuple):
    """What free_swap_and_cache()'s swap_entry_free() did."""

    value: int  # swap_map[entry] after swap_entry_free()
    uncharge: int  # memcg id whose memsw mem_cgroup_uncharge_swap() must drop
    only_cache: bool  # "swap_entry_free(p, entry) == 1": only the swap cache is left


@primitive("mm", "swp")
def swap_entry_free_locked(mm: MmState, entry: int) -> SwapEntryFreed:
    """free_swap_and_cache()'s swap_entry_free(), inside its caller's swap_lock section.

    The rest of that section (find_get_page(), trylock_page(), and
    page_cache_release() when the trylock fails) is one primitive per step:
    reclaim's lock-free page_count() tests can see find_get_page()'s reference.
    """
    _check_entry(mm, entry)
    held(mm, SWAP_LOCK_ID, "free_swap_and_cache")
    value, uncharge_id = swap_entry_free(mm, entry, SWAP_MAP)
    only_cache = SWAP_HAS_CACHE if mm.config.swap_has_cache else 1
    return SwapEntryFreed(value, uncharge_id, value == only_cache)


@primitive("mm", "swp")
def swap_cgroup_record(mm: MmState, entry: int, memcg_id: int) -> int:
    """Models swap_cgroup_record(): set the slot's owner, return the old one."""
    _check_entry(mm, entry)
    old = mm.swap.swap_cgroup[entry]
    mm.swap.swap_cgroup[entry] = memcg_id
    return old


@primitive("mm", "swp")
def lookup_swap_cgroup(mm: MmState, entry: int) -> int:
    """Models lookup_swap_cgroup(): the memcg id recorded for a slot (0: none)."""
    _check_entry(mm, entry)
    return mm.swap.swap_cgroup[entry]


@primitive("mm", "page")
@takes(SWAP_LOCK_ID)  # page_swapcount() takes swap_lock
def reuse_swap_page_check(mm: MmState, pfn: int) -> bool | None:
    """The swap_lock part of reuse_swap_page(): count = page_mapcount(), plus
    page_swapcount() if that is at most 1 and the page is in the swap cache; the
    faulting pte may write the page in place if count == 1.

    True: count == 1 and !PageWriteback(), the caller must delete_from_swap_cache()
    (and SetPageDirty()); False: count == 1, nothing to free (not in the swap cache,
    or under writeback, which keeps its swap); None: count != 1, shared with another
    pte or swap pte (fork), the caller write-protects or copies.

    The kernel reads the mapcount and PageWriteback() locklessly around the
    swap_lock section; the caller holds PG_locked, so the page stays in the cache.
    """
    page = mm.page(pfn)
    count = page.mapcount
    if count <= 1 and page.swapcache:
        count += page_swapcount(mm, pfn)
        if count == 1 and not page.writeback:
            return True
    return False if count == 1 else None


# --- code paths -------------------------------------------------------------


async def swap_free_and_uncharge(cpu: Cpu, entry: int) -> int:
    """swap_free(), including its mem_cgroup_uncharge_swap() when the count drops."""
    value, uncharge_id = await cpu.call(swap_free, entry)
    if uncharge_id:
        await cpu.call(memcontrol.mem_cgroup_uncharge_swap, uncharge_id)
    return value


async def try_to_free_swap(cpu: Cpu, pfn: int) -> bool:
    """Models try_to_free_swap(): the caller holds PG_locked."""
    flags = await cpu.call(page_flags, pfn)
    if not flags.swapcache or flags.writeback:
        return False
    if await cpu.call(page_swapcount, pfn):
        return False
    await swap_state.delete_from_swap_cache(cpu, pfn, set_dirty=True)
    return True


async def reuse_swap_page(cpu: Cpu, pfn: int) -> bool:
    """Models reuse_swap_page() for do_swap_page()'s and do_wp_page()'s write fault (the
    page is locked): True when the faulting pte is the page's only user and may write it
    in place; then, unless it is under writeback, its swap is freed
    (delete_from_swap_cache(), SetPageDirty()).  False when another pte or swap pte
    (fork) still uses it: copy-on-write."""
    reuse = await cpu.call(reuse_swap_page_check, pfn)
    if reuse:
        await swap_state.delete_from_swap_cache(cpu, pfn, set_dirty=True)
    return reuse is not None


async def free_swap_and_cache(cpu: Cpu, entry: int) -> None:
    """Models free_swap_and_cache(): best effort, called under the pte lock (no sleeping).

    swap_lock is held from swap_info_get() to spin_unlock() across
    swap_entry_free() (with mem_cgroup_uncharge_swap() when the count reaches
    0), find_get_page(), trylock_page() and, on failure, page_cache_release():
    other swap_lock users wait, lock-free readers may see every step.
    """
    await cpu.call(spin_lock_swap_lock, cpu.name)
    freed = await cpu.call(swap_entry_free_locked, entry)
    if freed.uncharge:
        await cpu.call(memcontrol.mem_cgroup_uncharge_swap, freed.uncharge)
    pfn, busy = 0, False
    if freed.only_cache:
        pfn = await cpu.call(find_get_page, entry)
        if pfn and not await cpu.call(trylock_page, pfn):
            await cpu.call(page_cache_release, pfn)
            pfn, busy = 0, True
    await cpu.call(spin_unlock_swap_lock, cpu.name)
    if busy:
        await cpu.variant.free_swap_and_cache_busy(cpu, entry)
    if not pfn:
        return
    # Not mapped elsewhere, or swap space full? Free it!
    # Also recheck PageSwapCache now page is locked (above).
    flags = await cpu.call(page_flags, pfn)
    if (
        flags.swapcache
        and not flags.writeback
        and (not flags.mapped or await cpu.call(vm_swap_full))
    ):
        await swap_state.delete_from_swap_cache(cpu, pfn, set_dirty=True)
    await cpu.call(unlock_page, pfn)
    await cpu.call(page_cache_release, pfn)
