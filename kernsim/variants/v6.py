"""memcg fix stale swap cache account leak v6 (KAMEZAWA Hiroyuki, linux-mm, 8 May 2009), as
the compiler builds it with CONFIG_CGROUP_MEM_RES_CTLR=y and CONFIG_CGROUP_MEM_RES_CTLR_SWAP=y.

Messages:
- [PATCH 0/2] <20090508140528.c34ae712.kamezawa.hiroyu@jp.fujitsu.com> (cover letter);
- [PATCH 1/2] "add mem cgroup is activated check"
  <20090508140713.e08827d8.kamezawa.hiroyu@jp.fujitsu.com>: mem_cgroup_activated(), set
  by the memory subsystem's ->bind() when it is first mounted;
- [PATCH 2/2] <20090508140910.bb07f5c6.kamezawa.hiroyu@jp.fujitsu.com>.  The 2/2 mail
  itself was not found; its text is taken from the whole-patch quote in Daisuke
  Nishimura's reply
  <20090508230107.8dd680b3.d-nishimura@mtf.biglobe.ne.jp> (every hunk, page_io.c,
  vmscan.c and swap_state.c, is quoted there in full).  Nothing here is reconstructed
  beyond that quote.

What the posted 2/2 builds to:
1. mm/swap_state.c, swapin_readahead(): ``int nr_pages = 1; unsigned long offset = 0;``
   and ``if (!mem_cgroup_activated()) nr_pages = valid_swaphandles(entry, &offset);`` --
   with memcg in use, the readahead loop reads offset 0 (the swap header: the page
   allocation is wasted and swap_duplicate() fails on SWAP_MAP_BAD, which ends the loop),
   then the faulting entry as usual (Johannes Weiner,
   <20090512112359.GA20771@cmpxchg.org>, on the identical v7 hunk).
2. mm/page_io.c (under CONFIG_CGROUP_MEM_RES_CTLR, spelled right): end_swap_bio_write()
   calls mem_cgroup_swapio_check_again() before end_page_writeback(): if memcg is
   activated, every written entry is queued (no lockless swap_map hint any more, and
   nothing at read completion: "check after I/O works only after writeback"); the
   delayed work (HZ/10, SWAP_CLUSTER_MAX entries a run) does find_get_page(); if the
   page is gone from the swap cache or mapped it drops its reference ("fixed page refcnt
   issue"); else lock_page() and, if still in the swap cache, not under writeback and
   not mapped, delete_from_swap_cache() -- without looking at page_swapcount().
3. mm/vmscan.c: the v5 hook (try_to_free_swap() when __remove_mapping() fails) is again
   under ``#ifdef CONFIG_CGROUP_MEM_RES_CTRL``, a symbol that 2.6.30's init/Kconfig does
   not define (the real one is CGROUP_MEM_RES_CTLR), so the empty ``#else`` stub is what
   compiles: no hook.  The variant leaves Variant.remove_mapping_failed() alone.

Not modelled: the bio reuse (``atomic_inc_return(&bio->bi_cnt) > 2``: bio_put and return),
which never fires for a swap write bio nobody else holds (the count goes 1 -> 2).
"""

from __future__ import annotations

from kernsim.model import swap_state
from kernsim.model.filemap import (
    find_get_page,
    lock_page,
    page_cache_release,
    page_flags,
    unlock_page,
)
from kernsim.model.locks import SWAP_LOCK_ID, takes
from kernsim.model.memcontrol import MemcgState
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import SWAP_CLUSTER_MAX
from kernsim.model.port import Cpu, code_path, primitive
from kernsim.variants.base import Claim, Variant
from kernsim.variants.v5 import (
    HZ_10_S,
    stale_swap_check_pop,
    stale_swap_check_queue,
    stale_swap_check_reschedule,
    stale_swap_check_start,
)


