"""mm/swapfile.c: swap_map counting in the 2.6.30 and 2.6.31 encodings, the readahead
window, vm_swap_full() and free_swap_and_cache()'s swap_lock section.

Each test names the kernel rule it checks (K30 = 2.6.30.4, K31 = 2.6.31.3).
"""

from __future__ import annotations

from errno import EEXIST, ENOENT

import pytest

from kernsim.model.locks import spin_lock_swap_lock, spin_unlock_swap_lock
from kernsim.model.memory import handle_mm_fault
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import (
    PAGE_SIZE,
    SWAP_HAS_CACHE,
    SWAP_MAP_MAX,
    SWAP_MAP_MAX_31,
)
from kernsim.model.swapfile import (
    SwapEntryFreed,
    free_swap_and_cache,
    get_swap_page,
    lookup_swap_cgroup,
    page_swapcount,
    swap_cgroup_record,
    swap_duplicate,
    swap_entry_free_locked,
    swap_free,
    swapcache_free,
    swapcache_prepare,
    valid_swaphandles,
    vm_swap_full,
)
from tests.support.unitkit import Machine, make_machine, small_mm, swap_out, swapcache_page


def _entry_free_locked(mm: MmState, entry: int) -> SwapEntryFreed:
    """free_swap_and_cache()'s swap_entry_free(), inside a swap_lock section of its own."""
    assert spin_lock_swap_lock(mm, "cpu0") is True
    freed = swap_entry_free_locked(mm, entry)
    spin_unlock_swap_lock(mm, "cpu0")
    mm.woken.clear()
    return freed


# --- 2.6.30: swap_map = references + 1 for the swap cache ------------------------


def test_get_swap_page_sets_the_cache_reference(mm30: MmState) -> None:
    """K30 scan_swap_map(): the new slot's swap_map is 1 (the swap cache's reference),
    nr_swap_pages drops by one, and slot 0 (the swap header) is never handed out."""
    free = mm30.swap.nr_swap_pages
    entry = get_swap_page(mm30)
    assert entry >= 1
    assert mm30.swap.swap_map[entry] == 1
    assert mm30.swap.nr_swap_pages == free - 1
    assert mm30.swap.swap_map[0] == 0


def test_get_swap_page_returns_0_when_swap_is_full() -> None:
    """K30 get_swap_page(): ``if (nr_swap_pages <= 0) goto noswap`` -> entry 0."""
    mm = small_mm(swap_pages=2)
    entries = {get_swap_page(mm), get_swap_page(mm)}
    assert entries == {1, 2}
    assert get_swap_page(mm) == 0
    assert mm.swap.nr_swap_pages == 0


def test_swap_duplicate_adds_a_reference(mm30: MmState) -> None:
    """K30 swap_duplicate(): an in-use slot gets +1 and the call returns 1."""
    entry = get_swap_page(mm30)
    assert swap_duplicate(mm30, entry) == 1
    assert mm30.swap.swap_map[entry] == 2


def test_swap_duplicate_on_a_free_slot_returns_0(mm30: MmState) -> None:
    """K30 swap_duplicate(): ``if (... p->swap_map[offset])`` -- a free slot stays 0 and
    the result is 0 (read_swap_cache_async() then gives up on the entry)."""
    assert swap_duplicate(mm30, 5) == 0
    assert mm30.swap.swap_map[5] == 0


def test_swap_free_to_zero_frees_the_slot_and_returns_the_owner(mm30: MmState) -> None:
    """K30 swap_entry_free(): at 0 nr_swap_pages++ and mem_cgroup_uncharge_swap(ent),
    which clears swap_cgroup[ent] and hands its id to the memsw uncharge."""
    entry = get_swap_page(mm30)
    swap_duplicate(mm30, entry)  # one pte reference besides the cache's
    assert swap_cgroup_record(mm30, entry, 7) == 0
    free = mm30.swap.nr_swap_pages
    assert swap_free(mm30, entry) == (1, 0)  # not yet: no uncharge, record kept
    assert lookup_swap_cgroup(mm30, entry) == 7
    assert mm30.swap.nr_swap_pages == free
    assert swap_free(mm30, entry) == (0, 7)
    assert mm30.swap.swap_map[entry] == 0
    assert mm30.swap.nr_swap_pages == free + 1
    assert lookup_swap_cgroup(mm30, entry) == 0


