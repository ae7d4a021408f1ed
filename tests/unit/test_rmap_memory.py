"""mm/rmap.c and mm/memory.c: unmapping for reclaim, zapping, faults, and one full
swap-out + swap-in round trip through the code paths (K30 = 2.6.30.4)."""

from __future__ import annotations

import pytest

from kernsim.model.fork import mm_init
from kernsim.model.locks import pte_offset_map_lock
from kernsim.model.memory import PTE_PRESENT, PTE_SWAP, handle_mm_fault, zap_pte
from kernsim.model.mm import MmState
from kernsim.model.mm_types import PAGE_SIZE, SWAP_FAIL, SWAP_SUCCESS, Pte
from kernsim.model.mmap import exit_mmap
from kernsim.model.rmap import page_referenced, try_to_unmap
from kernsim.model.swapfile import reuse_swap_page_check, swap_duplicate
from tests.support.unitkit import (
    Machine,
    drain_all,
    make_machine,
    small_mm,
    swap_out,
    swapcache_page,
)

TASK = 1


def mapped_swapcache_page(mm: MmState, young: bool = False) -> tuple[int, int]:
    """A locked swap-cache page mapped by TASK at address 0 (what shrink_page_list() has
    after add_to_swap())."""
    mm_init(mm, TASK, 0)
    pfn, entry = swapcache_page(mm, locked=True)
    page = mm.pages[pfn]
    page.mapcount = 1
    page.anon_vma, page.index = TASK, 0
    mm.mms[TASK].ptes[0] = Pte(True, pfn, young=young, dirty=True)
    return pfn, entry


def test_try_to_unmap_one_makes_a_swap_pte(mm30: MmState) -> None:
    """K30 try_to_unmap() (anon, PageSwapCache): swap_duplicate(entry) (+1), the pte
    becomes a swap pte, the pte's dirty bit moves to the page, page_remove_rmap() and
    page_cache_release() of the pte's reference."""
    pfn, entry = mapped_swapcache_page(mm30)
    refs = mm30.pages[pfn].count
    mm30.pages[pfn].dirty = False
    assert try_to_unmap(mm30, pfn) == SWAP_SUCCESS
    page = mm30.pages[pfn]
    assert mm30.swap.swap_map[entry] == 2
    assert mm30.mms[TASK].ptes[0] == Pte(False, entry)
    assert page.mapcount == 0 and page.anon_vma == TASK  # left set, as in the kernel
    assert page.count == refs - 1
    assert page.dirty


def test_try_to_unmap_one_fails_on_a_young_pte(mm30: MmState) -> None:
    """K30 try_to_unmap(): ``ptep_clear_flush_young_notify()`` -> SWAP_FAIL (activate),
    nothing else changes."""
    pfn, entry = mapped_swapcache_page(mm30, young=True)
    assert try_to_unmap(mm30, pfn) == SWAP_FAIL
    assert mm30.mms[TASK].ptes[0].present
    assert mm30.swap.swap_map[entry] == 1
    assert mm30.pages[pfn].mapcount == 1


def test_try_to_unmap_of_an_unmapped_page(mm30: MmState) -> None:
    """K30 try_to_unmap(): try_to_unmap_anon() finds no anon_vma (SWAP_AGAIN), then
    ``if (ret != SWAP_MLOCK && !page_mapped(page)) ret = SWAP_SUCCESS``; no swap reference."""
    pfn, entry = swapcache_page(mm30, locked=True)
    assert try_to_unmap(mm30, pfn) == SWAP_SUCCESS
    assert mm30.swap.swap_map[entry] == 1


def test_page_referenced_clears_what_it_counts(mm30: MmState) -> None:
    """K30 page_referenced(): TestClearPageReferenced + ptep_clear_flush_young per pte."""
    pfn, _ = mapped_swapcache_page(mm30, young=True)
    mm30.pages[pfn].referenced = True
    assert page_referenced(mm30, pfn) == 2
    assert page_referenced(mm30, pfn) == 0


def test_zap_pte_of_a_present_pte(mm30: MmState) -> None:
    """K30 zap_pte_range(): ptep_get_and_clear; for an anon page the pte's dirty bit is
    dropped (set_page_dirty() is for file pages only); page_remove_rmap() (mapcount to
    0); the pte's reference moves to the mmu_gather."""
    pfn, _ = mapped_swapcache_page(mm30)
    refs = mm30.pages[pfn].count
    mm30.pages[pfn].dirty = False
    assert pte_offset_map_lock(mm30, TASK, 0, "cpu0") is True  # zap_pte_range()'s
    assert zap_pte(mm30, TASK, 0) == (PTE_PRESENT, pfn, True)
    assert 0 not in mm30.mms[TASK].ptes
    assert mm30.pages[pfn].mapcount == 0 and not mm30.pages[pfn].dirty
    assert mm30.pages[pfn].count == refs  # dropped later by tlb_finish_mmu