@primitive("memcg")
def mem_cgroup_activated(memcg: MemcgState) -> bool:
    """v6/v7 1/2-1/3 mem_cgroup_activated(): the memory controller was mounted at least once.

    ``__mem_cgroup_activated`` is set by mem_cgroup_bind() and never cleared.  A cgroup
    other than the root exists only on a mounted hierarchy, and kernsim never removes
    one, so "a group besides the root exists" is the same test.
    """
    return len(memcg.groups) > 1


@primitive("mm", "swp")
@takes(SWAP_LOCK_ID)  # swap_duplicate() takes swap_lock
def swap_duplicate_swap_header(mm: MmState, entry: int) -> int:
    """swap_duplicate() of offset 0: swap_map[0] holds SWAP_MAP_BAD (the swap header),
    which is above SWAP_MAP_MAX, so neither branch takes a reference: 0."""
    if entry != 0:
        raise KernelBug(f"swap_duplicate_swap_header: entry {entry} is not the swap header")
    return 0


class AvoidReadahead(Variant):
    """The swap_state.c hunk shared by v6 2/2 and v7 2/3 ("avoid swapin-readahead when
    memcg is activated"), exactly as posted: nr_pages = 1 at offset 0."""

    async def swapin_readahead_window(self, cpu: Cpu, entry: int) -> tuple[int, int]:
        if await cpu.call(mem_cgroup_activated):
            return 0, 1
        return await super().swapin_readahead_window(cpu, entry)

    async def swap_duplicate_for_cache(self, cpu: Cpu, entry: int) -> Claim:
        if entry == 0:  # read_swap_cache_async(swp_entry(type, 0)) from the loop above
            return "ok" if await cpu.call(swap_duplicate_swap_header, entry) else "fail"
        return await super().swap_duplicate_for_cache(cpu, entry)


async def mem_cgroup_swapio_check_again_v6(cpu: Cpu, pfn: int) -> None:
    """v6 mem_cgroup_swapio_check_again(): "If memcg is not mounted, global LRU will work
    fine"; otherwise remember the entry (not the page) and schedule the check."""
    if not await cpu.call(mem_cgroup_activated):
        return
    if await cpu.call(stale_swap_check_queue, pfn):
        await cpu.post("workqueue", "mem_cgroup_check_stale_swap_v6", delay_s=HZ_10_S)


@code_path
async def mem_cgroup_check_stale_swap_v6(cpu: Cpu) -> None:
    """v6's mem_cgroup_check_stale_swap(): "synchronous" freeing of swap cache after
    writeback.  (The Python name carries _v6: v5's worker of the same kernel name is
    registered too.)"""
    await cpu.call(stale_swap_check_start)
    for _ in range(SWAP_CLUSTER_MAX):
        entry = await cpu.call(stale_swap_check_pop)
        if not entry:
            break
        # "The page is not found if it's already reclaimed"
        pfn = await cpu.call(find_get_page, entry)
        if not pfn:
            continue
        flags = await cpu.call(page_flags, pfn)
        if not flags.swapcache or flags.mapped:
            await cpu.call(page_cache_release, pfn)
            continue
        await cpu.call(lock_page, pfn)
        flags = await cpu.call(page_flags, pfn)
        if flags.swapcache and not flags.writeback and not flags.mapped:
            await swap_state.delete_from_swap_cache(cpu, pfn)
        await cpu.call(unlock_page, pfn)
        await cpu.call(page_cache_release, pfn)
    if await cpu.call(stale_swap_check_reschedule):
        await cpu.post("workqueue", "mem_cgroup_check_stale_swap_v6", delay_s=HZ_10_S)


class V6(AvoidReadahead):
    name = "v6"

    async def end_swap_bio_write_hook(self, cpu: Cpu, pfn: int) -> None:
        # end_swap_bio_write(): after the error path, before end_page_writeback().
        await mem_cgroup_swapio_check_again_v6(cpu, pfn)

    # No end_swap_bio_read_hook: v6 checks "only after writeback".
    # No remove_mapping_failed: the vmscan.c hunk compiles to the empty stub (see above).
