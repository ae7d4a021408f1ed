"""mm/memcontrol.c (2.6.30, plus 2.6.31's DROP): the charge and uncharge events of
docs/KERNEL.md section 7 and their net effect on res (usage) and memsw.

The sequences are played with the primitives in the order the kernel calls them.
"""

from __future__ import annotations

from errno import EBUSY, EINVAL

import pytest

from kernsim.model.memcontrol import (
    CHARGE_FAIL_MEMSW,
    CHARGE_FAIL_RES,
    CHARGE_OK,
    MemcgBug,
    MemcgState,
    __mem_cgroup_commit_charge,
    mem_cgroup_cancel_charge_swapin,
    mem_cgroup_resize_limit,
    mem_cgroup_uncharge_page,
    mem_cgroup_uncharge_swap,
    mem_cgroup_uncharge_swapcache,
    res_counter_charge,
    try_get_mem_cgroup_from_swapcache,
)
from kernsim.model.mm_types import PAGE_SIZE

A = 2  # css id of /A in the ``mc`` fixture (the root is 1)
PFN = 100


def usage(mc: MemcgState, memcg_id: int = A) -> tuple[int, int]:
    """(memory.usage_in_bytes, memory.memsw.usage_in_bytes) in pages."""
    g = mc.group(memcg_id)
    return g.res.usage // PAGE_SIZE, g.memsw.usage // PAGE_SIZE


def charged_page(mc: MemcgState, pfn: int = PFN, memcg_id: int = A) -> None:
    """mem_cgroup_newpage_charge(): try_charge + commit."""
    assert res_counter_charge(mc, memcg_id) == CHARGE_OK
    assert __mem_cgroup_commit_charge(mc, pfn, memcg_id) is True


def test_anon_fault_charges_res_and_memsw(mc: MemcgState) -> None:
    """K30 mem_cgroup_newpage_charge(): res +1 then memsw +1; commit sets PCG_USED and
    links the page on the memcg LRU."""
    charged_page(mc)
    assert usage(mc) == (1, 1)
    assert mc.page_cgroup[PFN].used and mc.page_cgroup[PFN].memcg == A
    assert PFN in mc.group(A).lru


def test_unmap_of_a_non_swapcache_page_uncharges_both(mc: MemcgState) -> None:
    """K30 page_remove_rmap() -> mem_cgroup_uncharge_page() (MAPPED): an unmapped, USED,
    non-swapcache anon page gives back res and memsw and leaves the memcg LRU."""
    charged_page(mc)
    assert mem_cgroup_uncharge_page(mc, PFN, False, False) is True
    assert usage(mc) == (0, 0)
    assert PFN not in mc.page_cgroup
    assert PFN not in mc.group(A).lru


def test_unmap_of_a_swapcache_page_keeps_the_charge(mc: MemcgState) -> None:
    """K30 __mem_cgroup_uncharge_common(): ``if (PageSwapCache(page)) return NULL;`` --
    the charge stays until the page leaves the swap cache."""
    charged_page(mc)
    assert mem_cgroup_uncharge_page(mc, PFN, True, False) is False
    assert usage(mc) == (1, 1)
    assert mc.page_cgroup[PFN].used


def test_uncharge_page_of_a_still_mapped_page_does_nothing(mc: MemcgState) -> None:
    """K30 mem_cgroup_uncharge_page(): ``if (page_mapped(page)) return;``"""
    charged_page(mc)
    assert mem_cgroup_uncharge_page(mc, PFN, False, True) is False
    assert usage(mc) == (1, 1)


def test_swapout_moves_the_memsw_charge_to_the_slot(mc: MemcgState) -> None:
    """K30 mem_cgroup_uncharge_swapcache() (SWAPOUT): res -1, memsw kept; the memcg's id is
    returned for swap_cgroup_record() and mem_cgroup_get() pins the group."""
    charged_page(mc)
    assert mem_cgroup_uncharge_swapcache(mc, PFN, False, True) == A
    assert usage(mc) == (0, 1)
    assert mc.group(A).swap_refs == 1
    assert PFN not in mc.page_cgroup


