"""fork(): copy_one_pte()'s swap_duplicate() and page sharing, rmap over two mms,
do_wp_page()'s reuse or copy, reuse_swap_page()'s shared case, and exits of one of two
mms; each scripted and checked against the 2.6.30 (and 2.6.31) end state."""

from __future__ import annotations

import pytest

from kernsim.model.filemap import trylock_page
from kernsim.model.fork import anon_vma_link, copy_one_pte, dup_mm
from kernsim.model.locks import SWAP_LOCK, pte_offset_map_lock, ptl_id, spin_lock_swap_lock
from kernsim.model.memory import PTE_PRESENT, PTE_SWAP, do_swap_page, handle_mm_fault
from kernsim.model.mm_types import PAGE_SIZE, SWAP_FAIL, SWAP_HAS_CACHE, SWAP_SUCCESS
from kernsim.model.port import WouldBlock
from kernsim.model.rmap import page_referenced, try_to_unmap
from kernsim.model.swap_state import add_to_swap_cache, read_swap_cache_async
from kernsim.model.swapfile import get_swap_page, reuse_swap_page_check
from kernsim.sim.cpu import SimCpu
from kernsim.sim.scripting import Run, Script, call

VARIANTS = ["none", "v4", "v5", "v5-as-intended", "v6", "v7", "type2-fix", "upstream"]


def _usage(s: Script) -> tuple[int, int]:
    g = s.memcg.group(s.memcg_id)
    return g.res.usage // PAGE_SIZE, g.memsw.usage // PAGE_SIZE


def _forked(variant: str = "none") -> tuple[Script, SimCpu, SimCpu, int, int, int]:
    """A with page P present at 0 and page Q swapped out at 1 (slot e), then fork -> C."""
    s = Script.create(variant)
    a = s.task("A")
    p = s.fault(a, 0)
    q = s.fault(a, 1)
    s.swap_out([q])
    e = s.pte(a, 1).val
    assert not s.pte(a, 1).present and q not in s.mm.pages
    c = s.fork(a, "C")
    return s, a, c, p, q, e


def _count(s: Script, e: int) -> int:
    """swap_map[e]'s pte references (2.6.31: without SWAP_HAS_CACHE)."""
    value = s.mm.swap.swap_map[e]
    return value & ~SWAP_HAS_CACHE if s.mm.config.swap_has_cache else value


def test_fork_duplicates_swap_ptes_and_shares_present_pages_write_protected() -> None:
    s, a, c, p, _, e = _forked()
    assert s.mm.swap.swap_map[e] == 2  # A's swap pte and C's (no cache page)
    assert s.pte(c, 1).val == e and not s.pte(c, 1).present
    page = s.mm.pages[p]
    assert page.mapcount == 2 and page.count == 2  # get_page(): one reference per pte
    pa, pc = s.pte(a, 0), s.pte(c, 0)
    assert pa.present and pc.present and pa.val == pc.val == p
    assert not pa.write and not pc.write  # COW: both write-protected
    assert pa.young and not pc.young  # pte_mkold() for the child only
    assert s.mm.anon_vmas[a.task] == [a.task, c.task]  # anon_vma_link(): at the tail
    assert _usage(s) == (1, 2)  # no new charge: P charged once, Q's memsw on the slot
    steps = [(e_.prim, e_.result) for e_ in s.world.engine.trace if e_.prim == "copy_one_pte"]
    assert steps == [("copy_one_pte", (PTE_PRESENT, p)), ("copy_one_pte", (PTE_SWAP, e))]


@pytest.mark.parametrize("variant", VARIANTS)
def test_swap_counts_above_one_across_mms_are_live(variant: str) -> None:
    """The regression of this feature: a slot referenced by two mms' swap ptes.  The first
    exit's free_swap_and_cache() sees more than the cache left and does nothing more; the
    second frees the slot and its memsw.  Every variant, both swap_map encodings."""
    s, a, c, _, _, e = _forked(variant)
    assert _count(s, e) == 2
    s.run(a, s.exit(a))
    steps = [(ev.prim, ev.result) for ev in s.world.engine.trace if ev.cpu == "A"]
    freed = [r for prim, r in steps if prim == "swap_entry_free_locked"]
    assert len(freed) == 1 and _count(s, e) == 1
    # 2.6.30: a value of 1 reads as "only the cache" too, but find_get_page() finds no
    # page; 2.6.31's encoding tells them apart.  Either way nothing is trylocked.
    assert freed[0].only_cache is not s.mm.config.swap_has_cache
    assert ("trylock_page", True) not in steps and ("trylock_page", False) not in steps
    assert _count(s, e) == 1 and s.mm.swap.swap_cgroup[e] == s.memcg_id
    s.run(c, s.exit(c))
    assert s.mm.swap.swap_map[e] == 0 and s.mm.swap.swap_cgroup[e] == 0
    s.world.run_to_idle()
    assert s.check() == []
    assert _usage(s) == (0, 0)


