"""Reports for ``--out DIR``: a PNG of failures found over schedules run, and one
self-contained HTML page (no external assets: the plots are inlined), made from the
Jinja2 templates in ``kernsim/explore/templates``."""

from __future__ import annotations

import base64
import datetime
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from kernsim import version
from kernsim.explore.patterns import CLASSES

#: One sentence per race class: what the race is (each pattern's own summary).
RACES = CLASSES | {
    "NEW": "No known race matches: the detail lists the racing pairs of the leaked slot's "
    "last life.",
}


def command_line() -> str:
    return "kernsim " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def header(command: str | None) -> dict[str, str]:
    """What the top of every report says: the command, version, trace identity, date."""
    from kernsim.sim.engine import TRACE_IDENTITY

    ver = version()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"command": command or command_line(), "version": ver,
            "trace_identity": TRACE_IDENTITY, "date": now}  # fmt: skip


def render(template: str, **context: Any) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(template).render(**context)


def plot_failures(path: Path, curves: dict[str, list[tuple[int, int]]], total: int) -> bool:
    """Failures found over schedules run, one line per strategy; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, curve in curves.items():
        xs = [0] + [n for n, _ in curve] + [total]
        ys = [0] + [f for _, f in curve] + [curve[-1][1] if curve else 0]
        ax.step(xs, ys, where="post", label=label)
    ax.set_xlabel("schedules run")
    ax.set_ylabel("failing schedules")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def data_uri(path: Path) -> str:
    if not path.is_file():
        return ""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


_SEPARATOR = re.compile(r"^-+(-\+-+)*$")


def parse_diagrams(text: str) -> list[dict[str, Any]]:
    """The text diagrams of kernsim.explore.diagram back as columns and rows, for an HTML
    table that wraps instead of clipping."""
    lines = text.splitlines()
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not _SEPARATOR.match(line) or i < 1:
            continue
        spans: list[tuple[int, int | None]] = []
        pos = 0
        for dashes in line.split("-+-"):
            spans.append((pos, pos + len(dashes)))
            pos += len(dashes) + 3
        spans[-1] = (spans[-1][0], None)  # the last column runs to the end of its line
        heads = [lines[i - 1][a:b].strip() for a, b in spans]
        title = lines[i - 4] if i >= 4 else ""
        where = lines[i - 3] if i >= 3 else ""
        rows, verdicts = [], []
        for row in lines[i + 1 :]:
            if not row.strip():
                break
            cells = [row[a:b].strip() for a, b in spans]
            race = any(c.endswith("<- race") for c in cells)
            rows.append({"cells": [c.removesuffix("  <- race") for c in cells], "race": race})
        for rest in lines[i + len(rows) + 2 :]:
            if not rest.startswith("=> "):
                break
            verdicts.append(rest[3:])
        out.append({"title": title, "where": where, "heads": heads, "rows": rows,
                    "verdicts": verdicts})  # fmt: skip
    return out


def race_verdict(diagrams: list[dict[str, Any]]) -> str:
    """What the drawn violations of a race say, split as kernsim.check.result splits them."""
    lines = [v for d in diagrams for v in d["verdicts"]]
    if not lines:
        return "not drawn"
    if any(v.startswith("memsw_leak") for v in lines):
        return "LEAK: memsw leak"
    by_design = ("[memcg reclaim gives it back]", "[scan_swap_map() reuses it]")
    pins = [v for v in lines if v.startswith("swap_slot_in_use")]
    if any(not any(b in v for b in by_design) for v in pins):
        return "LEAK: a slot only global reclaim gives back"
    if len(pins) < len(lines):
        return "VIOLATED: another invariant"
    return "pinned: the variant gives the slots back by design"


def _race(out: Path, r: dict[str, Any]) -> dict[str, Any]:
    classes = str(r["class"]).split("+")
    sentence = " ".join(RACES.get(c, "") for c in classes).strip()
    shrunk = ""
    if "events" in r:
        shrunk = (f"shrunk: {r['events_before_shrinking']} -> {r['events']} kernel events, "
                  f"{r['switches_before_shrinking']} -> {r['switches']} switches, "
                  f"{r['shrink_attempts']} shrink attempts")  # fmt: skip
    replay = r.get("replay")
    diagrams = parse_diagrams(r.get("diagram", ""))
    return {
        "verdict": race_verdict(diagrams),
        "cls": r["class"] + (f": {r['detail']}" if r.get("detail") else ""),
        "count": r["count"],
        "kinds": ", ".join(r["kinds"]),
        "sentence": sentence,
        "shrunk": shrunk,
        "replay": replay,
        "diagrams": diagrams,
        "usage_png": data_uri(out / r["usage_plot"]) if r.get("usage_plot") else "",
    }


def _summary_rows(s: dict[str, Any]) -> list[tuple[str, Any]]:
    first = s.get("first_failure_at")
    return [
        ("schedules run", s["schedules_run"]),
        ("strategy", s["strategy"] + (f" (depth {s['depth']})" if s.get("depth") else "")),
        ("window", f"{s['window_s'] * 1e6:g} us" if s.get("window_s") is not None else "-"),
        ("failing schedules", s["failures"]),
        ("livelocked", s["livelocks"]),
        ("first failure at schedule", "none" if first is None else f"#{first}"),
        ("schedules per second", s["schedules_per_s"]),
        ("determinism divergences", s["divergences"]),
    ]


def _coverage_rows(coverage: Any, curve: Any) -> list[tuple[str, Any]]:
    """The search's coverage, when the summary carries it."""
    rows: list[tuple[str, Any]] = []
    if isinstance(coverage, dict):
        rows += [(str(k).replace("_", " "), v) for k, v in coverage.items()]
    elif coverage is not None:
        rows.append(("coverage", coverage))
    if isinstance(curve, list) and curve:
        rows.append(("coverage after the last schedule", curve[-1]))
    return rows


def write_explore_report(out: Path, summary: dict[str, Any], command: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    png = out / "failures.png"
    plotted = plot_failures(png, {summary["strategy"]: summary["failures_curve"]},
                            summary["schedules_run"])  # fmt: skip
    coverage = summary.get("coverage")
    page = render(
        "explore.html.j2",
        title=f"kernsim explore: {summary['scenario']} under {summary['variant']}",
        s=summary,
        summary_rows=_summary_rows(summary),
        failures_png=data_uri(png) if plotted else "",
        coverage=_coverage_rows(coverage, summary.get("coverage_curve")),
        coverage_png=data_uri(out / summary["coverage_png"]) if summary.get("coverage_png") else "",
        races=[_race(out, r) for r in summary["races"]],
        **header(command),
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
