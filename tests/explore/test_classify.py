"""Classes beyond the catalogue: zap during swap-out writeback, and v5's hole."""

from __future__ import annotations

import random

import pytest

from kernsim.explore.classify import V5_HOLE, classify_matches, classify_run
from kernsim.explore.diagram import draw_all
from kernsim.explore.job import Job, Run, execute, run_schedule
from kernsim.explore.strategies import Chooser
from kernsim.faults import load_profile
from kernsim.model.mm import MmConfig
from kernsim.sim.run import check
from kernsim.sim.scripting import Run as Step
from kernsim.sim.scripting import Script, call
from kernsim.sim.world import World
from kernsim.variants import get_variant


def zap_during_writeback(world: World) -> None:
    """kswapd writes A's page out (set_page_writeback, unlock); A exits before the
    write completes: free_swap_and_cache() gets the lock but finds PG_writeback."""
    s = Script(world)
    a = s.task("A")
    pfn = s.fault(a, 0)
    kswapd = s.kthread()
    s.race(
        [Step("kswapd", through=call("set_page_writeback_unlock", a0=pfn)), Step("A")],
        [(kswapd, s.reclaim(kswapd, [pfn], drain=True, age=True)), (a, s.exit(a))],
    )
    s.exit_all()


def _scripted_run(variant: str) -> Run:
    var = get_variant(variant)
    mm = MmConfig(total_pages=1024, swap_pages=16, swap_has_cache=var.swap_has_cache)
    world = World.create(var, 1, load_profile("none"), mm)
    world.check_continuously()
    zap_during_writeback(world)
    result = check(world, "zap-during-writeback")
    return Run(Job("zap-during-writeback", variant, 1), result, Chooser(random.Random(0)))


@pytest.mark.parametrize("variant", ["none", "upstream"])
def test_zap_during_writeback_is_its_own_class(variant: str) -> None:
    run = _scripted_run(variant)
    assert run.result is not None
    assert {v.kind for v in run.result.violations} >= {"swap_slot_in_use"}
    assert classify_run(run) == ["writeback"]
    diagram = draw_all(run)[0][1]
    assert "writeback" in diagram.splitlines()[0]
    assert "set_page_writeback_unlock" in diagram and "free_swap_and_cache" in diagram


def test_v5_frees_the_page_at_end_of_writeback() -> None:
    run = _scripted_run("v5")
    assert run.result is not None and run.result.violations == []


def test_v5_hole_is_its_own_pattern() -> None:
    # Found by: kernsim explore --scenario race --variant v5 --strategy random
    #   --window-us 1000 --schedules 400 (seed 48 is one of its failures).
    job = Job("race", "v5", 48, "random", window_s=0.001)
    o = run_schedule(job)
    assert o.failed and "memsw_leak" in o.kinds
    matches = classify_matches(execute(job))
    hole = next(m for m in matches if m.cls == "v5-hole")
    assert hole.detail == V5_HOLE and "docs/v5-hole.md" in hole.cite
    # Two pages: the one reuse_swap_page() deleted and the readahead page left behind.
    assert hole.also and hole.also[0] != hole.page
    assert ("page", "add_to_swap_cache/read", "mem_cgroup_staleswap_hint/stable") in hole.pairs


@pytest.mark.parametrize("name", ["example-a", "example-b", "type-1", "type-2"])
@pytest.mark.parametrize("variant", ["none", "upstream"])
def test_every_catalogue_trace_is_classified_by_its_pattern(name: str, variant: str) -> None:
    run = execute(Job(name, variant, 0))
    assert run.result is not None and run.result.violations
    matches = classify_matches(run)
    assert [m.cls for m in matches] == [name]
    assert matches[0].pairs and matches[0].cite
    # Each racing pair is two different CPUs' steps on the slot or its page.
    assert all(kind in ("slot", "page") for kind, _, _ in matches[0].pairs)


# Documented races found by search (seed, strategy, window): each one's pattern.
FOUND = [
    ("none", 1, "pos", 0.0002, "writeback"),
    ("none", 3, "random", 0.0002, "example-a"),
    ("none", 75, "random", 0.001, "example-b"),
    ("none", 445, "random", 0.001, "type-1"),
    ("none", 50, "random", 0.001, "type-2"),
    ("none", 11, "random", 0.0002, "type-2"),
    ("v5", 502, "random", 0.001, "gather-trylock"),
    ("v5", 1379, "pos", 0.001, "v5-read-window"),
    ("v5", 58, "delay", 0.001, "v5-write-window"),
    ("v5", 48, "random", 0.001, "v5-hole"),
    ("upstream", 197, "random", 0.0002, "reuse-window"),
]


