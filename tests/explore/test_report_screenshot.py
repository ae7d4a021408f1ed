"""The explore and matrix HTML reports, rendered by a headless Chromium: the page draws its
race diagrams as tables and its plots as images that decode, fits the window without
horizontal scrolling, and its screenshot is not blank.

Needs Debian's ``chromium`` (.ci/run installs it): without it the test fails with the
one line that says how to get it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from kernsim.explore.matrix import MatrixConfig, build_matrix
from kernsim.explore.matrix_report import write_matrix
from kernsim.explore.report import write_explore_report
from kernsim.explore.search import SearchConfig, explore

#: Appended to a copy of the page: what the page shows, once everything has loaded,
#: written into <body data-check="..."> for --dump-dom to print.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => ({alt: i.alt, w: i.naturalWidth}));
  const tables = [...document.querySelectorAll("table.diagram")].map(t => ({
    cols: t.rows[0].cells.length, rows: t.rows.length}));
  document.body.dataset.check = JSON.stringify({imgs, tables,
    scroll: document.documentElement.scrollWidth, width: window.innerWidth});
});
</script>"""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is missing: apt-get install -y chromium (Debian)")
    return exe


def _run(args: list[str], tmp: Path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'profile'}", "--window-size=1400,2000",
             "--virtual-time-budget=5000"]  # fmt: skip
    proc = subprocess.Popen(
        [chromium(), *flags, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out


def render_check(page: Path, tmp: Path) -> dict[str, object]:
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    dom = _run(["--dump-dom", probe.as_uri()], tmp)
    m = re.search(r'data-check="([^"]*)"', dom)
    assert m, "the page did not finish loading in headless chromium"
    check: dict[str, object] = json.loads(m.group(1).replace("&quot;", '"'))
    return check


def not_blank(page: Path, tmp: Path) -> None:
    shot = tmp / f"{page.parent.name}.png"
    _run([f"--screenshot={shot}", page.as_uri()], tmp)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[1] == 1400
    colours = {tuple(p) for p in pixels[::20, ::20, :3].reshape(-1, 3).round(2).tolist()}
    assert len(colours) > 20, "the screenshot is (nearly) one colour"


def test_explore_report_renders_diagrams_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "explore"
    cfg = SearchConfig("race", "none", "random", schedules=60, jobs=1, out=out,
                       shrink_budget=30)  # fmt: skip
    summary = explore(cfg)
    assert summary["races"], "60 random schedules of race under none found no race"
    page = write_explore_report(out, summary, command="kernsim explore (test)")
    check = render_check(page, tmp_path)
    imgs = check["imgs"]
    assert isinstance(imgs, list) and imgs
    assert all(i["w"] > 0 for i in imgs), f"an image did not decode: {imgs}"
    assert any(i["alt"].startswith("failing schedules") for i in imgs)
    tables = check["tables"]
    assert isinstance(tables, list) and tables
    assert all(t["rows"] > 2 for t in tables)
    assert any(t["cols"] >= 2 for t in tables), "no diagram draws two CPUs"
    assert check["scroll"] <= check["width"], "the page scrolls sideways"
    not_blank(page, tmp_path)


def test_matrix_report_renders_its_table_and_heat_map(tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    m = build_matrix(MatrixConfig(schedules=10, kamezawa_seeds=0, jobs=1))
    page = next(p for p in write_matrix(out, m, command="kernsim matrix (test)")
                if p.name == "index.html")  # fmt: skip
    html = page.read_text(encoding="utf-8")
    assert "`" not in html, "raw Markdown in the page"
    assert 'class="leak"' in html and 'class="pin"' in html
    check = render_check(page, tmp_path)
    imgs = check["imgs"]
    assert isinstance(imgs, list) and [i["alt"] for i in imgs] == ["leak matrix heat map"]
    assert all(i["w"] > 0 for i in imgs)
    assert check["scroll"] <= check["width"]
    not_blank(page, tmp_path)
