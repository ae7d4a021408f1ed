"""The hooks of the thread's later versions, as posted: v6 (8 May 2009), v7 (12 May 2009)
and Nishimura's type-2 patch (1 May 2009).  Message-Ids in docs/KERNEL.md section 9."""

from __future__ import annotations

import pytest

from kernsim.model.filemap import trylock_page, unlock_page
from kernsim.model.memcontrol import MemcgState
from kernsim.model.memory import handle_mm_fault, zap_page_range
from kernsim.model.swap import lru_add_drain_all
from kernsim.model.swap_state import add_to_swap
from kernsim.model.swapfile import free_swap_and_cache, swap_duplicate, valid_swaphandles
from kernsim.model.vmscan import (
    ScanControl,
    isolate_lru_pages_of,
    putback_lru_page,
    shrink_page_list,
)
from kernsim.sim.cpu import SimCpu
from kernsim.variants.v4 import (
    STALE_ENTS,
    _ssc,
    memcg_fixup_stale_swapcache,
    memcg_mark_swapent_stale,
    ssc_forget,
)
from kernsim.variants.v5 import stale_swap_check_pop, stale_swap_check_queue
from kernsim.variants.v6 import (
    mem_cgroup_activated,
    mem_cgroup_check_stale_swap_v6,
    swap_duplicate_swap_header,
)
from tests.support.unitkit import Machine, drain_all, make_machine, swap_out, swapcache_page


def _prims(m: Machine) -> list[tuple[str, tuple[object, ...]]]:
    return [(e.prim, tuple(e.args)) for e in m.world.engine.trace]


# --- 1/2, 1/3: mem_cgroup_activated() -------------------------------------------------------


def test_mem_cgroup_activated_once_a_group_exists() -> None:
    """v6 1/2, v7 1/3: ``__mem_cgroup_activated`` is set when the controller is mounted
    (mem_cgroup_bind); a group besides the root exists only on a mounted hierarchy."""
    mc = MemcgState()
    assert mem_cgroup_activated(mc) is False
    mc.create("/A")
    assert mem_cgroup_activated(mc) is True


# --- v6 2/2 = v7 2/3: no readahead when memcg is activated ----------------------------------


def test_swap_duplicate_of_the_swap_header_fails() -> None:
    """swap_map[0] is SWAP_MAP_BAD (0x8000 > SWAP_MAP_MAX): swap_duplicate() returns 0."""
    m = make_machine("v7")
    assert swap_duplicate_swap_header(m.mm, 0) == 0


@pytest.mark.parametrize("variant", ["v6", "v7"])
def test_readahead_window_is_slot_0_when_memcg_is_activated(variant: str) -> None:
    """``int nr_pages = 1; unsigned long offset = 0; if (!mem_cgroup_activated())
    nr_pages = valid_swaphandles(entry, &offset);`` -- with /A in use: (0, 1)."""
    m = make_machine(variant)
    for _ in range(3):
        swapcache_page(m.mm)  # slots 1..3 in use
    k = m.kthread()
    assert m.run(k, m.world.engine.variant.swapin_readahead_window(k, 2)) == (0, 1)
    assert valid_swaphandles(m.mm, 2) == (1, 3)  # what vanilla would read


def test_vanilla_readahead_window_is_valid_swaphandles() -> None:
    m = make_machine("none")
    for _ in range(3):
        swapcache_page(m.mm)
    k = m.kthread()
    assert m.run(k, m.world.engine.variant.swapin_readahead_window(k, 2)) == (1, 3)


def _three_swapped_pages(m: Machine) -> tuple[SimCpu, list[int]]:
    """Task A with three pages swapped out to neighbouring slots; returns A, the slots."""
    a = m.task()
    pfns = []
    for addr in range(3):
        m.run(a, handle_mm_fault(a, a.task, addr, True))
        pfns.append(m.pte(a, addr).val)
    for pfn in pfns:
        swap_out(m, pfn)
    slots = [m.pte(a, addr).val for addr in range(3)]
    assert all(not m.pte(a, addr).present for addr in range(3))
    return a, slots


