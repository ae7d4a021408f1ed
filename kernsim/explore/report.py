"""Reports for ``--out DIR``: a PNG of failures found over schedules run, and one
self-contained HTML page (no external assets: the plot is inlined)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any


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


def _img(path: Path) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _coverage(out: Path, summary: dict[str, Any]) -> str:
    png = summary.get("coverage_png")
    return f"<h2>Racing pairs covered</h2>{_img(out / png)}" if png else ""


def write_explore_report(out: Path, summary: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    png = out / "failures.png"
    plot_failures(png, {summary["strategy"]: summary["failures_curve"]}, summary["schedules_run"])
    keys = ["scenario", "variant", "strategy", "schedules_run", "failures", "livelocks",
            "first_failure_at", "schedules_per_s", "divergences"]  # fmt: skip
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(summary[k]))}</td></tr>" for k in keys)
    races = "".join(
        f"<h3>{html.escape(r['class'])} &times;{r['count']} ({html.escape(', '.join(r['kinds']))})"
        f"</h3><pre>{html.escape(r.get('diagram', r.get('detail', '')))}</pre>"
        + (_img(out / r["usage_plot"]) if r.get("usage_plot") else "")
        for r in summary["races"]
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>kernsim explore</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{font-size:12px;background:#f6f6f6;"
        "padding:1em;overflow-x:auto}td,th{text-align:left;padding:2px 8px}</style></head><body>"
        f"<h1>kernsim explore: {html.escape(summary['scenario'])} under "
        f"{html.escape(summary['variant'])}</h1><h2>Summary</h2><table>{rows}</table>"
        f"<h2>Failures over schedules run</h2>{_img(png)}"
        + _coverage(out, summary)
        + f"<h2>Races</h2>{races}</body></html>"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
