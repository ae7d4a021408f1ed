"""`race` schedules per second through the whole explorer (search, classification,
coverage, shrinking and reports), the default strategy, both cores: the basis of
the 100,000-schedule estimate.

    python bench/bench_search_rate.py [--schedules N] [--jobs J]

Writes bench/results/search-rate.json.  The machine is shared, so besides the
wall-clock times the CPU time of this process and its workers is measured for
each phase: the estimate for an idle 2-core machine divides it by the cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from kernsim.explore import search
from kernsim.explore.search import SearchConfig, explore

OUT = Path(__file__).parent / "results" / "search-rate.json"


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the pool's workers:
    a pool is shut down, and its workers waited for, at the end of each phase)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    marks: dict[str, float] = {}
    shrink = search._shrink_races

    def timed_shrink(*a: Any) -> Any:  # the search phase ends where shrinking begins
        marks["search_cpu_end"] = cpu_s()
        return shrink(*a)

    search._shrink_races = timed_shrink  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as out:
        cfg = SearchConfig("race", "none", "swarm", args.schedules, args.jobs, out=Path(out))
        cpu0 = cpu_s()
        t0 = time.perf_counter()
        s = explore(cfg)
        total = time.perf_counter() - t0
        cpu1 = cpu_s()
    search_s = s["elapsed_s"]
    rate = args.schedules / search_s
    shrink_s = total - search_s
    search_cpu = marks["search_cpu_end"] - cpu0
    shrink_cpu = cpu1 - marks["search_cpu_end"]
    cores = 2
    result = {
        "machine": "2 cores, shared (loaded: wall-clock figures vary with the load)",
        "schedules": args.schedules,
        "jobs": args.jobs,
        "search_s": round(search_s, 1),
        "shrink_and_report_s": round(shrink_s, 1),
        "total_s": round(total, 1),
        "search_schedules_per_s": round(rate, 1),
        "races": len(s["races"]),
        "races_shrunk": sum(1 for r in s["races"] if "shrink_attempts" in r),
        "coverage": s["coverage"],
        # Shrinking is per distinct race (at most 8), not per schedule: it does not grow
        # with the number of schedules.
        "estimate_100k_minutes": round((100_000 / rate + shrink_s) / 60, 1),
        "search_cpu_ms_per_schedule": round(1000 * search_cpu / args.schedules, 2),
        "shrink_and_report_cpu_s": round(shrink_cpu, 1),
        "estimate_100k_minutes_idle_2_cores": round(
            (100_000 * search_cpu / args.schedules + shrink_cpu) / cores / 60, 1
        ),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
