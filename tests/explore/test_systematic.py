"""Systematic search: every schedule within a preemption bound, up to equivalence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernsim.explore.executors import run_all
from kernsim.explore.job import Job
from kernsim.explore.search import SearchConfig, explore
from kernsim.explore.systematic import WINDOW_S, search


def _systematic(scenario: str, variant: str, k: int, **kw: Any) -> dict[str, Any]:
    cfg = SearchConfig(scenario, variant, "systematic", preemptions=k, **kw)
    return explore(cfg)


# tiny-readers: CPUs r1 and r2 each take 3 decisions (start, read, read), all due at
# once.  A schedule is an interleaving of two runs of 3; with r runs of the two CPUs
# (r >= 2) there are r - 1 switches, and exactly one of them is free (the one after a
# CPU's last step): r - 2 preemptions.  Counting interleavings by their number of runs:
#   r=2: r1r1r1 r2r2r2 and the mirror                                     2
#   r=3: r1^i r2^3 r1^(3-i), i in 1..2, and the mirror                    4
#   r=4: r1^i r2^j r1^(3-i) r2^(3-j), i, j in 1..2, and the mirror        8
#   r=5: r1 r2^j r1 r2^(3-j) r1, j in 1..2, and the mirror                4
#   r=6: r1 r2 r1 r2 r1 r2 and the mirror                                 2
# so at most K preemptions: K=0: 2, K=1: 6, K=2: 14, K=3: 18, K=4: 20 = C(6, 3).
@pytest.mark.parametrize(("k", "count"), [(0, 2), (1, 6), (2, 14), (3, 18), (4, 20)])
def test_tiny_scenario_schedule_count_by_hand(k: int, count: int) -> None:
    s = _systematic("tiny-readers", "none", k, por=False, schedules=1000)
    assert s["complete"] and s["schedules_run"] == count and s["pruned"] == 0
    assert s["failures"] == 0


def _traces(por: bool) -> tuple[int, set[str]]:
    """Schedules run and distinct traces of tiny-readers, unbounded (K=4)."""
    cfg = SearchConfig("tiny-readers", "none", "systematic", preemptions=4, por=por)
    base = Job("tiny-readers", "none", 0, "systematic", window_s=WINDOW_S)
    tally, found, left = search(cfg, base, lambda fn, items: run_all(fn, items, 1))
    assert left == 0
    prefixes = {job.prefix for job in found.jobs}
    assert len(prefixes) == tally.runs  # no schedule is run twice
    from kernsim.explore.job import execute

    return tally.runs, {execute(j).result_hash() for j in found.jobs}


def test_partial_order_reduction_keeps_every_distinct_trace() -> None:
    # The starts are not kernel steps (no trace event); only the order of the four
    # reads shows: C(4, 2) = 6 distinct traces, whatever the reduction prunes.
    runs_all, traces_all = _traces(por=False)
    runs_por, traces_por = _traces(por=True)
    assert runs_all == 20 and len(traces_all) == 6
    assert runs_por < runs_all
    assert traces_por == traces_all


@pytest.mark.parametrize(
    ("scenario", "cls"), [("window-example-a", "example-a"), ("window-type-2", "type-2")]
)
def test_k2_finds_the_catalogue_race_and_upstream_has_no_memsw_leak(
    scenario: str, cls: str
) -> None:
    found = _systematic(scenario, "none", 2, schedules=2000)
    assert found["complete"] and cls in {r["class"] for r in found["races"]}
    fixed = _systematic(scenario, "upstream", 2, schedules=2000)
    # A statement kernsim can make: no memsw leak in any schedule with <= 2 preemptions.
    assert fixed["complete"] and fixed["schedules_run"] > 0
    assert all("memsw_leak" not in r["kinds"] for r in fixed["races"])


def test_readahead_window_finds_example_b_and_type_1() -> None:
    s = _systematic("window-readahead", "none", 1, schedules=2000, jobs=1)
    assert s["complete"]
    assert {"example-b", "type-1"} <= {r["class"] for r in s["races"]}


def test_cli_reports_complete_schedules_and_pruned(capsys: pytest.CaptureFixture[str]) -> None:
    from kernsim.cli import main

    argv = ["explore", "--scenario", "window-type-2", "--variant", "upstream",
            "--strategy", "systematic", "--preemptions", "1", "--jobs", "1", "--json"]  # fmt: skip
    status = main(argv)
    s = json.loads(capsys.readouterr().out)
    assert s["complete"] is True and s["schedules_run"] > 0 and s["pruned"] >= 0
    assert status == (1 if s["failures"] else 0)