@pytest.mark.parametrize(("variant", "seed", "strategy", "window_s", "cls"), FOUND)
def test_documented_races_are_classified(
    variant: str, seed: int, strategy: str, window_s: float, cls: str
) -> None:
    o = run_schedule(Job("race", variant, seed, strategy, window_s=window_s))
    assert o.failed
    assert cls in o.classes


def test_new_lists_the_racing_pairs() -> None:
    from kernsim.explore.classify import classify_trace
    from kernsim.explore.patterns import PATTERNS

    run = _scripted_run("none")
    assert run.result is not None
    trace = run.result.world.engine.trace if run.result.world is not None else []
    # With the writeback pattern taken out, nothing matches: NEW, with its pairs.
    import kernsim.explore.classify as classify

    kept = tuple(p for p in PATTERNS if p.name != "writeback")
    original = classify.PATTERNS
    classify.PATTERNS = kept
    try:
        m = classify_trace(trace, run.result.violations[0].slots[0], "none")
    finally:
        classify.PATTERNS = original
    assert m.cls == "NEW" and m.pairs
    assert "racing pairs:" in m.detail
    # The zap's steps on the page, then the write completion's: the pair that decides.
    assert any(b == "end_page_writeback" for _, _, b in m.pairs)


# Races searches filed as NEW until their patterns were named (scenario, variant, seed,
# the strategy and window the default swarm search drew for that seed, class, pattern).
# Found by: kernsim explore --scenario race --variant none (seed 81); the same with
# --strategy delay (seed 252); kernsim explore --scenario race-fork --variant none (seed 15;
# with --seed 300 --schedules 1500: seeds 324, 1214, 1301, 1342, 1408, 1450); the 100,000
# schedules of kernsim explore --scenario race --variant none --schedules 100000 (seeds
# 3286, 24320, 33722).
NAMED = [
    ("race", "none", 81, "delay", 0.001, "writeback", "writeback-gather"),
    (
        "race",
        "none",
        3286,
        "random",
        0.001,
        "zap-delete-window",
        "zap-delete-window-gather-late-add",
    ),
    ("race", "none", 24320, "delay", 0.001, "example-b-eexist", "example-b-eexist"),
    ("race", "none", 33722, "delay", 200 * 1e-6, "reuse-window", "reuse-window-eexist"),
    ("race", "none", 252, "delay", 200 * 1e-6, "readahead-eexist", "readahead-eexist"),
    ("race-fork", "none", 15, "delay", 0.001, "readahead-eexist", "readahead-eexist"),
    ("race-fork", "none", 1214, "delay", 0.001, "zap-delete-window", "zap-delete-window"),
    ("race-fork", "none", 1301, "random", 0.001, "reuse-window", "reuse-window-late-add"),
    ("race-fork", "none", 324, "random", 200 * 1e-6, "fork-cow-zap", "fork-cow-zap"),
    # The zap after do_wp_page()'s reuse_swap_page() but before its page_cache_get().
    ("race-fork", "none", 1450, "random", 0.001, "fork-cow-zap", "fork-cow-zap"),
    ("race-fork", "none", 1342, "pos", 0.001, "fork-cow-both", "fork-cow-both"),
    # kernsim explore --scenario race-fork --variant none --schedules 20000 (seeds 5669,
    # 18481; under v5, 6447).
    ("race-fork", "none", 5669, "delay", 0.001, "fork-zap-gather", "fork-zap-gather"),
    ("race-fork", "v5", 6447, "pos", 200 * 1e-6, "fork-zap-gather", "fork-zap-gather"),
    ("race-fork", "none", 14201, "delay", 0.001, "fork-cow-reclaim", "fork-cow-reclaim"),
    ("race-fork", "v5", 12696, "random", 200 * 1e-6, "fork-cow-zap", "fork-cow-zap-busy"),
    # kernsim explore --scenario race-threads --variant none --schedules 20000.
    (
        "race-threads",
        "none",
        1112,
        "delay",
        200 * 1e-6,
        "threads-zap-swapin",
        "threads-zap-swapin-charge-fails",
    ),
]


@pytest.mark.parametrize(
    ("scenario", "variant", "seed", "strategy", "window_s", "cls", "name"), NAMED
)
def test_races_found_by_search_are_named(
    scenario: str, variant: str, seed: int, strategy: str, window_s: float, cls: str, name: str
) -> None:
    from kernsim.explore.patterns import BY_NAME, PATTERNS

    run = execute(Job(scenario, variant, seed, strategy, window_s=window_s))
    assert run.result is not None and run.result.violations
    matches = classify_matches(run)
    assert [m.cls for m in matches] == [cls] * len(matches)
    pattern = BY_NAME[name]
    # The named pattern matched (a run may leak another slot through another pattern
    # of the same class: 33722's second slot is a plain reuse-window).
    assert any(m.detail == pattern.summary and m.cite == pattern.cite for m in matches)
    assert {m.detail for m in matches} <= {p.summary for p in PATTERNS if p.cls == cls}
    assert "found by search" in pattern.cite
    # Each is decided by a step of another CPU on the same page or slot.
    assert all(m.pairs for m in matches)