def test_a_shared_page_is_charged_once_and_uncharged_with_its_last_mapping() -> None:
    s, a, c, p, _, _ = _forked()
    assert _usage(s) == (1, 2)
    s.run(a, s.exit(a))  # zap: mapcount 2 -> 1, no uncharge
    assert s.mm.pages[p].mapcount == 1 and _usage(s) == (1, 2)
    assert s.memcg.page_cgroup[p].used
    s.run(c, s.exit(c))  # the last mapping: mem_cgroup_uncharge_page()
    assert p not in s.memcg.page_cgroup and _usage(s) == (0, 0)
    assert s.check() == []


def test_write_to_a_shared_page_copies_it_and_charges_the_copy() -> None:
    """do_wp_page(): reuse_swap_page() sees mapcount 2 -> copy: a new page, charged to the
    writer's memcg; the old page loses the writer's mapping but keeps its charge."""
    s, a, c, p, _, _ = _forked()
    s.fault(c, 0)
    new = s.pte(c, 0).val
    assert new != p and s.pte(c, 0).write and s.pte(c, 0).dirty
    assert s.mm.pages[p].mapcount == 1 and not s.pte(a, 0).write
    trace = [(ev.prim, ev.result) for ev in s.world.engine.trace if ev.cpu == "C"]
    assert ("reuse_swap_page_check", None) in trace
    assert ("do_wp_page_map", False) in trace  # A still maps the old page
    assert s.memcg.page_cgroup[new].used and s.memcg.page_cgroup[p].used
    assert _usage(s)[0] == 2
    # A is now the old page's only user: its write reuses it in place.
    s.fault(a, 0)
    assert s.pte(a, 0).val == p and s.pte(a, 0).write
    assert ("reuse_swap_page_check", False) in [
        (ev.prim, ev.result) for ev in s.world.engine.trace if ev.cpu == "A"
    ]
    for t in (a, c):
        s.run(t, s.exit(t))
    assert s.check() == [] and _usage(s) == (0, 0)


def test_do_swap_page_of_a_shared_slot_maps_write_protected_then_copies() -> None:
    """do_swap_page() on a slot C's swap pte also references: reuse_swap_page() counts
    mapcount 0 + swapcount 2 -> no reuse, the pte is mapped clean and write-protected,
    then do_wp_page() copies (mapcount 1 + swapcount 1).  The swap-cache page stays,
    unmapped and charged, for C's swap pte: swap_map 2 (C's pte + the cache)."""
    s, a, c, _, _, e = _forked()
    s.fault(a, 1)
    cache = s.mm.swapper_space[e]
    mine = s.pte(a, 1)
    assert mine.present and mine.val != cache and mine.write
    page = s.mm.pages[cache]
    assert page.swapcache and page.mapcount == 0 and s.memcg.page_cgroup[cache].used
    assert s.mm.swap.swap_map[e] == 2
    checks = [ev.result for ev in s.world.engine.trace if ev.prim == "reuse_swap_page_check"]
    assert checks[-2:] == [None, None]
    # C faults the cache page in: now it is the slot's only user -> reuse, swap freed.
    s.fault(c, 1)
    assert s.pte(c, 1).val == cache and s.pte(c, 1).write
    assert s.mm.swap.swap_map[e] == 0 and not s.mm.pages[cache].swapcache
    for t in (a, c):
        s.run(t, s.exit(t))
    assert s.check() == [] and _usage(s) == (0, 0)


def test_try_to_unmap_and_page_referenced_visit_every_mm_of_the_anon_vma() -> None:
    s, a, c, p, _, _ = _forked()
    mm = s.mm
    mm.mms[a.task].ptes[0].young = mm.mms[c.task].ptes[0].young = True
    mm.pages[p].referenced = False
    assert page_referenced(mm, p) == 2
    assert not mm.mms[a.task].ptes[0].young and not mm.mms[c.task].ptes[0].young
    # Swap it out from under both mms: one try_to_unmap() unmaps both ptes.
    k = s.kthread()
    s.run(k, s.reclaim(k, [p], drain=True))
    assert s.pte(a, 0).val == s.pte(c, 0).val and not s.pte(a, 0).present
    e = s.pte(a, 0).val
    assert ("try_to_unmap", SWAP_SUCCESS) in [(ev.prim, ev.result) for ev in s.world.engine.trace]
    assert mm.swap.swap_map[e] == 3  # two swap ptes + the cache
    for t in (a, c):
        s.run(t, s.exit(t))
    s.world.run_to_idle()
    assert s.check() == []


