"""Systematic search on the window scenarios: schedules, pruning and seconds.

For each window scenario, variant and preemption bound K, one
``kernsim explore --strategy systematic --preemptions K`` run; also the same
with partial-order reduction off, for the pruning it saves.

    python bench/bench_systematic.py [--jobs J] [--budget N]

Writes bench/results/systematic.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kernsim.explore.search import SearchConfig, explore

OUT = Path(__file__).parent / "results" / "systematic.json"
RUNS = [
    ("tiny-readers", "none", 4),
    ("window-type-2", "none", 2),
    ("window-type-2", "upstream", 2),
    ("window-example-a", "none", 2),
    ("window-example-a", "v5", 2),
    ("window-example-a", "upstream", 2),
    ("window-readahead", "none", 1),
    ("window-readahead", "v5", 1),
    ("window-readahead", "upstream", 1),
    ("window-readahead", "none", 2),
]


def one(
    scenario: str, variant: str, k: int, por: bool, jobs: int, budget: int
) -> dict[str, object]:
    cfg = SearchConfig(scenario, variant, "systematic", schedules=budget, jobs=jobs,
                       preemptions=k, por=por, shrink_budget=0)  # fmt: skip
    t0 = time.perf_counter()
    s = explore(cfg)
    return {
        "scenario": scenario,
        "variant": variant,
        "preemptions": k,
        "por": por,
        "complete": s["complete"],
        "schedules_run": s["schedules_run"],
        "pruned": s["pruned"],
        "failures": s["failures"],
        "classes": sorted({r["class"] for r in s["races"]}),
        "kinds": sorted({k for r in s["races"] for k in r["kinds"]}),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--budget", type=int, default=20_000)
    args = ap.parse_args()
    rows = []
    for scenario, variant, k in RUNS:
        for por in (True, False):
            if not por and scenario == "window-readahead" and k == 2:
                continue  # about 10x the schedules: too long for this box
            row = one(scenario, variant, k, por, args.jobs, args.budget)
            print(json.dumps(row), flush=True)
            rows.append(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": "2 cores, shared (loaded)", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
