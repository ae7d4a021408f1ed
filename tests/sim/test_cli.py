"""`kernsim sim`: output, JSON fields and exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kernsim.cli import main

FIELDS = {
    "scenario",
    "variant",
    "seed",
    "trace_sha256",
    "events",
    "virtual_s",
    "verdict",
    "failed",
    "invariants_ok",
    "memsw_leak_bytes",
    "swap_slots_pinned",
    "other_failures",
    "usage_bytes",
    "memsw_usage_bytes",
    "stale_swapcache_pages",
    "swap_slots_used",
    "swap_slots_used_after_global_reclaim",
    "violations",
}


def test_json_has_the_documented_fields_and_exit_1_on_a_leak(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["sim", "--scenario", "type-1", "--variant", "none", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 1
    assert out.keys() >= FIELDS
    assert out["memsw_leak_bytes"] == 4096 and out["invariants_ok"] is False
    assert {v["kind"] for v in out["violations"]} == {"memsw_leak", "swap_slot_in_use"}


def test_exit_0_when_the_invariants_hold(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--scenario", "type-1", "--variant", "v5"]) == 0
    text = capsys.readouterr().out
    assert "invariants" in text and "ok" in text and "VIOLATED" not in text


def test_variants_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    main(["sim", "--scenario", "example-b", "--variant", "none", "--variant", "upstream"])
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "none" in line and "upstream" in line)
    assert header.split() == ["none", "upstream"]
    leak = next(line for line in lines if line.startswith("memsw leak"))
    assert leak.split()[-2:] == ["4096", "0"]


def test_seed_lists_run_every_seed(capsys: pytest.CaptureFixture[str]) -> None:
    main(["sim", "--scenario", "race", "--seed", "3-5", "--json"])
    seeds = [json.loads(line)["seed"] for line in capsys.readouterr().out.splitlines()]
    assert seeds == [3, 4, 5]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim", "--scenario", "nope"], "invalid choice: 'nope'"),
        (["sim", "--variant", "v9"], "invalid choice: 'v9'"),
        (["sim", "--seed", "x"], "not a seed list"),
        (["sim", "--seed", "-3"], "not a seed list"),
        (["sim", "--page-cluster", "9"], "between 0 and 8"),
        (["sim", "--faults", "gauss"], "unknown fault profile 'gauss'"),
        (["sim", "--rounds", "0"], "--rounds must be at least 1"),
    ],
)
def test_bad_usage_exits_2_with_one_clear_line(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kernsim", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_slot_the_variant_gives_back_by_design_is_reported_not_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # type-1 under 2.6.31 leaves a stale cache-only slot: scan_swap_map() reuses it once
    # swap is more than half full, so it is "pinned", exit 0; --strict fails on it.
    assert main(["sim", "--scenario", "type-1", "--variant", "upstream", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "pinned" and out["failed"] is False
    assert out["invariants_ok"] is False  # the invariant itself is still reported broken
    assert out["swap_slots_pinned"] == {
        "stale": 1,
        "charged": 0,
        "unreferenced": 0,
        "given_back_by_design": 1,
        "not_given_back_by_design": 0,
    }
    [slot] = out["violations"]
    assert slot["pin"] == "stale" and slot["given_back_by_design"] is True
    assert main(["sim", "--scenario", "type-1", "--variant", "upstream", "--strict"]) == 1


def test_the_same_stale_slot_under_2_6_30_fails_until_global_reclaim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # type-2 under none: no memsw leak, but a stale slot only global reclaim gives back.
    assert main(["sim", "--scenario", "type-2", "--variant", "none", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["memsw_leak_bytes"] == 0 and out["verdict"] == "LEAK"
    assert out["swap_slots_pinned"]["not_given_back_by_design"] == 1


def test_violations_are_grouped_by_kind_and_listed_with_v(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["sim", "--scenario", "type-1", "--variant", "none", "--variant", "upstream"])
    text = capsys.readouterr().out
    verdict = next(line for line in text.splitlines() if line.startswith("verdict"))
    assert verdict.split() == ["verdict", "LEAK", "pinned"]
    assert "  memsw_leak x1 (4096 B, charged to slot 1)" in text
    assert "swap_slot_in_use x1: 1 stale cache-only (only global reclaim gives it back)" in text
    assert "violations under upstream, seed 1: pinned" in text
    assert "swap slot 1 still in use" not in text  # each slot only with -v
    main(["sim", "--scenario", "type-1", "--variant", "none", "-v"])
    verbose = capsys.readouterr().out
    assert "    swap slot 1 still in use (swap_map=0x1): stale cache page" in verbose
    # sim -v draws the race as replay does: a column per CPU, kernel words, no reprs.
    assert "CPU0 (" in verbose and "CPU1 (" in verbose and "-+-" in verbose
    assert "PageFlags(" not in verbose and "= None" not in verbose


def test_many_runs_stream_one_row_each_and_progress_goes_to_stderr() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kernsim", "sim", "--scenario", "type-1", "--seed", "1-4",
         "--variant", "none", "--variant", "upstream"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == "scenario type-1, 8 runs" and lines[1].split()[:3] == [
        "seed",
        "variant",
        "verdict",
    ]
    rows = [line.split() for line in lines[2:10]]
    first = [("1", "none", "LEAK"), ("1", "upstream", "pinned")]
    assert [(r[0], r[1], r[2]) for r in rows[:2]] == first
    assert lines[10] == "8 runs: 4 LEAK, 4 pinned"
    # stderr is a pipe: plain phase lines, no carriage-return frames.
    assert "kernsim: sim 1/8: type-1 under none, seed 1" in proc.stderr
    assert "\r" not in proc.stderr


def test_slot_ranges_stay_short() -> None:
    from kernsim.sim.render import slot_range

    assert slot_range([7]) == "slot 7"
    assert slot_range([3, 1, 2, 9, 2121]) == "slots 1-3, 9, 2121"
    assert slot_range(list(range(0, 40, 2))) == "slots 0-38"


def test_version_and_a_bare_kernsim_lists_the_commands() -> None:
    run = [sys.executable, "-m", "kernsim"]
    v = subprocess.run([*run, "--version"], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout.startswith("kernsim ")
    bare = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2
    assert "usage: kernsim" in bare.stderr and "error" not in bare.stderr
    assert all(cmd in bare.stderr for cmd in ("sim", "run", "explore", "replay", "matrix"))


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "--page-cluster", "9"], "page-cluster must be between 0 and 8"),
        (["explore", "--seed", "-1"], "a seed is a whole number >= 0"),
        (["run", "--seed", "-1"], "a seed is a whole number >= 0"),
        (["matrix", "--seed", "x"], "not a whole number"),
        (["sim", "--seed", "3-1"], "the range 3-1 is reversed"),
        (["explore", "--page-cluster", "12"], "page-cluster must be between 0 and 8"),
    ],
)
def test_shared_flags_are_checked_the_same_in_every_command(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One validator per kind of value (kernsim.cli.options): a bad value is a usage error,
    exit 2, said in one line, whichever command it is given to."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and err.startswith(f"kernsim {argv[0]}: error:")
