"""`race` schedules per second through the whole explorer (search, classification,
coverage, shrinking and reports), the default strategy, both cores: the basis of
the 100,000-schedule estimate.

    python bench/bench_search_rate.py [--schedules N] [--jobs J]

Writes bench/results/search-rate.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kernsim.explore.search import SearchConfig, explore

OUT = Path(__file__).parent / "results" / "search-rate.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = SearchConfig("race", "none", "swarm", args.schedules, args.jobs, out=Path(out))
        t0 = time.perf_counter()
        s = explore(cfg)
        total = time.perf_counter() - t0
    search_s = s["elapsed_s"]
    rate = args.schedules / search_s
    shrink_s = total - search_s
    result = {
        "machine": "2 cores, shared (loaded)",
        "schedules": args.schedules,
        "jobs": args.jobs,
        "search_s": round(search_s, 1),
        "shrink_and_report_s": round(shrink_s, 1),
        "total_s": round(total, 1),
        "search_schedules_per_s": round(rate, 1),
        "races_shrunk": len(s["races"]),
        "coverage": s["coverage"],
        # Shrinking is per distinct race (at most 8), not per schedule: it does not grow
        # with the number of schedules.
        "estimate_100k_minutes": round((100_000 / rate + shrink_s) / 60, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
