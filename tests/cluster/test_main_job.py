"""README's main job, as the README gives it, run again and again: the leak under
``none`` every time, never under ``upstream``.

The interleavings come from real timing on a loaded machine, so one run proves
little; ``KERNSIM_MAIN_JOB_RUNS`` (default 3) runs it that many times, each a
fresh cluster, and every run must show it.  The README states the rate
measured over 20 runs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("KERNSIM_MAIN_JOB_RUNS", "3"))


def main_job() -> list[str]:
    """The kernsim arguments of README's first command (set up, then run)."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("    python3 -m venv .venv") and "/kernsim run " in line:
            return shlex.split(line.split("&& .venv/bin/kernsim ", 1)[1])
    raise AssertionError("README.md has no main job line")


def test_the_main_job_is_the_readme_first_command() -> None:
    text = (REPO / "README.md").read_text()
    first = next(ln for ln in text.splitlines() if ln.startswith("    python3 -m venv"))
    assert "/kernsim run --scenario kamezawa --variant none --variant upstream" in first
    assert "--until-leak" in first and "--faults cluster-hdd" in first


@pytest.mark.parametrize("run", range(1, RUNS + 1))
def test_main_job_shows_the_leak_under_none_only(run: int) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "kernsim", *main_job(), "--json"],
        capture_output=True,
        text=True,
        timeout=1800,  # a loaded machine: four rounds of a few minutes each per variant
    )
    rows: dict[str, dict[str, Any]] = {
        d["variant"]: d for d in map(json.loads, r.stdout.splitlines())
    }
    assert r.returncode == 1, r.stdout + r.stderr
    none, upstream = rows["none"], rows["upstream"]
    # The real clock: wall seconds, never a virtual time the cluster does not have.
    assert "virtual_s" not in none and none["wall_s"] >= none["load_s"] > 0, none
    assert none["memsw_leak_bytes"] > 0 and none["ended"] == "leak seen", none
    assert "memsw_leak" in {v["kind"] for v in none["violations"]}
    # Nothing else broke: a code path that failed half-way (service_error) would leave
    # the model half-way too, and its "leak" would be no kernel's.
    assert none["other_failures"] == [] and upstream["other_failures"] == [], (none, upstream)
    assert upstream["memsw_leak_bytes"] == 0 and upstream["ended"] == "bound reached", upstream
    args = main_job()
    duration = float(args[args.index("--duration") + 1])
    bound = float(args[args.index("--until-leak") + 1])
    assert none["until_leak_s"] == upstream["until_leak_s"] == bound
    least = upstream["min_rounds"]
    assert none["min_rounds"] == least >= 2
    # The bound counts the rounds' wall time (a loaded machine runs fewer, longer ones),
    # but never stops them before the minimum: upstream ran at least that many, and
    # stopped because another round would pass the bound, not before.
    assert upstream["load_s"] + duration > bound and upstream["load_rounds"] >= least, upstream
    assert upstream["load_s"] >= upstream["load_rounds"] * duration, upstream
    # none stopped at the round that showed the leak, with swap-ins for its kills to catch.
    most = max(least, int(bound // duration))
    assert none["load_rounds"] <= most and none["swapin_reads"] > 0, none
    assert not {v["kind"] for v in upstream["violations"]} & {"memsw_leak", "memsw_accounting"}


@pytest.mark.parametrize("bound", ["5", "nan", "4000", "-1"])
def test_until_leak_outside_duration_to_an_hour_is_refused(bound: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "kernsim", "run", "--duration", "9", "--until-leak", bound],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    # One line naming the flag: a value that is no positive finite number is refused by
    # its validator, one outside --duration..3600 s by the run command.
    (line,) = r.stderr.strip().splitlines()
    assert " error: " in line and "--until-leak" in line, line


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--min-rounds", "2"], "--min-rounds needs --until-leak"),
        (["--until-leak", "54", "--min-rounds", "0"], "--min-rounds"),
        (["--until-leak", "54", "--min-rounds", "101"], "--min-rounds must be at most 100"),
    ],
)
def test_min_rounds_is_refused_without_a_bound_or_out_of_range(flags: list[str], says: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "kernsim", "run", "--duration", "9", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert " error: " in line and says in line, line
