"""The leak matrix as Markdown, JSON and a PNG (``kernsim matrix --out DIR``)."""

from __future__ import annotations

import html
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


def to_markdown(m: dict[str, Any]) -> str:
    cols = m["columns"]
    lines = [
        "# Leak matrix",
        "",
        f"`race`: {m['schedules']} {m['strategy']} schedules per column (seeds "
        f"{m['first_seed']}..{m['first_seed'] + m['schedules'] - 1}, the same in every "
        f"column); `kamezawa`: {m['kamezawa_seeds']} seeds; catalogue races: one scripted "
        f"run each.  Buckets: leak = memsw.usage > usage after every task is gone; "
        f"pin = no memsw leak but swap slots still in use; other = another invariant or "
        f"a livelock; clean.  Took {m['elapsed_s']} s.",
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


def plot_matrix(path: Path, m: dict[str, Any]) -> bool:
    """A heat map: the share of runs that leak memsw or pin a slot, counts written in."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cols, rows = m["columns"], m["rows"]
    share = [[_bad_share(r["cells"][c]) for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(2.2 + 1.9 * len(cols), 1.0 + 0.55 * len(rows)))
    ax.imshow(share, cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            cell = r["cells"][c]
            text = f"leak {cell['memsw_leak']}\npin {cell['slot_pinned']}\n/{cell['runs']}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if share[i][j] > 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(cols)), [c.replace(", ", "\n") for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), [r["workload"] for r in rows], fontsize=8)
    ax.set_title("runs that leak memsw or pin a swap slot", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _bad_share(cell: dict[str, Any]) -> float:
    runs = cell["runs"]
    return (cell["memsw_leak"] + cell["slot_pinned"]) / runs if runs else 0.0


def write_matrix(out: Path, m: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "matrix.md", out / "matrix.json", out / "matrix.png"]
    paths[0].write_text(to_markdown(m), encoding="utf-8")
    paths[1].write_text(json.dumps(m, indent=1) + "\n", encoding="utf-8")
    if not plot_matrix(paths[2], m):
        paths.pop()
    paths.append(out / "index.html")
    paths[-1].write_text(to_html(to_markdown(m), out / "matrix.png"), encoding="utf-8")
    return paths


def to_html(markdown: str, png: Path) -> str:
    """The matrix as one self-contained page: its tables, its text, the heat map inlined."""
    from kernsim.explore.report import _img

    body: list[str] = []
    table: list[list[str]] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        if table:
            head, *rows = table
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                        + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>"
                                                             for c in r) + "</tr>" for r in rows)
                        + "</table>")  # fmt: skip
            table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>kernsim matrix</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}table{border-collapse:collapse;margin:1em 0}</style>"
        f"</head><body>{''.join(body)}{_img(png)}</body></html>"
    )