def test_swap_free_of_a_free_slot_is_a_bug(mm30: MmState) -> None:
    """K30 swap_info_get(): swap_free() of an unused offset is "Unused swap offset"
    (the model refuses it instead of printing)."""
    with pytest.raises(KernelBug):
        swap_free(mm30, 3)


def test_page_swapcount_is_map_minus_one(mm30: MmState) -> None:
    """K30 page_swapcount(): ``swap_map[offset] - 1`` ("Subtract the 1 for the swap cache")."""
    pfn, entry = swapcache_page(mm30)
    assert page_swapcount(mm30, pfn) == 0
    swap_duplicate(mm30, entry)
    swap_duplicate(mm30, entry)
    assert page_swapcount(mm30, pfn) == 2


def test_swap_map_saturates_at_swap_map_max(mm30: MmState) -> None:
    """K30 swap_duplicate(): below SWAP_MAP_MAX-1 increment, else pin at SWAP_MAP_MAX
    (still returning 1); swap_entry_free() never decrements a pinned count."""
    entry = get_swap_page(mm30)
    mm30.swap.swap_map[entry] = SWAP_MAP_MAX - 2
    assert swap_duplicate(mm30, entry) == 1
    assert mm30.swap.swap_map[entry] == SWAP_MAP_MAX - 1
    assert swap_duplicate(mm30, entry) == 1
    assert mm30.swap.swap_map[entry] == SWAP_MAP_MAX
    assert swap_duplicate(mm30, entry) == 1
    assert mm30.swap.swap_map[entry] == SWAP_MAP_MAX
    free = mm30.swap.nr_swap_pages
    assert swap_free(mm30, entry) == (SWAP_MAP_MAX, 0)
    assert mm30.swap.swap_map[entry] == SWAP_MAP_MAX
    assert mm30.swap.nr_swap_pages == free


def _fill(mm: MmState, used: range | list[int]) -> None:
    for off in used:
        mm.swap.swap_map[off] = 1


@pytest.mark.parametrize(
    ("used", "entry", "window"),
    [
        # Window of slot 10 with page_cluster 3: the aligned block 8..15.
        (range(1, 17), 10, (8, 8)),
        # A free slot stops the count on each side: 12 and 7 are free.
        ([8, 9, 10, 11, 13, 14], 10, (8, 4)),
        ([9, 10, 11], 10, (9, 3)),
        # Block 0..7: slot 0 is the swap header, the window starts at 1.
        (range(1, 8), 3, (1, 7)),
        # Nothing in use next to the target: "if only 1, say 0".
        ([10], 10, (0, 0)),
        ([10, 16], 10, (0, 0)),  # 16 is in the next block
    ],
)
def test_valid_swaphandles_window(
    used: range | list[int], entry: int, window: tuple[int, int]
) -> None:
    """K30 valid_swaphandles(): the (1 << page_cluster)-aligned block around the target,
    counting contiguous in-use slots up and down from it, stopping at a free slot,
    never including slot 0; no readahead when only the target is in use."""
    mm = small_mm(page_cluster=3)
    _fill(mm, used)
    assert valid_swaphandles(mm, entry) == window


def test_valid_swaphandles_stops_at_the_end_of_the_map() -> None:
    """K30 valid_swaphandles(): ``if (end > si->max) end = si->max``."""
    mm = small_mm(swap_pages=10, page_cluster=3)  # slots 1..10
    _fill(mm, range(1, 11))
    assert valid_swaphandles(mm, 9) == (8, 3)


def test_page_cluster_0_disables_readahead() -> None:
    """K30 valid_swaphandles(): ``if (!our_page_cluster) return 0`` -- no readahead."""
    mm = small_mm(page_cluster=0)
    _fill(mm, range(1, 17))
    assert valid_swaphandles(mm, 10) == (0, 0)


def test_vm_swap_full_above_half() -> None:
    """K30 swap.h: vm_swap_full() is ``nr_swap_pages*2 < total_swap_pages``: exactly half
    used is not full, one more slot is."""
    mm = small_mm(swap_pages=8)
    for _ in range(4):
        get_swap_page(mm)
    assert not vm_swap_full(mm)
    get_swap_page(mm)
    assert vm_swap_full(mm)


# --- 2.6.31: swap_map = count | SWAP_HAS_CACHE -------------------------------------


