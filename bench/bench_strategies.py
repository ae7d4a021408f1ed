"""Schedules to the first failure of each race class, per search strategy.

For each variant and strategy, N consecutive seeds of ``race`` are run once
(every strategy sees the same seeds); a search that starts at seed offset
``o`` finds class C at the first seed >= o (cyclically) whose failure is
classified C.  The figure is the median over 20 offsets spread evenly over the
N seeds; "> N" when fewer than half of the offsets find it.

    python bench/bench_strategies.py [--schedules N] [--jobs J] [--variants none,v5]

Writes bench/results/strategies.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from kernsim.explore.executors import run_all
from kernsim.explore.job import WINDOW_S, run_schedule
from kernsim.explore.search import SearchConfig, estimate_steps, make_jobs

OFFSETS = 20
OUT = Path(__file__).parent / "results" / "strategies.json"


def first_hits(classes: list[tuple[str, ...]], cls: str) -> list[int | None]:
    n = len(classes)
    hits = [i for i, c in enumerate(classes) if cls in c]
    out: list[int | None] = []
    for k in range(OFFSETS):
        start = k * n // OFFSETS
        after = [h - start + 1 for h in hits if h >= start] + [h + n - start + 1 for h in hits]
        out.append(min(after) if after else None)
    return out


def median(hits: list[int | None], n: int) -> float | str:
    found = sorted(h for h in hits if h is not None)
    if len(found) * 2 < len(hits):
        return f"> {n}"
    # Offsets that never found it count as larger than everything found.
    padded = found + [n + 1] * (len(hits) - len(found))
    return statistics.median(padded)


def measure(variant: str, strategy: str, n: int, jobs: int, window_s: float) -> dict[str, object]:
    cfg = SearchConfig("race", variant, strategy, n, jobs, window_s=window_s)
    steps = estimate_steps(cfg) if strategy in ("pct", "cpct") else 0
    todo = make_jobs(cfg, steps)
    t0 = time.perf_counter()
    outs = list(run_all(run_schedule, todo, jobs))
    wall = time.perf_counter() - t0
    classes = [o.classes if o.failed else () for o in outs]
    found = sorted({c for cs in classes for c in cs})
    per_class = {c: median(first_hits(classes, c), n) for c in found}
    any_fail = [("any",) if cs else () for cs in classes]
    return {
        "variant": variant,
        "strategy": strategy,
        "schedules": n,
        "failing": sum(1 for c in classes if c),
        "any": median(first_hits(any_fail, "any"), n),
        "per_class": per_class,
        "per_class_count": {c: sum(1 for cs in classes if c in cs) for c in found},
        "window_us": round(window_s * 1e6),
        "wall_s": round(wall, 1),
    }


def render(rows: list[dict[str, object]]) -> str:
    """BENCHMARKS.md's tables: per variant, one row per class, one column per strategy."""
    out = []
    for variant in dict.fromkeys(str(r["variant"]) for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        strategies = [str(r["strategy"]) for r in mine]
        classes = sorted({c for r in mine for c in r["per_class"]})  # type: ignore[attr-defined]
        out += [f"`{variant}`:", "", "| class | " + " | ".join(f"`{s}`" for s in strategies) + " |",
                "|---" * (len(strategies) + 1) + "|"]  # fmt: skip
        cells = [f"{r['any']} ({r['failing']})" for r in mine]
        out.append("| any failure | " + " | ".join(cells) + " |")
        for c in classes:
            row = []
            for r in mine:
                per, count = r["per_class"], r["per_class_count"]
                row.append(f"{per[c]} ({count[c]})" if c in per else "not found")  # type: ignore[operator,index]
            out.append(f"| {c} | " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--variants", default="none,v5")
    ap.add_argument("--window-us", type=float, default=WINDOW_S * 1e6)
    ap.add_argument("--strategies", default="swarm,random,pos,pct,cpct")
    ap.add_argument("--render", action="store_true", help="print the tables of the last run")
    ap.add_argument("--merge", action="store_true",
                    help="keep the last run's rows of what was not run")  # fmt: skip
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(OUT.read_text())["rows"]))
        return
    rows = []
    for variant in args.variants.split(","):
        for strategy in args.strategies.split(","):
            row = measure(variant, strategy, args.schedules, args.jobs, args.window_us * 1e-6)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.merge and OUT.exists():
        # The last run's rows in their order, the new ones in place of theirs.
        kept = {(r["variant"], r["strategy"]): r for r in json.loads(OUT.read_text())["rows"]}
        kept.update({(r["variant"], r["strategy"]): r for r in rows})
        rows = sorted(kept.values(), key=lambda r: str(r["variant"]) != "none")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"offsets": OFFSETS, "machine": "2 cores, shared (loaded)",
                               "rows": rows}, indent=1) + "\n")  # fmt: skip
    print(render(rows))


if __name__ == "__main__":
    main()
