"""``kernsim replay`` on files that are not replay files: exit 2 with one line naming why."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernsim.cli import main
from kernsim.exits import Exit


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xff\xfe\x00binary", "not a replay file (binary, not UTF-8 JSON)"),
        (b'{"version": 2', "not a replay file (truncated or not JSON"),
        (b"[1, 2]", "not a replay file (no version field)"),
        (b'{"version": 99}', "replay file version 99"),
    ],
)
def test_bad_replay_file_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    assert main(["replay", str(path)]) == Exit.USAGE
    err = capsys.readouterr().err
    assert why in err and len(err.strip().splitlines()) == 1


def test_missing_replay_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.json")]) == Exit.USAGE
    assert "cannot read" in capsys.readouterr().err
