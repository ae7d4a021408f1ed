"""The explorer: classification, search, shrinking, replay, determinism."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from kernsim.cli import main
from kernsim.explore import replayfile
from kernsim.explore.classify import classify_run
from kernsim.explore.diagram import draw_all
from kernsim.explore.job import Job, Run, execute, run_schedule
from kernsim.explore.shrink import ddmin, shrink
from kernsim.explore.strategies import Chooser
from kernsim.sim.run import simulate

CATALOGUE = ["example-a", "example-b", "type-1", "type-2"]


@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_trace_classifies_as_itself(name: str) -> None:
    r = simulate(name, "none", 1, "none")
    run = Run(Job(name, "none", 1), r, Chooser(random.Random(0)))
    assert classify_run(run) == [name]
    diagram = draw_all(run)[0][1]
    assert "CPU0" in diagram and "CPU1" in diagram and "=> " in diagram


def _first_failure(
    variant: str, cls: str, strategy: str = "random", n: int = 150, window_s: float | None = None
) -> Job:
    for seed in range(n):
        job = Job("race", variant, seed, strategy)
        if window_s is not None:
            job = replace(job, window_s=window_s)
        o = run_schedule(job)
        if o.failed and o.classes == (cls,):
            return job
    raise AssertionError(f"no {cls} in {n} schedules")


@pytest.mark.parametrize("cls", ["example-a", "type-2"])
def test_search_on_race_finds_catalogue_races(cls: str) -> None:
    job = _first_failure("none", cls)
    assert run_schedule(job).classes == (cls,)


@pytest.mark.parametrize("cls", ["type-1", "example-b"])
def test_search_with_a_wider_window_finds_the_readahead_races(cls: str) -> None:
    """The readahead races need a bio completion to land inside a zap: with 1 ms of
    concurrency window, a random walk on race finds both (600 schedules searched)."""
    job = _first_failure("none", cls, n=600, window_s=0.001)
    outcome = run_schedule(job)
    assert outcome.classes == (cls,)
    assert "memsw_leak" in outcome.kinds


def test_same_seed_same_trace_pct() -> None:
    job = Job("race", "none", 3, "pct", steps=700)
    a, b = execute(job), execute(job)
    assert a.result_hash() == b.result_hash() and a.chooser.decision == b.chooser.decision
    assert run_schedule(replace(job, check_determinism=True)).status != "diverged"
    assert execute(replace(job, seed=4)).result_hash() != a.result_hash()


def test_recorded_switches_replay_bit_for_bit() -> None:
    job = _first_failure("none", "type-2")
    o = run_schedule(job)
    replayed = run_schedule(replace(job, strategy="replay", switches=o.switches))
    assert replayed.trace_sha256 == o.trace_sha256 and replayed.kinds == o.kinds


def test_shrinking_keeps_the_failure_and_never_grows() -> None:
    job = _first_failure("none", "type-2")
    o = run_schedule(job)
    sh = shrink(job, o, budget=60)
    assert sh.runs <= 60
    assert sh.outcome.failed and sh.outcome.kinds == o.kinds
    assert set(sh.outcome.classes) <= set(o.classes)
    assert sh.outcome.events <= o.events and len(sh.outcome.switches) <= len(o.switches)
    assert len(sh.outcome.switches) < len(o.switches)  # random walks leave much to cut
    again = execute(sh.job)
    assert again.result_hash() == sh.outcome.trace_sha256


def test_ddmin_finds_the_minimal_pair() -> None:
    calls: list[list[int]] = []

    def test(xs: list[int]) -> bool:
        calls.append(xs)
        return 3 in xs and 7 in xs

    assert sorted(ddmin(list(range(10)), test)) == [3, 7]


def _replay_file(tmp_path: Path) -> Path:
    job = _first_failure("none", "type-2")
    o = run_schedule(job)
    rjob = replace(job, strategy="replay", switches=o.switches)
    path = tmp_path / "r.json"
    replayfile.write(path, rjob, o.trace_sha256, o.kinds)
    return path


def test_replay_cli_reproduces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _replay_file(tmp_path)
    assert main(["replay", str(path)]) == 1
    assert "reproduced" in capsys.readouterr().out
    data = json.loads(path.read_text())
    data["trace_sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    assert main(["replay", str(path)]) == 1  # an older model: same violations
    assert "same violations, different trace" in capsys.readouterr().out
    data["job"]["switches"] = []  # the default, non-preemptive schedule: no race
    path.write_text(json.dumps(data))
    assert main(["replay", str(path)]) == 0
    assert capsys.readouterr().out.startswith("NOT reproduced")


@pytest.mark.parametrize("damage", ["missing", "truncated", "version", "notjson", "fields"])
def test_replay_cli_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = _replay_file(tmp_path)
    text = path.read_text()
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "version":
        path.write_text(text.replace(f'"version": {replayfile.VERSION}', '"version": 99'))
    elif damage == "notjson":
        path.write_text("hello")
    else:
        path.write_text(json.dumps({"version": replayfile.VERSION, "job": {"scenario": "race"}}))
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kernsim replay: error:") and "Traceback" not in err
    assert str(path) in err


def test_explore_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["explore", "--scenario", "race", "--strategy", "random", "--schedules", "40",
                   "--jobs", "2", "--shrink-budget", "40", "--out", str(tmp_path),
                   "--json"])  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    assert s["schedules_run"] == 40
    assert status == (1 if s["failures"] else 0)
    for key in ("failures", "first_failure_at", "schedules_per_s", "races"):
        assert key in s
    for race in s["races"]:
        assert race["count"] >= 1 and Path(race["replay"]).is_file()
    assert (tmp_path / "index.html").read_text().startswith("<!doctype html>")


def test_explore_cli_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "--executor", "ftp://x", "--schedules", "1"]) == 2
    assert "executor" in capsys.readouterr().err


def test_shrinking_a_random_walk_removes_kernel_events() -> None:
    # Seed 32 of race/none under the random walk: a type-2 and a writeback race in
    # 500 events and 223 switches.
    job = Job("race", "none", 32, "random")
    o = run_schedule(job)
    assert o.failed and o.events > 400
    sh = shrink(job, o, budget=200)
    assert sh.outcome.kinds == o.kinds and set(sh.outcome.classes) <= set(o.classes)
    assert sh.outcome.events < o.events * 0.9
    assert len(sh.outcome.switches) < len(o.switches) // 4
    assert execute(sh.job).result_hash() == sh.outcome.trace_sha256
