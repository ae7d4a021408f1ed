"""Search strategies, coverage, and what `kernsim explore` says with and without failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernsim.cli import main
from kernsim.explore.coverage import Coverage, racing_pairs
from kernsim.explore.job import Job, execute, run_schedule
from kernsim.explore.search import SearchConfig, explore, make_jobs
from kernsim.explore.strategies import SWARM, swarm_choice


def test_default_strategy_finds_races_on_race_none(tmp_path: Path) -> None:
    # The newcomer's first command: kernsim explore --scenario race --variant none
    # --schedules 300, every other option at its default (shrinking kept short here).
    from kernsim.cli import build_parser

    args = build_parser().parse_args(["explore", "--scenario", "race", "--variant", "none",
                                      "--schedules", "300"])  # fmt: skip
    assert args.strategy == "swarm"
    cfg = SearchConfig("race", "none", args.strategy, 300, jobs=2, out=tmp_path, shrink_budget=5)
    s = explore(cfg)
    assert s["failures"] > 0
    assert s["coverage"] == len(s["coverage_pairs"]) > 0
    assert s["coverage_curve"][-1][1] == s["coverage"]
    assert s["coverage_png"] in (None, "coverage.png")
    for race in s["races"]:
        if "shrink_attempts" in race:
            assert 0 < race["shrink_attempts"] <= 5
            assert race["cite"] or race["class"].startswith("NEW")


def test_zero_failures_says_what_to_try_next(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["explore", "--scenario", "tiny-readers", "--strategy", "systematic",
                   "--preemptions", "0", "--jobs", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    assert "0 failing" in out and "first failure at none" in out
    assert "try: --strategy swarm" in out and "--preemptions 1" in out


def test_swarm_draws_strategies_and_windows_from_the_seed() -> None:
    cfg = SearchConfig("race", "none", "swarm", schedules=64, window_s=0.0002)
    jobs = make_jobs(cfg, 0)
    drawn = {(j.strategy, round(j.window_s / 0.0002)) for j in jobs}
    assert drawn == {(s, round(f)) for s, f in SWARM}
    assert all((j.strategy, j.window_s) == swarm_choice(j.seed, 0.0002) for j in jobs)


@pytest.mark.parametrize("strategy", ["pos", "cpct"])
def test_new_strategies_replay_bit_for_bit(strategy: str) -> None:
    for seed in range(40):
        job = Job("race", "none", seed, strategy, steps=20)
        o = run_schedule(job)
        if o.failed:
            replayed = run_schedule(Job("race", "none", seed, "replay", switches=o.switches))
            assert replayed.trace_sha256 == o.trace_sha256
            return
    pytest.fail(f"{strategy}: no failure in 40 schedules")


def test_racing_pairs_are_steps_of_different_cpus_on_one_object() -> None:
    run = execute(Job("type-2", "none", 0))
    assert run.result is not None and run.result.world is not None
    trace = run.result.world.engine.trace
    pairs = racing_pairs(trace)
    # The Type-2 window: the zap's last step on the page (its mmu_gather's trylock,
    # after the uncharge), then reclaim's next one.
    assert ("page", "free_swap_cache_trylock/fail", "page_mapping_inuse") in pairs
    assert {k for k, _, _ in pairs} <= {"page", "slot", "memcg", "mm"}


def test_coverage_counts_new_pairs_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    cov = Coverage()
    assert cov.add(1, [("page", "a", "b")]) == 1
    assert cov.add(2, [("page", "a", "b")]) == 0 and cov.since_new == 1
    assert cov.curve == [(1, 1)]
    status = main(["explore", "--scenario", "race", "--schedules", "400", "--jobs", "1",
                   "--stop-after-no-new-pairs", "5", "--json"])  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    assert s["stopped_early"] and s["schedules_run"] < 400
    last_new = s["coverage_curve"][-1][0]
    assert s["schedules_run"] == last_new + 5
    assert status in (0, 1)
