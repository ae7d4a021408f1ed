"""memcg: fix stale swap cache leak v5 (KAMEZAWA Hiroyuki, LKML, 30 Apr 2009), as posted,
i.e. as the compiler builds it with CONFIG_CGROUP_MEM_RES_CTLR=y and
CONFIG_CGROUP_MEM_RES_CTLR_SWAP=y.

1. After every swap I/O, end_swap_bio_read/write call
   mem_cgroup_swapio_check_again(): a lockless look at the page
   (mem_cgroup_staleswap_hint(): in swap cache, unmapped, swap_map == 1 read
   without swap_lock).  A stale-looking entry is queued on stale_swap_check and
   a delayed work (HZ/10) frees it later with try_to_free_swap().
   (page_io.c and swapfile.c: under ``#ifdef CONFIG_CGROUP_MEM_RES_CTLR``, built.)
2. The vmscan.c hunk adds unuse_swapcache_check_again(), a try_to_free_swap()
   when __remove_mapping() fails, under ``#ifdef CONFIG_CGROUP_MEM_RES_CTRL``:
   a symbol that does not exist (2.6.30 init/Kconfig has CGROUP_MEM_RES_CTLR), so
   the ``#else`` stub -- an empty inline function -- is what is built.  ``v5``
   therefore does nothing there; ``v5-as-intended`` runs the hook as its author
   meant it, so both outcomes can be compared.

Bugs kept on purpose, as in the mail: the worker's
``if (!page || page_mapped(page)) continue;`` leaks the reference that
find_get_page() took when the page is mapped ("fixed page refcnt issue" in
v6), and the hint reads swap_map and the page flags without any lock.
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
from kernsim.model.mm_types import SWAP_CLUSTER_MAX
from kernsim.model.port import Cpu, code_path, primitive
from kernsim.variants.base import Variant

HZ_10_S = 0.1  # schedule_delayed_work(&sc->work, HZ/10)


@dataclass(slots=True)
class StaleSwapCheck:
    """struct swapio_check stale_swap_check: the queued entries and the work's pending bit."""

    swap_bio_list: list[int] = field(default_factory=list)
    work_pending: bool = False


def _sc(mm: MmState) -> StaleSwapCheck:
    sc = mm.extra.get("stale_swap_check")
    if sc is None:
        sc = mm.extra["stale_swap_check"] = StaleSwapCheck()
    assert isinstance(sc, StaleSwapCheck)
    return sc


@primitive("mm", "page")
def mem_cgroup_staleswap_hint(mm: MmState, pfn: int) -> bool:
    """v5 mem_cgroup_staleswap_hint(): True ("stable") unless the page looks stale.

    page_swapused_nolock(): swap_map[offset] != 1, read without swap_lock.
    """
    page = mm.page(pfn)
    if not page.swapcache or page.mapcount > 0:
        return True
    return mm.swap.swap_map[page.private] != 1


@primitive("mm", "page")
def stale_swap_check_queue(mm: MmState, pfn: int) -> bool:
    """Link the page's entry on stale_swap_check (under sc->lock, irqs off).

    Returns True when the delayed work must be scheduled (it was not pending).
    """
    sc = _sc(mm)
    sc.swap_bio_list.insert(0, mm.page(pfn).private)  # bio->bi_next = sc->swap_bio_list
    if sc.work_pending:
        return False
    sc.work_pending = True
    return True


@primitive("mm")
def stale_swap_check_pop(mm: MmState) -> int:
    """Take the first queued entry (under sc->lock); 0 when the list is empty."""
    sc = _sc(mm)
    return sc.swap_bio_list.pop(0) if sc.swap_bio_list else 0


@primitive("mm")
def stale_swap_check_start(mm: MmState) -> None:
    """The workqueue clears the work's pending bit just before running it."""
    _sc(mm).work_pending = False


@primitive("mm")
def stale_swap_check_reschedule(mm: MmState) -> bool:
    """``if (sc->swap_bio_list) schedule_delayed_work(&sc->work, HZ/10);``"""
    sc = _sc(mm)
    if sc.swap_bio_list and not sc.work_pending:
        sc.work_pending = True
        return True
    return False


async def mem_cgroup_swapio_check_again(cpu: Cpu, pfn: int) -> None:
    """v5: check the swap count after I/O; queue a stale-looking entry for the worker."""
    if await cpu.call(mem_cgroup_staleswap_hint, pfn):
        return
    if await cpu.call(stale_swap_check_queue, pfn):
        await cpu.post("workqueue", "mem_cgroup_check_stale_swap", delay_s=HZ_10_S)


@code_path
async def mem_cgroup_check_stale_swap(cpu: Cpu) -> None:
    """v5's delayed work: try_to_free_swap() each queued entry, SWAP_CLUSTER_MAX per run."""
    await cpu.call(stale_swap_check_start)
    for _ in range(SWAP_CLUSTER_MAX):
        entry = await cpu.call(stale_swap_check_pop)
        if not entry:
            break
        pfn = await cpu.call(find_get_page, entry)
        if not pfn or (await cpu.call(page_flags, pfn)).mapped:
            continue  # v5's bug: a mapped page keeps find_get_page()'s reference
        await cpu.call(lock_page, pfn)
        if not (await cpu.call(page_flags, pfn)).mapped:
            await swapfile.try_to_free_swap(cpu, pfn)
        await cpu.call(unlock_page, pfn)
        await cpu.call(page_cache_release, pfn)
    if await cpu.call(stale_swap_check_reschedule):
        await cpu.post("workqueue", "mem_cgroup_check_stale_swap", delay_s=HZ_10_S)


class V5(Variant):
    name = "v5"

    async def end_swap_bio_read_hook(self, cpu: Cpu, pfn: int) -> None:
        await mem_cgroup_swapio_check_again(cpu, pfn)

    async def end_swap_bio_write_hook(self, cpu: Cpu, pfn: int) -> None:
        # "While PG_writeback, this page is stable ...then, call this here"
        await mem_cgroup_swapio_check_again(cpu, pfn)

    # remove_mapping_failed() is not overridden: unuse_swapcache_check_again() is the
    # empty stub of ``#else /* CONFIG_CGROUP_MEM_RES_CTRL */`` (see the module docstring).


class V5AsIntended(V5):
    """v5 with its vmscan.c hunk built, as if its ``#ifdef`` named CONFIG_CGROUP_MEM_RES_CTLR.

    Not what was posted: for comparison only (what v5 would have caught).
    """

    name = "v5-as-intended"

    async def remove_mapping_failed(self, cpu: Cpu, pfn: int) -> None:
        """unuse_swapcache_check_again(): the page is locked but has an extra reference."""
        if (await cpu.call(page_flags, pfn)).swapcache:
            await swapfile.try_to_free_swap(cpu, pfn)
