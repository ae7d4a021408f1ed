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
    "invariants_ok",
    "memsw_leak_bytes",
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