def test_get_swap_page_sets_swap_has_cache(mm31: MmState) -> None:
    """K31 scan_swap_map(si, SWAP_CACHE): ``encode_swapmap(0, true)`` -- count 0, flag set."""
    entry = get_swap_page(mm31)
    assert mm31.swap.swap_map[entry] == SWAP_HAS_CACHE


def test_swap_duplicate_keeps_the_flag(mm31: MmState) -> None:
    """K31 __swap_duplicate(SWAP_MAP): ``count || has_cache`` -> count+1, flag kept."""
    entry = get_swap_page(mm31)
    assert swap_duplicate(mm31, entry) == 1
    assert mm31.swap.swap_map[entry] == SWAP_HAS_CACHE | 1


def test_swap_duplicate_saturates_at_the_2_6_31_max(mm31: MmState) -> None:
    """K31 __swap_duplicate(): count pins at SWAP_MAP_MAX (0x7ffe); the flag is kept."""
    entry = get_swap_page(mm31)
    mm31.swap.swap_map[entry] = SWAP_HAS_CACHE | (SWAP_MAP_MAX_31 - 1)
    swap_duplicate(mm31, entry)
    swap_duplicate(mm31, entry)
    assert mm31.swap.swap_map[entry] == SWAP_HAS_CACHE | SWAP_MAP_MAX_31


def test_swapcache_prepare_claims_the_flag(mm31: MmState) -> None:
    """K31 swapcache_prepare(): ``!has_cache && count`` -> set SWAP_HAS_CACHE, return 0;
    a second claim is -EEXIST (read_swap_cache_async() loops on it)."""
    entry = get_swap_page(mm31)
    swap_duplicate(mm31, entry)  # a pte reference ...
    swapcache_free(mm31, entry, 0)  # ... and the cache page gone: map = 1
    assert mm31.swap.swap_map[entry] == 1
    assert swapcache_prepare(mm31, entry) == 0
    assert mm31.swap.swap_map[entry] == SWAP_HAS_CACHE | 1
    assert swapcache_prepare(mm31, entry) == -EEXIST
    assert mm31.swap.swap_map[entry] == SWAP_HAS_CACHE | 1


def test_swapcache_prepare_on_a_cache_only_slot_is_eexist(mm31: MmState) -> None:
    """K31 __swap_duplicate(SWAP_CACHE): has_cache wins over !count -> -EEXIST."""
    entry = get_swap_page(mm31)
    assert swapcache_prepare(mm31, entry) == -EEXIST


def test_swapcache_prepare_on_a_free_slot_is_enoent(mm31: MmState) -> None:
    """K31 __swap_duplicate(SWAP_CACHE): no users -> -ENOENT, nothing set."""
    assert swapcache_prepare(mm31, 4) == -ENOENT
    assert mm31.swap.swap_map[4] == 0


def test_swap_free_to_count_0_uncharges_while_the_cache_pins_the_slot(mm31: MmState) -> None:
    """K31 swap_entry_free(SWAP_MAP) + "memcg: fix swap accounting":
    ``if (!swap_count(count)) mem_cgroup_uncharge_swap(ent)`` -- memsw goes at count 0
    although SWAP_HAS_CACHE keeps the slot allocated."""
    entry = get_swap_page(mm31)
    swap_duplicate(mm31, entry)
    swap_cgroup_record(mm31, entry, 3)
    free = mm31.swap.nr_swap_pages
    assert swap_free(mm31, entry) == (SWAP_HAS_CACHE, 3)
    assert mm31.swap.swap_map[entry] == SWAP_HAS_CACHE
    assert mm31.swap.nr_swap_pages == free  # still allocated
    assert lookup_swap_cgroup(mm31, entry) == 0


def test_swapcache_free_clears_the_flag_and_frees_at_0(mm31: MmState) -> None:
    """K31 swap_entry_free(SWAP_CACHE): clear SWAP_HAS_CACHE; the slot is freed when the
    whole value is 0.  No swap user is left: the page's uncharge is DROP, nothing is
    recorded."""
    entry = get_swap_page(mm31)
    free = mm31.swap.nr_swap_pages
    assert swapcache_free(mm31, entry, 3) == (0, 0, True)
    assert mm31.swap.swap_map[entry] == 0
    assert mm31.swap.nr_swap_pages == free + 1
    assert lookup_swap_cgroup(mm31, entry) == 0