@pytest.mark.parametrize(("variant", "neighbours_read"), [("none", True), ("v7", False)])
def test_swap_in_reads_neighbours_only_without_the_patch(
    variant: str, neighbours_read: bool
) -> None:
    """A fault on the middle slot: vanilla reads the whole window into the swap cache;
    v7 reads only the faulting entry -- after a wasted page for slot 0 whose
    swap_duplicate() fails (Johannes Weiner, <20090512112359.GA20771@cmpxchg.org>)."""
    m = make_machine(variant)
    a, slots = _three_swapped_pages(m)
    free_before = m.mm.nr_free_pages
    start = len(m.world.engine.trace)
    m.run(a, handle_mm_fault(a, a.task, 1, True))
    m.run(a, drain_all(a))
    assert m.pte(a, 1).present
    others = [s for i, s in enumerate(slots) if i != 1]
    assert all((s in m.mm.swapper_space) is neighbours_read for s in others)
    tail = _prims(m)[start:]
    assert (("swap_duplicate_swap_header", (0,)) in tail) is (not neighbours_read)
    if not neighbours_read:
        assert m.mm.nr_free_pages == free_before - 1  # only the faulting page is kept


# --- v6 2/2: the check after writeback --------------------------------------------------------


def _run_v6_worker(m: Machine) -> None:
    k = SimCpu(m.world.engine, "kworker", "workqueue", "workqueue")
    m.run(k, mem_cgroup_check_stale_swap_v6(k))


def test_v6_queues_every_write_completion_when_activated() -> None:
    """v6 end_swap_bio_write() -> mem_cgroup_swapio_check_again(): no swap_map hint any
    more: with memcg activated the entry is queued whatever its count, and the worker
    (HZ/10 later) takes the unmapped page out of the swap cache."""
    m = make_machine("v6")
    pfn, entry = swapcache_page(m.mm)
    swap_duplicate(m.mm, entry)  # a pte still uses the slot: v5's hint would say "stable"
    irq = SimCpu(m.world.engine, "irq", "blockdev", "irq")
    m.run(irq, m.world.engine.variant.end_swap_bio_write_hook(irq, pfn))
    prims = [p for p, _ in _prims(m)]
    assert prims.index("stale_swap_check_queue") < prims.index("__delete_from_swap_cache")
    assert not m.mm.pages[pfn].swapcache and m.mm.swap.swap_map[entry] == 1


def test_v6_has_no_read_completion_check() -> None:
    """ "check after I/O works only after writeback": nothing is queued at read end."""
    m = make_machine("v6")
    pfn, _ = swapcache_page(m.mm)
    irq = SimCpu(m.world.engine, "irq", "blockdev", "irq")
    m.run(irq, m.world.engine.variant.end_swap_bio_read_hook(irq, pfn))
    assert stale_swap_check_pop(m.mm) == 0


def test_v6_worker_deletes_an_unmapped_page_whatever_its_swapcount() -> None:
    """v6 worker: ``if (PageSwapCache && !PageWriteback && !page_mapped)
    delete_from_swap_cache(page)`` -- no page_swapcount() test: a slot a swap pte still
    uses loses its cache page (the cache's reference) and keeps the pte's."""
    m = make_machine("v6")
    pfn, entry = swapcache_page(m.mm)
    swap_duplicate(m.mm, entry)  # value 2: a swap pte + the cache
    refs = m.mm.pages[pfn].count
    stale_swap_check_queue(m.mm, pfn)
    _run_v6_worker(m)
    page = m.mm.pages[pfn]
    assert not page.swapcache and entry not in m.mm.swapper_space
    assert m.mm.swap.swap_map[entry] == 1
    assert page.count == refs - 1 and not page.locked


def test_v6_worker_returns_its_reference_on_a_mapped_page() -> None:
    """v6's "fixed page refcnt issue": a mapped page gets page_cache_release() (v5 kept
    find_get_page()'s reference)."""
    m = make_machine("v6")
    a = m.task()
    m.run(a, handle_mm_fault(a, a.task, 0, True))
    swap_out(m, m.pte(a, 0).val)
    m.run(a, handle_mm_fault(a, a.task, 0, False))  # read fault: mapped, still cached
    m.run(a, drain_all(a))
    page = m.mm.pages[m.pte(a, 0).val]
    assert page.swapcache and page.mapcount == 1
    refs = page.count
    stale_swap_check_queue(m.mm, page.pfn)
    _run_v6_worker(m)
    assert page.count == refs and page.swapcache