def test_swapout_of_a_mapped_page_keeps_everything(mc: MemcgState) -> None:
    """K30 __mem_cgroup_uncharge_common(SWAPOUT): an anon page still mapped keeps its
    charge and nothing is recorded."""
    charged_page(mc)
    assert mem_cgroup_uncharge_swapcache(mc, PFN, True, True) == 0
    assert usage(mc) == (1, 1)


def test_uncharge_swap_gives_back_memsw(mc: MemcgState) -> None:
    """K30 mem_cgroup_uncharge_swap(): when the slot is freed, memsw -1 and mem_cgroup_put()."""
    charged_page(mc)
    mem_cgroup_uncharge_swapcache(mc, PFN, False, True)
    mem_cgroup_uncharge_swap(mc, A)
    assert usage(mc) == (0, 0)
    assert mc.group(A).swap_refs == 0


def test_drop_uncharges_res_and_memsw(mc: MemcgState) -> None:
    """K31 swapcache_free() with no swap user left: ``swapout = false`` ->
    MEM_CGROUP_CHARGE_TYPE_DROP uncharges res and memsw and records nothing."""
    charged_page(mc)
    assert mem_cgroup_uncharge_swapcache(mc, PFN, False, False) == 0
    assert usage(mc) == (0, 0)
    assert mc.group(A).swap_refs == 0


def test_uncharge_swapcache_of_an_uncharged_page_does_nothing(mc: MemcgState) -> None:
    """K30 __mem_cgroup_uncharge_common(): ``!PageCgroupUsed(pc)`` -> NULL: a readahead page
    (never charged) leaving the cache records nothing."""
    assert mem_cgroup_uncharge_swapcache(mc, PFN, False, True) == 0
    assert usage(mc) == (0, 0)


# --- swap-in -----------------------------------------------------------------------


def test_swapin_target_prefers_the_used_owner(mc: MemcgState) -> None:
    """K30 try_get_mem_cgroup_from_swapcache(): PageCgroupUsed -> pc->mem_cgroup, whatever
    swap_cgroup says and whoever faults."""
    b = mc.create("/B")
    charged_page(mc, memcg_id=b)
    assert try_get_mem_cgroup_from_swapcache(mc, PFN, A, 1) == b


def test_swapin_target_uses_the_swap_record(mc: MemcgState) -> None:
    """K30 try_get_mem_cgroup_from_swapcache(): !USED -> mem_cgroup_lookup(swap_cgroup id)."""
    assert try_get_mem_cgroup_from_swapcache(mc, PFN, A, 1) == A


def test_swapin_target_falls_back_to_current(mc: MemcgState) -> None:
    """K30 mem_cgroup_try_charge_swapin(): no memcg from the swap cache -> charge_cur_mm;
    an id with no group (removed) counts as none."""
    assert try_get_mem_cgroup_from_swapcache(mc, PFN, 0, A) == A
    assert try_get_mem_cgroup_from_swapcache(mc, PFN, 99, A) == A


def test_swapin_of_a_swapped_out_page_nets_one_page(mc: MemcgState) -> None:
    """K30 memcg_test.txt 4.1: try_charge_swapin (res+1, memsw+1), commit, then
    swap_cgroup_record(ent, 0) + memsw -1 of the record -- net res 1 / memsw 1."""
    charged_page(mc)
    mem_cgroup_uncharge_swapcache(mc, PFN, False, True)  # swapped out: (0, 1)
    new = PFN + 1
    target = try_get_mem_cgroup_from_swapcache(mc, new, A, 1)
    assert res_counter_charge(mc, target) == CHARGE_OK
    assert usage(mc) == (1, 2)
    assert __mem_cgroup_commit_charge(mc, new, target)
    mem_cgroup_uncharge_swap(mc, A)  # the record's double count
    assert usage(mc) == (1, 1)


def test_commit_of_an_already_used_page_undoes_the_new_charge(mc: MemcgState) -> None:
    """K30 __mem_cgroup_commit_charge(): ``if (PageCgroupUsed(pc))`` uncharge res and memsw
    of the new charge and return (swap-in of a page still charged)."""
    charged_page(mc)
    assert res_counter_charge(mc, A) == CHARGE_OK
    assert usage(mc) == (2, 2)
    assert __mem_cgroup_commit_charge(mc, PFN, A) is False
    assert usage(mc) == (1, 1)
    assert mc.page_cgroup[PFN].used


