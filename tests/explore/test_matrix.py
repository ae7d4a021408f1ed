"""The leak matrix: catalogue verdicts per variant, search counts, the three outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernsim.cli import main
from kernsim.explore.matrix import MatrixConfig, bucket_of, build_matrix
from kernsim.explore.matrix_report import to_markdown, verdict


@pytest.fixture(scope="module")
def small() -> dict[str, object]:
    return build_matrix(MatrixConfig(schedules=6, kamezawa_seeds=0, jobs=2))


def _cell(m: dict[str, object], row: str, col: str) -> dict[str, int]:
    rows = m["rows"]
    assert isinstance(rows, list)
    return next(r["cells"][col] for r in rows if r["workload"] == row)


def test_buckets_put_a_memsw_leak_before_a_pinned_slot() -> None:
    assert bucket_of(True, 4096, 3) == "memsw_leak"
    assert bucket_of(True, 0, 1) == "slot_pinned"
    assert bucket_of(True, 0, 0) == "other"
    assert bucket_of(False, 0, 0) == "clean"


def test_catalogue_verdicts_follow_the_reference(small: dict[str, object]) -> None:
    # docs/KERNEL.md section 8: T1/Ex. B leak memsw on 2.6.30; v5 catches Ex. B
    # and T1 at end_swap_bio_read; 2.6.31 drops memsw at count 0 but keeps the slot.
    assert _cell(small, "type-1", "none")["memsw_leak"] == 1
    assert _cell(small, "example-b", "v5")["clean"] == 1
    up = _cell(small, "type-1", "upstream")
    assert up["memsw_leak"] == 0 and up["slot_pinned"] == 1
    # T2 was missed by v5 ("stated"): only the slot leaks.
    assert _cell(small, "type-2", "v5")["slot_pinned"] == 1
    # Without readahead there is no reader to race with.
    assert _cell(small, "example-b", "none, page_cluster=0")["clean"] == 1


def test_race_row_counts_every_schedule_once(small: dict[str, object]) -> None:
    for col in ("none", "v5", "upstream", "none, page_cluster=0"):
        cell = _cell(small, "race (random search)", col)
        assert cell["runs"] == 6
        assert sum(cell[b] for b in ("memsw_leak", "slot_pinned", "other", "clean")) == 6
    rows = small["rows"]
    assert isinstance(rows, list) and "kamezawa" not in [r["workload"] for r in rows]


def test_markdown_has_a_row_per_workload(small: dict[str, object]) -> None:
    md = to_markdown(small)
    assert "| type-1 | memsw LEAK | clean | slot pinned |" in md
    assert verdict({"runs": 0}) == "-"


def test_matrix_cli_writes_md_json_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    status = main(["matrix", "--schedules", "2", "--kamezawa-seeds", "0", "--jobs", "1",
                   "--out", str(out), "--json"])  # fmt: skip
    m = json.loads(capsys.readouterr().out)
    assert status == 1  # the catalogue leaks under none
    assert m["columns"][-1] == "none, page_cluster=0"
    assert (out / "matrix.md").read_text().startswith("# Leak matrix")
    assert json.loads((out / "matrix.json").read_text()) == m
    assert (out / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "index.html").read_text()
    # Coloured by what happened: a leak and a pinned slot have their own classes (hues).
    assert '<th>type-1</th><td class="leak">memsw LEAK</td><td class="clean">clean</td>' in page
    assert '<td class="pin">slot pinned</td>' in page
    assert "data:image/png;base64," in page
    assert "`" not in page  # prose rendered, not raw Markdown
    assert "made by <code>kernsim matrix" in page and "trace identity" in page
    assert main(["matrix", "--schedules", "-1"]) == 2
