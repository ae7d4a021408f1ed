"""The leak matrix as Markdown, JSON and a PNG (``kernsim matrix --out DIR``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kernsim.explore.matrix import BUCKETS

SHORT = {"memsw_leak": "leak", "slot_pinned": "pin", "other": "other", "clean": "clean"}


def verdict(cell: dict[str, Any]) -> str:
    """One cell in words: a single run says what happened, many runs are counted."""
    if cell["runs"] == 0:
        return "-"
    if cell["runs"] == 1:
        if cell["errors"]:
            return f"n/a ({str(cell['errors'][0]).split(':')[0]})"
        word: str = next(SHORT[b] for b in BUCKETS if cell[b])
        return {"leak": "memsw LEAK", "pin": "slot pinned"}.get(word, word)
    parts = [f"{SHORT[b]} {cell[b]}" for b in BUCKETS if cell[b]]
    return " · ".join(parts) + f" /{cell['runs']}"


def _classes(cell: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in cell["classes"].items())


def _intro(m: dict[str, Any]) -> str:
    return (
        f"race: {m['schedules']} {m['strategy']} schedules per column (seeds "
        f"{m['first_seed']}..{m['first_seed'] + m['schedules'] - 1}, the same in every "
        f"column); kamezawa: {m['kamezawa_seeds']} seeds; catalogue races: one scripted "
        f"run each.  Buckets: leak = memsw.usage > usage after every task is gone; "
        f"pin = no memsw leak but swap slots still in use; other = another invariant or "
        f"a livelock; clean.  Took {m['elapsed_s']} s."
    )


def to_markdown(m: dict[str, Any]) -> str:
    cols = m["columns"]
    lines = [
        "# Leak matrix",
        "",
        _intro(m),
        "",
        "| workload | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in m["rows"]:
        cells = [verdict(row["cells"][c]) for c in cols]
        lines.append(f"| {row['workload']} | " + " | ".join(cells) + " |")
    lines += ["", "Race classes of the failing runs:", ""]
    lines += ["| workload | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for row in m["rows"]:
        cells = [_classes(row["cells"][c]) or "-" for c in cols]
        lines.append(f"| {row['workload']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: Cell colours: a memsw leak and a pinned slot tell apart at a glance.
COLOURS = {"memsw_leak": "#e05040", "slot_pinned": "#f2b233", "other": "#9aa4d6",
           "clean": "#d9f2d9", "none": "#ffffff"}  # fmt: skip
CSS = {"memsw_leak": "leak", "slot_pinned": "pin", "other": "other", "clean": "clean", "none": ""}


def worst(cell: dict[str, Any]) -> str:
    """The bucket that colours a cell: the worst one any run of it fell in."""
    return next((b for b in BUCKETS if cell.get(b)), "none")


def label(cell: dict[str, Any]) -> str:
    """``LEAK 12/200``, ``pin 45/200``, ``clean``: the worst bucket and its count."""
    b = worst(cell)
    if b == "none" or cell["runs"] == 0:
        return "-"
    if b == "clean":
        return "clean"
    word = {"memsw_leak": "LEAK", "slot_pinned": "pin", "other": "other"}[b]
    return word if cell["runs"] == 1 else f"{word} {cell[b]}/{cell['runs']}"


def plot_matrix(path: Path, m: dict[str, Any]) -> bool:
    """A grid coloured by each cell's worst bucket (leak red, pin amber), labelled, with a
    legend."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import to_rgb
        from matplotlib.patches import Patch
    except ImportError:
        return False
    cols, rows = m["columns"], m["rows"]
    grid = [[to_rgb(COLOURS[worst(r["cells"][c])]) for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(2.4 + 1.9 * len(cols), 1.6 + 0.55 * len(rows)))
    ax.imshow(grid, aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = r["cells"][c]
            ax.text(j, i, label(cell), ha="center", va="center", fontsize=8,
                    color="white" if worst(cell) == "memsw_leak" else "black")  # fmt: skip
    ax.set_xticks(range(len(cols)), [c.replace(", ", "\n") for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), [r["workload"] for r in rows], fontsize=8)
    handles = [Patch(color=COLOURS[b], label=w) for b, w in
               (("memsw_leak", "memsw leak"), ("slot_pinned", "slot pinned, no memsw leak"),
                ("other", "other invariant"), ("clean", "clean"))]  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12),
              ncol=4, frameon=False)  # fmt: skip
    ax.set_title("worst outcome per cell (count of runs in it / runs)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_matrix(out: Path, m: dict[str, Any], command: str | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "matrix.md", out / "matrix.json", out / "matrix.png"]
    paths[0].write_text(to_markdown(m), encoding="utf-8")
    paths[1].write_text(json.dumps(m, indent=1) + "\n", encoding="utf-8")
    if not plot_matrix(paths[2], m):
        paths.pop()
    paths.append(out / "index.html")
    paths[-1].write_text(to_html(m, out / "matrix.png", command), encoding="utf-8")
    return paths


def to_html(m: dict[str, Any], png: Path, command: str | None = None) -> str:
    """The matrix as one self-contained page, from the data (not from its Markdown)."""
    from kernsim.explore.report import RACES, data_uri, header, render

    cols = m["columns"]
    rows = [
        {"workload": row["workload"],
         "cells": [{"text": verdict(row["cells"][c]), "css": CSS[worst(row["cells"][c])],
                    "classes": _classes(row["cells"][c]) or "-"} for c in cols]}
        for row in m["rows"]
    ]  # fmt: skip
    return render("matrix.html.j2", title="kernsim matrix", intro=_intro(m), columns=cols,
                  rows=rows, sentences=list(RACES.items()), png=data_uri(png),
                  **header(command))  # fmt: skip
