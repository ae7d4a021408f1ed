"""A trace's identity is kernel events only: replay files survive refactoring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kernsim.cli import main
from kernsim.explore.replayfile import verdict as replay_verdict
from kernsim.sim import cpu as cpu_module
from kernsim.sim.run import simulate

ROOT = Path(__file__).resolve().parents[2]
REPLAYS = sorted((ROOT / "docs" / "replays").glob("*.json"))


def test_there_are_replay_files_to_check() -> None:
    assert REPLAYS


@pytest.mark.parametrize("path", REPLAYS, ids=lambda p: p.name)
def test_every_documented_replay_file_reproduces_bit_for_bit(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(path)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("reproduced (")


def test_the_python_call_site_is_not_part_of_the_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Renaming every model function that issues a primitive keeps the hash."""
    before = simulate("race", "v5", 5, keep_trace=True)
    renamed = SimpleNamespace(_getframe=lambda depth=0: SimpleNamespace(
        f_code=SimpleNamespace(co_name="renamed_by_a_refactor")))  # fmt: skip
    monkeypatch.setattr(cpu_module, "sys", renamed)
    after = simulate("race", "v5", 5, keep_trace=True)
    assert after.world is not None
    assert {e.func for e in after.world.engine.trace} == {"renamed_by_a_refactor"}
    assert after.trace_sha256 == before.trace_sha256


def test_a_changed_result_changes_the_identity() -> None:
    """The identity still sees the kernel: another seed, another trace."""
    assert simulate("race", "v5", 5).trace_sha256 != simulate("race", "v5", 6).trace_sha256


def test_replay_tells_an_older_model_apart_from_not_reproduced() -> None:
    data = {"trace_sha256": "aa", "kinds": ["memsw_leak"]}
    assert replay_verdict(data, "aa", ["memsw_leak"]) == "reproduced"
    assert replay_verdict(data, "bb", ["memsw_leak"]) == "same violations, different trace"
    assert replay_verdict(data, "aa", []) == "not reproduced"
    assert replay_verdict(data, "bb", ["swap_slot_in_use"]) == "not reproduced"


def test_a_replay_recorded_by_an_older_model_still_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(REPLAYS[0].read_text())
    data["trace_sha256"] = "0" * 64
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert main(["replay", str(old)]) == 1
    assert "same violations, different trace" in capsys.readouterr().out


def test_same_seed_same_hash_across_pythonhashseeds() -> None:
    """Three interpreters with different string hashing agree on every trace hash."""
    code = (
        "import json; from kernsim.sim.run import simulate; "
        "print(json.dumps([simulate(s, v, 7, keep_trace=False).trace_sha256 "
        "for s in ('race', 'type-1') for v in ('none', 'v5', 'upstream')]))"
    )
    seen = set()
    for hashseed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, timeout=300).stdout  # fmt: skip
        seen.add(out.strip())
    assert len(seen) == 1
