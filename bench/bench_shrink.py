"""Shrinking, per race class: kernel events, switches and diagram rows before and after.

One stored failing schedule of each class kernsim knows (scenario, variant, seed,
strategy, window: failures of the searches documented in BENCHMARKS.md and
tests/explore/test_classify.py) is shrunk with the default budget; "rows" is the
longest diagram of the run (one per leaked slot), header and verdict lines included.

    python bench/bench_shrink.py [--classes writeback,type-2]

Writes bench/results/shrink.json and prints BENCHMARKS.md's table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from kernsim.explore.diagram import draw_all
from kernsim.explore.job import Job, execute, run_schedule
from kernsim.explore.shrink import shrink

OUT = Path(__file__).parent / "results" / "shrink.json"
#: (class, scenario, variant, seed, strategy, window in seconds): the windows as the
#: failures were found, bit for bit (``kernsim explore --window-us 200`` runs with
#: 200 * 1e-6, which is not 0.0002; tests/explore/test_shrink_rows.py stores the same).
STORED = [
    ("example-a", "race", "none", 3, "random", 0.0002),
    ("example-b", "race", "none", 75, "random", 0.001),
    ("example-b-eexist", "race", "none", 24320, "delay", 0.001),
    ("type-1", "race", "none", 445, "random", 0.001),
    ("type-2", "race", "none", 11, "random", 0.0002),
    ("writeback", "race", "none", 1, "pos", 0.0002),
    ("gather-trylock", "race", "v5", 502, "random", 0.001),
    ("v5-write-window", "race", "v5", 58, "delay", 0.001),
    ("v5-read-window", "race", "v5", 1379, "pos", 0.001),
    ("v5-hole", "race", "v5", 48, "random", 0.001),
    ("reuse-window", "race", "upstream", 197, "random", 0.0002),
    ("threads-zap-swapin", "race-threads", "none", 7, "delay", 0.0002),
    ("readahead-eexist", "race", "none", 252, "delay", 200 * 1e-6),
    ("zap-delete-window", "race-fork", "none", 1214, "delay", 0.001),
    ("fork-cow-zap", "race-fork", "none", 324, "random", 200 * 1e-6),
    ("fork-cow-both", "race-fork", "none", 1078, "pos", 0.001),
    ("fork-cow-type-2", "race-fork", "none", 1163, "pos", 200 * 1e-6),
    ("fork-zap-gather", "race-fork", "none", 5669, "delay", 0.001),
    ("fork-cow-reclaim", "race-fork", "none", 14201, "delay", 0.001),
]


def rows(job: Job) -> int:
    return max(len(d.splitlines()) for _, d in draw_all(execute(job)))


def measure(
    cls: str, scenario: str, variant: str, seed: int, strategy: str, window_s: float
) -> dict[str, Any]:
    job = Job(scenario, variant, seed, strategy, window_s=window_s)
    o = run_schedule(job)
    t0 = time.process_time()
    sh = shrink(job, o)
    cpu = time.process_time() - t0
    return {
        "class": cls, "scenario": scenario, "variant": variant, "seed": seed,
        "strategy": strategy, "window_us": round(window_s * 1e6), "window_s": window_s,
        "classes": list(o.classes),
        "shrunk_classes": list(sh.outcome.classes), "kinds": list(o.kinds),
        "shrunk_kinds": list(sh.outcome.kinds), "events": [o.events, sh.outcome.events],
        "switches": [len(o.switches), len(sh.outcome.switches)],
        "rows": [rows(job), rows(sh.job)], "attempts": sh.runs,
        "params": dict(sh.job.params), "cpu_s": round(cpu, 1),
    }  # fmt: skip


def render(results: list[dict[str, Any]]) -> str:
    out = ["| class | schedule (variant, seed, strategy, window) | events | switches | "
           "diagram rows | attempts |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        ev, sw, rw = r["events"], r["switches"], r["rows"]
        where = f"{r['scenario']}/{r['variant']}, {r['seed']}, {r['strategy']}, {r['window_us']} us"
        out.append(f"| {r['class']} | {where} | {ev[0]} -> {ev[1]} | {sw[0]} -> {sw[1]} | "
                   f"{rw[0]} -> {rw[1]} | {r['attempts']} |")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", default="", help="comma-separated (default: all)")
    ap.add_argument("--render", action="store_true", help="print the table of the last run")
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(OUT.read_text())["rows"]))
        return
    want = set(filter(None, args.classes.split(",")))
    results = []
    for item in STORED:
        if want and item[0] not in want:
            continue
        r = measure(*item)
        print(json.dumps(r), flush=True)
        results.append(r)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": "2 cores, shared (loaded)", "rows": results},
                              indent=1) + "\n")  # fmt: skip
    print(render(results))


if __name__ == "__main__":
    main()