def test_zap_pte_of_a_swap_pte(mm30: MmState) -> None:
    """K30 zap_pte_range(): a swap pte is handed to free_swap_and_cache() by the caller;
    zap_pte itself does not touch swap_map."""
    pfn, entry = mapped_swapcache_page(mm30)
    try_to_unmap(mm30, pfn)
    assert pte_offset_map_lock(mm30, TASK, 0, "cpu0") is True  # zap_pte_range()'s
    assert zap_pte(mm30, TASK, 0) == (PTE_SWAP, entry, False)
    assert mm30.swap.swap_map[entry] == 2


@pytest.mark.parametrize("swap_has_cache", [False, True])
def test_reuse_swap_page(swap_has_cache: bool) -> None:
    """K30/K31 reuse_swap_page(): ``page_mapcount + page_swapcount == 1`` -> reuse, and
    delete from the swap cache unless under writeback (True; False: reuse, keep the
    swap); another swap reference (a forked child) -> no reuse (None: copy on write)."""
    mm = small_mm(swap_has_cache=swap_has_cache)
    pfn, entry = swapcache_page(mm, locked=True)
    swap_duplicate(mm, entry)  # the faulting pte's reference
    assert reuse_swap_page_check(mm, pfn) is True
    mm.pages[pfn].writeback = True
    assert reuse_swap_page_check(mm, pfn) is False
    mm.pages[pfn].writeback = False
    swap_duplicate(mm, entry)  # a second user of the slot (a forked child)
    assert reuse_swap_page_check(mm, pfn) is None
    mm.pages[pfn].swapcache = False  # (not in the swap cache: count = page_mapcount())
    mm.pages[pfn].mapcount = 1
    assert reuse_swap_page_check(mm, pfn) is False
    mm.pages[pfn].mapcount = 2
    assert reuse_swap_page_check(mm, pfn) is None


# --- code paths ---------------------------------------------------------------------


def usage(m: Machine) -> tuple[int, int]:
    g = m.memcg.group(m.memcg_id)
    return g.res.usage, g.memsw.usage


def test_anon_fault_and_exit_charge_and_uncharge() -> None:
    """K30 do_anonymous_page() -> mem_cgroup_newpage_charge (res+1, memsw+1); exit_mmap()
    -> zap -> page_remove_rmap -> mem_cgroup_uncharge_page (both -1) and the page freed."""
    m = make_machine()
    a = m.task()
    assert m.run(a, handle_mm_fault(a, a.task, 0, True)) == 0
    assert usage(m) == (PAGE_SIZE, PAGE_SIZE)
    pfn = m.pte(a, 0).val
    m.run(a, exit_mmap(a, a.task))
    assert usage(m) == (0, 0)
    m.run(a, drain_all(a))  # the lru_add pagevec held the last reference
    assert pfn not in m.mm.pages


@pytest.mark.parametrize("variant", ["none", "upstream"])
def test_swap_out_and_in_round_trip(variant: str) -> None:
    """K30 (and K31 for ``upstream``) swap-out + swap-in of one anon page of /A:

    - shrink_page_list(): add_to_swap, try_to_unmap (swap_duplicate), pageout (async
      write: keep), then after end_swap_bio_write __remove_mapping ->
      mem_cgroup_uncharge_swapcache (SWAPOUT: res -1, memsw kept, swap_cgroup record)
      and swap_free of the cache's reference: usage 0, memsw 1 page, record set.
    - do_swap_page(write): readahead read, lock_page (waits for the read), try_charge
      to the recorded memcg, reuse_swap_page() -> delete_from_swap_cache, map, commit
      (the record is not reachable any more: the page left the cache), swap_free ->
      slot freed -> mem_cgroup_uncharge_swap: usage 1 page, memsw 1 page, no record.
    """
    m = make_machine(variant)
    a = m.task()
    m.run(a, handle_mm_fault(a, a.task, 0, True))
    pfn = m.pte(a, 0).val
    total = m.mm.swap.nr_swap_pages

    swap_out(m, pfn)
    pte = m.pte(a, 0)
    assert not pte.present
    entry = pte.val
    assert m.world.engine.results.get("keep") == 1  # under writeback on the way
    assert m.world.engine.results.get("freed") == 1
    assert usage(m) == (0, PAGE_SIZE)
    assert m.mm.swap.swap_cgroup[entry] == m.memcg_id
    assert m.mm.swap.swap_map[entry] == 1  # A's pte only
    assert m.mm.swap.nr_swap_pages == total - 1
    assert m.memcg.group(m.memcg_id).swap_refs == 1
    assert entry not in m.mm.swapper_space

    assert m.run(a, handle_mm_fault(a, a.task, 0, True)) == 0
    pte = m.pte(a, 0)
    assert pte.present
    new = pte.val
    page = m.mm.pages[new]
    assert not page.swapcache and not page.locked and page.uptodate
    assert usage(m) == (PAGE_SIZE, PAGE_SIZE)
    assert m.mm.swap.swap_cgroup[entry] == 0
    assert m.mm.swap.swap_map[entry] == 0
    assert m.mm.swap.nr_swap_pages == total
    assert m.memcg.group(m.memcg_id).swap_refs == 0
    assert m.memcg.page_cgroup[new].used
    m.run(a, drain_all(a))
    assert page.count == 1  # the pte's reference only