def test_try_to_unmap_stops_at_a_young_pte_and_keeps_the_others_unmapped() -> None:
    """try_to_unmap_anon() breaks at SWAP_FAIL: the parent's pte (first in the anon_vma)
    is already a swap pte, the child's young one stays mapped."""
    s, a, c, p, _, _ = _forked()
    mm = s.mm
    assert trylock_page(mm, p)
    e = get_swap_page(mm)
    assert add_to_swap_cache(mm, p, e, False) == 0
    mm.mms[a.task].ptes[0].young = False
    mm.mms[c.task].ptes[0].young = True
    assert try_to_unmap(mm, p) == SWAP_FAIL
    assert not s.pte(a, 0).present and s.pte(a, 0).val == e
    assert s.pte(c, 0).present and not s.pte(c, 0).young
    assert mm.pages[p].mapcount == 1 and mm.swap.swap_map[e] == 2


def test_the_rmap_walk_waits_for_the_pte_lock_of_every_mapping() -> None:
    s, _, c, p, _, _ = _forked()
    mm = s.mm
    assert pte_offset_map_lock(mm, c.task, 0, "x") is True  # the child's pte page only
    assert try_to_unmap(mm, p) == WouldBlock(ptl_id(c.task, 0))
    assert page_referenced(mm, p) == WouldBlock(ptl_id(c.task, 0))


def test_copy_one_pte_of_a_swap_pte_waits_for_swap_lock() -> None:
    s = Script.create()
    a = s.task("A")
    q = s.fault(a, 0)
    s.swap_out([q])
    e = s.pte(a, 0).val
    mm = s.mm
    dup_mm(mm, 99, a.task)
    anon_vma_link(mm, 99)
    assert pte_offset_map_lock(mm, 99, 0, "fork") is True
    assert pte_offset_map_lock(mm, a.task, 0, "fork") is True
    assert spin_lock_swap_lock(mm, "zap") is True
    assert copy_one_pte(mm, 99, a.task, 0) == WouldBlock((SWAP_LOCK, 0))
    assert mm.swap.swap_map[e] == 1 and 0 not in mm.mms[99].ptes


def test_reuse_swap_page_check_answers_the_kernels_count() -> None:
    """mapcount 0 + swapcount 2 (two swap ptes): None; under writeback with count 1: False
    (reuse, keep the swap); count 1: True (reuse, free the swap)."""
    s, _, c, _, _, e = _forked()
    b = s.kthread("B")
    cache = s.run(b, read_swap_cache_async(b, e))
    mm = s.mm
    assert reuse_swap_page_check(mm, cache) is None
    s.run(c, s.exit(c))
    assert reuse_swap_page_check(mm, cache) is True
    mm.pages[cache].writeback = True
    assert reuse_swap_page_check(mm, cache) is False


def test_exit_during_the_parents_swap_in_of_a_shared_slot() -> None:
    """C exits while A's do_swap_page() of their shared slot holds the page lock: the
    zap's swap_entry_free() leaves the cache only (A's swap_free() already ran) and its
    trylock fails; A's do_wp_page() then reuses the page and frees the swap itself."""
    s, a, c, _, _, e = _forked()
    s.race(
        [
            Run("A", until=call("lock_page")),
            Run("irq1"),  # end_swap_bio_read(): the read is done, the page unlocked
            Run("A", through=call("swap_free", a0=e)),
            Run("C"),
            Run("A"),
        ],
        [(a, do_swap_page(a, a.task, 1, e, True)), (c, s.exit(c))],
    )
    steps = [(ev.cpu, ev.prim, ev.result) for ev in s.world.engine.trace]
    assert ("C", "trylock_page", False) in steps
    assert ("A", "reuse_swap_page_check", True) in steps  # do_wp_page: mapcount 1 + 0
    assert s.mm.swap.swap_map[e] == 0 and s.pte(a, 1).write
    s.run(a, s.exit(a))
    assert s.check() == [] and _usage(s) == (0, 0)


def test_handle_mm_fault_on_a_write_protected_pte_goes_to_do_wp_page() -> None:
    s, a, _, _, _, _ = _forked()
    s.run(a, handle_mm_fault(a, a.task, 0, True))
    prims = [ev.prim for ev in s.world.engine.trace if ev.cpu == "A"][-8:]
    assert "pte_same_wrprotect" in prims and "do_wp_page_map" in prims


