"""The drawn race's window: the pattern's tightest match, and the forced orders the
shrinker tries to draw a race shorter (kernsim.explore.shrink_window)."""

from __future__ import annotations

from dataclasses import replace

from kernsim.explore.classify import match_pattern
from kernsim.explore.job import Job, execute, run_schedule
from kernsim.explore.patterns import BY_NAME
from kernsim.explore.shrink_window import drawn_rows, forced, record, window_moves
from kernsim.sim.engine import TraceEvent


def ev(cpu: str, func: str, prim: str, *args: object, result: object = None) -> TraceEvent:
    return TraceEvent(0.0, cpu, func, prim, args, result)


def test_a_match_starts_where_its_steps_last_met() -> None:
    # A's do_swap_page() and then its do_wp_page() both decide not to reuse page 8;
    # B decides the same; the last unmap leaves the page cached.  The race is the
    # do_wp_page()'s decision, the last one before B's.
    trace = [
        ev("A", "reuse_swap_page", "reuse_swap_page_check", 8, result=False),
        ev("A", "reuse_swap_page", "reuse_swap_page_check", 8, result=False),
        ev("B", "reuse_swap_page", "reuse_swap_page_check", 8, result=False),
        ev("A", "page_remove_rmap_uncharge", "mem_cgroup_uncharge_page", 8, True, False,
           result=False),
    ]  # fmt: skip
    life = [(i, ("page", 8)) for i in range(len(trace))]
    assert match_pattern(BY_NAME["fork-cow-both"], trace, life) == [1, 2, 3]
    # Roles still bind: B's decision cannot play A's.
    trace[1] = ev("B", "reuse_swap_page", "reuse_swap_page_check", 8, result=False)
    assert match_pattern(BY_NAME["fork-cow-both"], trace, life) == [0, 2, 3]


def test_a_run_forced_through_its_recorded_order_is_the_same_run() -> None:
    job = Job("race", "none", 3, "random")
    o = run_schedule(job)
    assert o.failed
    replay = replace(job, strategy="replay", switches=o.switches)
    rec = record(replay)
    assert rec.run.result is not None and rec.run.result.sha256() == o.trace_sha256
    assert len(rec.decision_of) == o.events  # every kernel event has its decision
    again = execute(forced(replay, tuple(rec.sequence)))
    assert again.result_hash() == o.trace_sha256
    assert drawn_rows(again) == drawn_rows(rec.run) > 0


def test_window_moves_put_another_cpus_steps_in_front_of_the_window() -> None:
    job = Job("race-fork", "none", 1078, "pos", window_s=0.001)  # fork-cow-both
    o = run_schedule(job)
    assert "fork-cow-both" in o.classes
    rec = record(replace(job, strategy="replay", switches=o.switches))
    moves = window_moves(rec)
    assert moves and len(set(moves)) == len(moves)
    for order in moves:  # the same decisions, in another order
        assert sorted(order) == sorted(rec.sequence) and list(order) != rec.sequence