def test_cancel_charge_undoes_try_charge(mc: MemcgState) -> None:
    """K30 mem_cgroup_cancel_charge_swapin(): res -1 and memsw -1 (do_swap_page out_nomap)."""
    assert res_counter_charge(mc, A) == CHARGE_OK
    mem_cgroup_cancel_charge_swapin(mc, A)
    assert usage(mc) == (0, 0)


# --- limits ------------------------------------------------------------------------


def test_res_limit_failure(mc: MemcgState) -> None:
    """K30 __mem_cgroup_try_charge(): res_counter_charge(&mem->res) fails at the limit
    (failcnt++), nothing charged."""
    assert mem_cgroup_resize_limit(mc, A, PAGE_SIZE, False) == 0
    charged_page(mc)
    assert res_counter_charge(mc, A) == CHARGE_FAIL_RES
    assert usage(mc) == (1, 1)
    assert mc.group(A).res.failcnt == 1
    assert mc.group(A).memsw.failcnt == 0


def test_memsw_limit_failure_undoes_res(mc: MemcgState) -> None:
    """K30 __mem_cgroup_try_charge(): res charged, memsw fails -> res_counter_uncharge(res)
    and noswap = true; memsw's failcnt counts it."""
    assert mem_cgroup_resize_limit(mc, A, 2 * PAGE_SIZE, False) == 0
    assert mem_cgroup_resize_limit(mc, A, 2 * PAGE_SIZE, True) == 0
    charged_page(mc, PFN)
    charged_page(mc, PFN + 1)
    mem_cgroup_uncharge_swapcache(mc, PFN, False, True)  # swapped out: res 1, memsw 2
    assert res_counter_charge(mc, A) == CHARGE_FAIL_MEMSW
    assert usage(mc) == (1, 2)
    assert mc.group(A).res.failcnt == 0
    assert mc.group(A).memsw.failcnt == 1


def test_memsw_limit_below_limit_is_einval(mc: MemcgState) -> None:
    """K30 mem_cgroup_resize_limit() / _memsw_limit(): memsw.limit must stay >= limit."""
    assert mem_cgroup_resize_limit(mc, A, 4 * PAGE_SIZE, False) == 0
    assert mem_cgroup_resize_limit(mc, A, 2 * PAGE_SIZE, True) == -EINVAL
    assert mem_cgroup_resize_limit(mc, A, 4 * PAGE_SIZE, True) == 0
    assert mem_cgroup_resize_limit(mc, A, 8 * PAGE_SIZE, False) == -EINVAL
    g = mc.group(A)
    assert (g.res.limit, g.memsw.limit) == (4 * PAGE_SIZE, 4 * PAGE_SIZE)


def test_limit_below_usage_is_ebusy(mc: MemcgState) -> None:
    """K30 res_counter_set_limit(): ``if (cnt->usage <= limit)`` else -EBUSY, limit kept."""
    charged_page(mc, PFN)
    charged_page(mc, PFN + 1)
    before = mc.group(A).res.limit
    assert mem_cgroup_resize_limit(mc, A, PAGE_SIZE, False) == -EBUSY
    assert mc.group(A).res.limit == before
    assert mem_cgroup_resize_limit(mc, A, 2 * PAGE_SIZE, False) == 0


def test_limit_is_page_aligned_up(mc: MemcgState) -> None:
    """K30 mem_cgroup_write() -> res_counter_memparse_write_strategy(): ``*res =
    PAGE_ALIGN(*res)`` -- writing 5000 to memory.limit_in_bytes sets 8192."""
    assert mem_cgroup_resize_limit(mc, A, 5000, False) == 0
    assert mc.group(A).res.limit == 2 * PAGE_SIZE


def test_counters_never_go_negative(mc: MemcgState) -> None:
    """K30 res_counter_uncharge_locked(): ``WARN_ON(counter->usage < val)`` -- an uncharge
    below zero is a broken invariant; the model refuses it (MemcgBug) instead of clamping."""
    with pytest.raises(MemcgBug):
        mem_cgroup_uncharge_swap(mc, A)
    with pytest.raises(MemcgBug):
        mem_cgroup_cancel_charge_swapin(mc, A)
    assert usage(mc) == (0, 0)
