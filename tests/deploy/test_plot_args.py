"""``kernsim plot``'s refusals: bad input is exit 2 with one line, never a traceback."""

from __future__ import annotations

import pytest

from kernsim.cli import main
from kernsim.exits import Exit
from kernsim.plot import parse_duration


@pytest.mark.parametrize(
    "argv",
    [
        ["--since", "ten minutes"],
        ["--since", "0m"],
        ["--since", "1h30"],
        ["--since", "m10"],
        ["--prometheus", "ftp://example"],
        ["--prometheus", "http://127.0.0.1:1"],
    ],
)
def test_kernsim_plot_bad_input_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", *argv]) == Exit.USAGE
    assert "kernsim plot: error:" in capsys.readouterr().err


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "10m", "1.5h", "2d")] == [90, 600, 5400, 172800]
    assert parse_duration("1h30m") == 5400 and parse_duration("1m30s") == 90