@pytest.mark.parametrize("variant", ["none", "v6", "v7"])
def test_no_remove_mapping_hook_in_v6_and_v7(variant: str) -> None:
    """v6's vmscan.c hunk is under ``#ifdef CONFIG_CGROUP_MEM_RES_CTRL`` (no such Kconfig
    symbol): the empty stub compiles, so a page whose __remove_mapping() fails on the
    rotate pagevec's reference stays in the swap cache, as in vanilla; v7 has no hook."""
    m = make_machine(variant)
    pfn, entry = swapcache_page(m.mm)  # written, clean, unmapped; swap_map 1
    m.mm.pages[pfn].anon = m.mm.pages[pfn].uptodate = True
    m.mm.pages[pfn].count += 1
    putback_lru_page(m.mm, pfn, False)  # the rotate pagevec's reference
    isolate_lru_pages_of(m.mm, [pfn], False)
    k = m.kthread()
    m.run(k, shrink_page_list(k, [pfn], ScanControl()))
    assert m.world.engine.results == {"keep_locked": 1}
    assert m.mm.pages[pfn].swapcache and m.mm.swap.swap_map[entry] == 1


# --- v7 3/3 = type2-fix: memcg_free_unused_swapcache() after add_to_swap() -----------------


def _type2_page(m: Machine) -> tuple[int, SimCpu]:
    """A's page isolated by reclaim, then A's pte zapped (uncharged: not in the swap
    cache yet), PG_referenced set: Type-2's state before add_to_swap()."""
    a = m.task()
    m.run(a, handle_mm_fault(a, a.task, 0, True))
    pfn = m.pte(a, 0).val
    k = m.kthread()

    async def isolate() -> list[int]:
        await k.call(lru_add_drain_all)
        return (await k.call(isolate_lru_pages_of, [pfn], True)) + (
            await k.call(isolate_lru_pages_of, [pfn], False)
        )

    assert m.run(k, isolate()) == [pfn]
    m.run(a, zap_page_range(a, a.task, [0]))
    m.mm.pages[pfn].referenced = True
    return pfn, k


@pytest.mark.parametrize(
    ("variant", "freed"), [("none", False), ("v6", False), ("v7", True), ("type2-fix", True)]
)
def test_free_unused_swapcache_after_add_to_swap(variant: str, freed: bool) -> None:
    """v7 3/3: right after add_to_swap(), an anon page that is no longer mapped goes
    through try_to_free_swap() (page_swapcount 0: the new slot is freed) and keep_locked.
    Without the hook the page keeps its slot at the ``referenced`` keep_locked exit."""
    m = make_machine(variant)
    pfn, k = _type2_page(m)
    free = m.mm.swap.nr_swap_pages
    m.run(k, shrink_page_list(k, [pfn], ScanControl()))
    assert m.world.engine.results == {"keep_locked": 1}
    # Freed from the swap cache, the page's last reference (the isolation's) goes at
    # putback and the page is freed; kept, it stays in the cache on the global LRU.
    assert (pfn in m.mm.pages and m.mm.pages[pfn].swapcache) is not freed
    assert m.mm.swap.nr_swap_pages == (free if freed else free - 1)


def test_free_unused_swapcache_leaves_a_mapped_page_alone() -> None:
    """``if (!PageAnon(page) || page_mapped(page)) return 0;`` -- reclaim of a live page
    goes on to try_to_unmap() as in vanilla."""
    m = make_machine("v7")
    a = m.task()
    m.run(a, handle_mm_fault(a, a.task, 0, True))
    pfn = m.pte(a, 0).val
    k = m.kthread()

    async def add_then_hook() -> bool:
        assert await k.call(trylock_page, pfn)
        assert await add_to_swap(k, pfn)
        return await k.variant.after_add_to_swap(k, pfn)

    assert m.run(k, add_then_hook()) is False
    page = m.mm.pages[pfn]
    assert page.swapcache and page.mapcount == 1 and page.locked


# --- v4 (27 Apr 2009): the stale-entry buffer and its GC -------------------------------------


def _run_v4_gc(m: Machine) -> None:
    k = SimCpu(m.world.engine, "kworker", "workqueue", "workqueue")
    m.run(k, memcg_fixup_stale_swapcache(k))