def test_writeback_through_the_mmu_gather_is_decided_by_the_write_completion() -> None:
    run = execute(Job("race", "none", 81, "delay", window_s=0.001))
    (m,) = classify_matches(run)
    assert ("page", "page_flags/writeback", "end_page_writeback") in m.pairs
    diagram = draw_all(run)[0][1]
    assert diagram.splitlines()[0].startswith("writeback")
    assert "free_swap_cache_trylock" in diagram and "end_page_writeback" in diagram


def test_readahead_eexist_is_decided_by_reclaims_failed_add() -> None:
    run = execute(Job("race", "none", 252, "delay", window_s=200 * 1e-6))
    assert run.result is not None
    # A stale page nobody maps holds each slot: not a memsw leak, a used slot.
    assert {v.kind for v in run.result.violations} == {"swap_slot_in_use"}
    for m in classify_matches(run):
        # The two add_to_swap_cache() calls on the slot: the readahead's won.
        assert m.pairs == (("slot", "add_to_swap_cache/read", "add_to_swap_cache/reclaim-fail"),)


def test_the_delete_windows_leak_memsw_through_swap_cgroup() -> None:
    # The zap's delete_from_swap_cache() moves the page's memsw charge into
    # swap_cgroup; the readahead page that re-added the slot is never charged.
    for seed, strategy, name in (
        (1214, "delay", "zap-delete-window"),
        (1301, "random", "reuse-window"),
    ):
        run = execute(Job("race-fork", "none", seed, strategy, window_s=0.001))
        assert run.result is not None
        assert "memsw_leak" in {v.kind for v in run.result.violations}
        (m,) = classify_matches(run)
        assert m.cls == name and m.also and m.also[0] != m.page


def test_v5_write_window_through_the_mmu_gather() -> None:
    # v5's check at end_swap_bio_write() sees the page mapped; the zap's mmu_gather then
    # takes the lock and try_to_free_swap() skips the page for PG_writeback.  Filed as
    # plain writeback until the v5 pattern took the gather's path (100,000 schedules of
    # race/v5: 11 failures, seed 1920 the first).
    run = execute(Job("race", "v5", 1920, "delay", window_s=0.001))
    (m,) = classify_matches(run)
    assert m.cls == "v5-write-window"
    assert ("page", "mem_cgroup_staleswap_hint/stable", "free_swap_cache_trylock/ok") in m.pairs


def test_a_page_leaves_a_slots_life_when_it_caches_another_slot() -> None:
    # Page 10 cached slot 5, was faulted back in (reuse_swap_page()), then written out
    # again to slot 7, where v5's worker freed it.  Its steps for slot 7 (a writeback
    # race, a stale-swap check) are not slot 5's: slot 5 leaked through the v5 hole
    # (race/v5, seed 58075 of 100,000, filed as writeback before).
    run = execute(Job("race", "v5", 58075, "pos", window_s=200 * 1e-6))
    assert [m.cls for m in classify_matches(run)] == ["v5-hole"]


@pytest.mark.parametrize("seed", [1052, 19743])
def test_example_a_when_reclaim_writes_the_page_out(seed: int) -> None:
    # Reclaim holds the lock from trylock_page() through add_to_swap() and pageout();
    # the zap's trylock fails in between, and swap_writepage() lets go of the lock as
    # it sets PG_writeback (set_page_writeback_unlock), not through unlock_page(): the
    # page stays in the swap cache all the same.  Filed NEW until Ex. A's pattern took
    # both ways reclaim unlocks (100,000 schedules of race/none, seeds 1052, 19743).
    run = execute(Job("race", "none", seed, "delay", window_s=0.001))
    (m,) = classify_matches(run)
    assert m.cls == "example-a"
    assert ("page", "free_swap_and_cache_locked/busy", "set_page_writeback_unlock") in m.pairs


def test_type_2_with_the_uncharge_after_add_to_swap() -> None:
    # page_remove_rmap()'s uncharge tested PageSwapCache before reclaim's add_to_swap()
    # and uncharged after it: the same end state as Type-2, through the copy of fork.
    run = execute(Job("race-fork", "none", 1408, "pos", window_s=0.001))
    from kernsim.explore.patterns import BY_NAME

    late = BY_NAME["fork-cow-type-2-late-uncharge"]
    m = next(m for m in classify_matches(run) if m.cls == "fork-cow-type-2")
    assert m.detail == late.summary
    assert ("page", "add_to_swap_cache/reclaim", "mem_cgroup_uncharge_page/ok") in m.pairs