def test_swapcache_free_keeps_a_used_slot_and_records_it(mm31: MmState) -> None:
    """K31 swapcache_free(): with a pte reference left the value is the count (swapout =
    true), the slot stays allocated and mem_cgroup_uncharge_swapcache()'s
    swap_cgroup_record() gives it the page's owner, in the same swap_lock section."""
    entry = get_swap_page(mm31)
    swap_duplicate(mm31, entry)
    free = mm31.swap.nr_swap_pages
    assert swapcache_free(mm31, entry, 3) == (1, 0, False)
    assert mm31.swap.nr_swap_pages == free
    assert lookup_swap_cgroup(mm31, entry) == 3


def test_swapcache_free_without_the_flag_is_a_bug(mm31: MmState) -> None:
    """K31 swap_entry_free(SWAP_CACHE): ``VM_BUG_ON(!has_cache)``."""
    entry = get_swap_page(mm31)
    swap_duplicate(mm31, entry)
    swapcache_free(mm31, entry, 0)
    with pytest.raises(KernelBug):
        swapcache_free(mm31, entry, 0)


def test_page_swapcount_is_the_count_in_2_6_31(mm31: MmState) -> None:
    """K31 page_swapcount(): ``swap_count(swap_map[offset])`` -- no "-1 for the cache"."""
    pfn, entry = swapcache_page(mm31)
    assert page_swapcount(mm31, pfn) == 0
    swap_duplicate(mm31, entry)
    assert page_swapcount(mm31, pfn) == 1


# --- free_swap_and_cache(): the swap_lock section -----------------------------------


def test_free_swap_and_cache_sees_cache_only_and_touches_no_page(mm30: MmState) -> None:
    """K30 free_swap_and_cache(): ``swap_entry_free() == 1`` means only the swap cache is
    left; swap_entry_free() itself takes no page reference and no page lock (the
    find_get_page() and trylock_page() that follow are steps of their own)."""
    pfn, entry = swapcache_page(mm30, locked=True)  # e.g. locked for read I/O
    swap_duplicate(mm30, entry)  # the pte being zapped
    refs = mm30.pages[pfn].count
    assert _entry_free_locked(mm30, entry) == (1, 0, True)
    assert mm30.pages[pfn].count == refs
    assert mm30.swapper_space[entry] == pfn
    assert mm30.pages[pfn].swapcache


def test_swap_entry_free_locked_needs_swap_lock(mm30: MmState) -> None:
    """swap_entry_free() runs inside free_swap_and_cache()'s swap_lock section: called
    without the lock, the model's state is broken (KernelBug), not silently changed."""
    _, entry = swapcache_page(mm30)
    with pytest.raises(KernelBug, match="without holding swap_lock"):
        swap_entry_free_locked(mm30, entry)
    assert mm30.swap.swap_map[entry] == 1


def test_free_swap_and_cache_leaves_a_shared_slot_alone(mm30: MmState) -> None:
    """K30 free_swap_and_cache(): only ``swap_entry_free() == 1`` looks up the page; with
    another reference left the cache page is neither referenced nor locked."""
    pfn, entry = swapcache_page(mm30)
    swap_duplicate(mm30, entry)
    swap_duplicate(mm30, entry)
    refs = mm30.pages[pfn].count
    assert _entry_free_locked(mm30, entry) == (2, 0, False)
    assert mm30.pages[pfn].count == refs
    assert not mm30.pages[pfn].locked


def test_free_swap_and_cache_of_the_last_pte_without_cache_frees_the_slot(mm30: MmState) -> None:
    """K30 swap_entry_free() reaching 0 inside free_swap_and_cache(): the slot is freed and
    mem_cgroup_uncharge_swap() gets the recorded owner."""
    entry = get_swap_page(mm30)  # stands for: cache page gone, one pte left
    swap_cgroup_record(mm30, entry, 2)
    assert _entry_free_locked(mm30, entry) == (0, 2, False)
    assert mm30.swap.swap_map[entry] == 0