def test_v4_records_an_entry_when_the_zap_trylock_fails() -> None:
    """v4 free_swap_and_cache(): ``if (page && !trylock_page(page)) { ...;
    memcg_mark_swapent_stale(entry); }`` -- and the GC, HZ/10 later, frees the page
    (lock_page waits for the holder; try_to_free_swap: swapcount 0)."""
    m = make_machine("v4")
    pfn, entry = swapcache_page(m.mm, locked=True)  # e.g. under read I/O
    swap_duplicate(m.mm, entry)  # one swap pte + the cache
    a = m.task()

    async def zap_then_unlock() -> None:
        await free_swap_and_cache(a, entry)
        assert _ssc(m.mm).ents == {0: entry}  # recorded, GC pending
        await a.call(unlock_page, pfn)  # the I/O completes

    m.run(a, zap_then_unlock())
    assert not _ssc(m.mm).ents
    assert entry not in m.mm.swapper_space and m.mm.swap.swap_map[entry] == 0


def test_v4_sanity_check_records_a_readahead_page_nobody_uses() -> None:
    """v4 memcg_sanity_check_swapin(): a page added by read_swap_cache_async() whose
    page_swapcount() is 0 (Ex. B: the last pte went between swap_duplicate() and
    add_to_swap_cache()) is recorded; one a pte still uses is not."""
    m = make_machine("v4")
    k = m.kthread()
    used, e_used = swapcache_page(m.mm)
    swap_duplicate(m.mm, e_used)
    m.run(k, m.world.engine.variant.read_swap_cache_async_added(k, used, e_used))
    assert not _ssc(m.mm).ents
    stale, e_stale = swapcache_page(m.mm)  # cache only: page_swapcount() == 0
    m.run(k, m.world.engine.variant.read_swap_cache_async_added(k, stale, e_stale))
    prims = [p for p, _ in _prims(m)]
    assert prims.count("memcg_mark_swapent_stale") == 1
    assert entry_is_gone(m, e_stale)  # the GC ran HZ/10 later and freed it
    assert not entry_is_gone(m, e_used)


def entry_is_gone(m: Machine, entry: int) -> bool:
    return entry not in m.mm.swapper_space and m.mm.swap.swap_map[entry] == 0


def test_v4_gc_keeps_an_entry_under_writeback() -> None:
    """``if (!ret && PageWriteback(page)) forget = 0;`` and ``if (ssc.num)
    schedule_ssc_gc();``"""
    m = make_machine("v4")
    pfn, entry = swapcache_page(m.mm)
    m.mm.pages[pfn].writeback = True
    memcg_mark_swapent_stale(m.mm, entry)
    k = SimCpu(m.world.engine, "kworker", "workqueue", "workqueue")
    m.world.engine.start(k, memcg_fixup_stale_swapcache(k))
    m.world.engine.run(until_s=0.05)
    assert _ssc(m.mm).ents == {0: entry} and _ssc(m.mm).work_pending
    m.mm.pages[pfn].writeback = False
    m.world.engine.run()
    assert entry_is_gone(m, entry) and not _ssc(m.mm).ents


def test_v4_congestion_above_half_the_buffer() -> None:
    """More than STALE_ENTS/2 recorded: readahead reads only the faulting entry
    (``offset = swp_offset(entry); nr_pages = 1``) and shrink_page_list() keeps anon
    pages out of the swap cache; below half again, both are back to normal."""
    m = make_machine("v4")
    for _ in range(3):
        swapcache_page(m.mm)
    ssc = _ssc(m.mm)
    for i in range(STALE_ENTS // 2 + 1):
        memcg_mark_swapent_stale(m.mm, 1 + i % 3)
    assert ssc.congestion
    k = m.kthread()
    v = m.world.engine.variant
    assert m.run(k, v.swapin_readahead_window(k, 2)) == (2, 1)
    assert m.run(k, v.before_add_to_swap(k, 1)) is True
    ssc_forget(m.mm, 0)
    ssc_forget(m.mm, 1)
    assert not ssc.congestion
    assert m.run(k, v.swapin_readahead_window(k, 2)) == (1, 3)
    assert m.run(k, v.before_add_to_swap(k, 1)) is False