def _cow_type_2(variant: str) -> Script:
    """The fork race search found (docs/fork.md, fork-cow-type-2).  A and C share page P
    (fork, write-protected).  A writes P: do_wp_page() sees mapcount 2 and decides to
    copy (page_cache_get(), the pte lock dropped while it allocates and charges).
    Reclaim isolates P, locks it, page_referenced() counts A's young pte.  C exits: P's
    mapcount 2 -> 1.  A maps its copy: page_remove_rmap() of P was the last mapping, P
    is not in the swap cache, so mem_cgroup_uncharge_page() uncharges it.  Reclaim:
    P no longer mapped (no activation), add_to_swap(), dirty and referenced ->
    keep_locked: P is a swap-cache page charged to nobody."""
    s = Script.create(variant)
    a = s.task("A")
    p = s.fault(a, 0)
    c = s.fork(a, "C")
    k = s.kthread()
    s.race(
        [
            Run("A", through=call("pte_unmap_unlock")),  # do_wp_page(): copy, unlocked
            Run("kswapd", through=call("page_referenced", a0=p)),
            Run("C"),  # exit: zap_pte_range() drops C's mapping of P
            Run("A"),  # the copy's page_remove_rmap() uncharges P
            Run("kswapd"),
        ],
        [(a, handle_mm_fault(a, a.task, 0, True)), (c, s.exit(c)), (k, s.reclaim(k, [p]))],
    )
    s.run(a, s.exit(a))
    s.world.run_to_idle()
    return s


def test_cow_type_2_leaves_an_uncharged_swap_cache_page_in_2_6_30() -> None:
    from kernsim.explore.classify import classify_trace

    s = _cow_type_2("none")
    steps = [(ev.cpu, ev.prim, ev.result) for ev in s.world.engine.trace]
    assert ("A", "reuse_swap_page_check", None) in steps
    assert ("A", "do_wp_page_map", True) in steps
    assert ("A", "mem_cgroup_uncharge_page", True) in steps
    assert ("kswapd", "page_mapping_inuse", False) in steps
    violations = s.check()
    stale = [v for v in violations if v.kind == "swap_slot_in_use"]
    assert [v.pin for v in stale] == ["stale"] and _usage(s) == (0, 0)
    match = classify_trace(s.world.engine.trace, stale[0].slots[0], "none")
    assert match.cls == "fork-cow-type-2"


@pytest.mark.parametrize(
    ("variant", "pins"),
    [
        ("v4", ["stale"]),
        ("v5", ["stale"]),
        ("v5-as-intended", ["stale"]),
        ("v6", ["stale"]),
        ("v7", []),
        ("type2-fix", []),
        ("upstream", ["stale"]),
    ],
)
def test_cow_type_2_under_each_variant(variant: str, pins: list[str]) -> None:
    """v4 records only failed trylocks, v5/v6 check only after swap I/O, and this page is
    never written: they miss it.  Nishimura's hook right after add_to_swap() (type2-fix,
    v7 3/3) sees an anon page nobody maps and frees its swap at once.  2.6.31 leaves the
    same stale cache-only slot, which scan_swap_map() reuses once swap is half full (a
    slot given back by design)."""
    from kernsim.check.result import by_design

    s = _cow_type_2(variant)
    stale = [v for v in s.check() if v.kind == "swap_slot_in_use"]
    assert [v.pin for v in stale] == pins
    assert all(by_design(v, variant) is (variant == "upstream") for v in stale)
    assert _usage(s) == (0, 0)


def test_race_fork_is_deterministic() -> None:
    from kernsim.sim.run import simulate

    for seed in range(3):
        a = simulate("race-fork", "none", seed, keep_trace=False)
        b = simulate("race-fork", "none", seed, keep_trace=False)
        assert a.trace_sha256 == b.trace_sha256 and a.to_dict() == b.to_dict()


def test_do_wp_page_waits_for_the_page_lock_and_rechecks_the_pte() -> None:
    """do_wp_page()'s trylock_page() fails on reclaim's lock: it takes a reference, drops
    the pte lock, sleeps in lock_page() and re-checks pte_same() before going on."""
    s, a, c, p, _, _ = _forked()
    k = s.kthread()
    s.race(
        [
            Run("kswapd", through=call("trylock_page", a0=p)),
            Run("A", through=call("lock_page", a0=p)),  # WouldBlock: A sleeps on P
            Run("kswapd"),
            Run("A"),
        ],
        [(a, handle_mm_fault(a, a.task, 0, True)), (k, s.reclaim(k, [p]))],
    )
    steps = [(ev.prim, ev.result) for ev in s.world.engine.trace if ev.cpu == "A"]
    i = steps.index(("trylock_page", False))
    assert [prim for prim, _ in steps[i + 1 : i + 4]] == [
        "page_cache_get",
        "pte_unmap_unlock",
        "lock_page",
    ]
    assert steps[i + 4 : i + 9] == [
        ("lock_page", True),
        ("pte_offset_map_lock", True),
        ("pte_same_wrprotect", True),
        ("page_cache_release", False),
        ("reuse_swap_page_check", None),  # still shared with C: copy
    ]
    assert s.pte(a, 0).present and s.pte(a, 0).write and s.pte(a, 0).val != p  # copied
    for t in (a, c):
        s.run(t, s.exit(t))
    s.world.run_to_idle()
    assert [v for v in s.check() if v.kind != "swap_slot_in_use" or v.pin != "charged"] == []