def test_free_swap_and_cache_compares_with_swap_has_cache(mm31: MmState) -> None:
    """K31 free_swap_and_cache(): ``swap_entry_free(p, entry, SWAP_MAP) == SWAP_HAS_CACHE``
    -- cache only -> look up and trylock the page; the count reached 0, so memsw of the
    recorded owner is uncharged at the same time."""
    pfn, entry = swapcache_page(mm31)
    swap_duplicate(mm31, entry)
    swap_cgroup_record(mm31, entry, 2)
    assert _entry_free_locked(mm31, entry) == (SWAP_HAS_CACHE, 2, True)
    assert mm31.swapper_space[entry] == pfn


def test_free_swap_and_cache_2_6_31_ignores_a_value_of_1(mm31: MmState) -> None:
    """K31 free_swap_and_cache(): a value of 1 after the free is one pte reference (no
    SWAP_HAS_CACHE), not "cache only": no page is looked up."""
    pfn, entry = swapcache_page(mm31)
    swap_duplicate(mm31, entry)
    swap_duplicate(mm31, entry)
    swapcache_free(mm31, entry, 0)  # flag cleared, count 2
    # The page is left in swapper_space on purpose: a 2.6.30-style ``== 1`` test
    # would find it; 2.6.31's ``== SWAP_HAS_CACHE`` must not look.
    assert _entry_free_locked(mm31, entry) == (1, 0, False)
    assert not mm31.pages[pfn].locked


# --- free_swap_and_cache(): the code path -----------------------------------------------


def _swapped_out(variant: str) -> tuple[Machine, int]:
    """A page of /A swapped out: res 0, memsw 1 page, swap_cgroup record, A's swap pte."""
    m = make_machine(variant)
    a = m.task()
    m.run(a, handle_mm_fault(a, a.task, 0, True))
    swap_out(m, m.pte(a, 0).val)
    return m, m.pte(a, 0).val


def _readahead_page(m: Machine, entry: int, locked: bool) -> int:
    """read_swap_cache_async()'s page for ``entry``: the slot claimed for the cache
    (swap_duplicate, or K31 swapcache_prepare), added locked; unlocked once "read"."""
    if m.mm.config.swap_has_cache:
        assert swapcache_prepare(m.mm, entry) == 0
    else:
        assert swap_duplicate(m.mm, entry) == 1
    pfn, _ = swapcache_page(m.mm, entry, locked=locked)
    return pfn


@pytest.mark.parametrize(("variant", "memsw_pages"), [("none", 1), ("upstream", 0)])
def test_type_1_zap_during_read(variant: str, memsw_pages: int) -> None:
    """T1: free_swap_and_cache() while the readahead page is locked for I/O.  K30: the
    trylock fails, swap_map stays 1 (cache only) and memsw stays charged through
    swap_cgroup with res 0 -- the leak.  K31 ("memcg: fix swap accounting"): the count
    reaches 0, so mem_cgroup_uncharge_swap() drops memsw at once."""
    m, entry = _swapped_out(variant)
    pfn = _readahead_page(m, entry, locked=True)
    k = m.kthread()
    m.run(k, free_swap_and_cache(k, entry))
    g = m.memcg.group(m.memcg_id)
    assert m.mm.pages[pfn].swapcache
    assert m.mm.swap.swap_map[entry] == (SWAP_HAS_CACHE if variant == "upstream" else 1)
    assert (g.res.usage, g.memsw.usage) == (0, memsw_pages * PAGE_SIZE)
    assert (m.mm.swap.swap_cgroup[entry] != 0) is (variant == "none")


@pytest.mark.parametrize("variant", ["none", "upstream"])
def test_free_swap_and_cache_frees_an_unlocked_cache_page(variant: str) -> None:
    """K30 free_swap_and_cache(): trylock succeeds; PageSwapCache, !PageWriteback and
    !page_mapped -> delete_from_swap_cache() (swap_free: the slot is freed and memsw
    uncharged), unlock_page, page_cache_release."""
    m, entry = _swapped_out(variant)
    pfn = _readahead_page(m, entry, locked=False)
    refs = m.mm.pages[pfn].count
    free = m.mm.swap.nr_swap_pages
    k = m.kthread()
    m.run(k, free_swap_and_cache(k, entry))
    page = m.mm.pages[pfn]
    assert not page.swapcache and not page.locked and page.dirty
    assert page.count == refs - 1
    assert m.mm.swap.swap_map[entry] == 0
    assert m.mm.swap.nr_swap_pages == free + 1
    g = m.memcg.group(m.memcg_id)
    assert (g.res.usage, g.memsw.usage) == (0, 0)
