"""Explorer benchmarks: schedules/s, schedules to the first failure, shrinking cost.

python bench/bench_explore.py  ->  bench/results/explore.json

The determinism self-check (10,000 schedules run twice) is a one-off figure,
measured by ``kernsim explore --check-determinism`` (see BENCHMARKS.md)
and read from bench/results/explore-determinism.json when present.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kernsim.explore.executors import run_all
from kernsim.explore.job import Job, run_schedule
from kernsim.explore.shrink import shrink

RESULTS = Path(__file__).parent / "results"
RATE_SCHEDULES = 2000
FIRST_RUNS = 20
FIRST_BUDGET = 300  # schedules per run before "not found"


def rate(n: int, jobs: int) -> float:
    jobs_ = [Job("race", "none", s, "random", index=s) for s in range(n)]
    start = time.perf_counter()
    for _ in run_all(run_schedule, jobs_, jobs):
        pass
    return n / (time.perf_counter() - start)


def profile_one() -> list[str]:
    prof = cProfile.Profile()
    prof.enable()
    for s in range(20):
        run_schedule(Job("race", "none", s, "random"))
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(8)
    return [ln.strip() for ln in out.getvalue().splitlines() if "(" in ln and "}" not in ln][:8]


def first_failure(item: tuple[str, str, int]) -> int | None:
    """Schedules until the first failure of one search run (seeds apart per run)."""
    variant, strategy, run = item
    steps = 2000 if strategy == "pct" else 0
    for i in range(FIRST_BUDGET):
        o = run_schedule(Job("race", variant, run * 100_000 + i, strategy, steps=steps))
        if o.failed:
            return i + 1
    return None


def first_failures(variant: str, strategy: str) -> dict[str, Any]:
    items = [(variant, strategy, r) for r in range(FIRST_RUNS)]
    found = list(run_all(first_failure, items, 2))
    hits = sorted(x for x in found if x is not None)
    # A run that found nothing counts as "beyond the budget" for the median.
    padded = sorted([*hits, *[FIRST_BUDGET + 1] * (len(found) - len(hits))])
    median = statistics.median(padded)
    return {
        "runs": FIRST_RUNS,
        "budget": FIRST_BUDGET,
        "found": len(hits),
        "median": median if median <= FIRST_BUDGET else f"not found within {FIRST_BUDGET}",
        "each": found,
    }


def shrink_costs() -> list[dict[str, Any]]:
    out = []
    for seed in range(60):
        job = Job("race", "none", seed, "random")
        o = run_schedule(job)
        if not o.failed:
            continue
        start = time.perf_counter()
        sh = shrink(replace(job), o)
        out.append({"seed": seed, "classes": list(o.classes), "runs": sh.runs,
                    "events": [o.events, sh.outcome.events],
                    "switches": [len(o.switches), len(sh.outcome.switches)],
                    "wall_s": round(time.perf_counter() - start, 2)})  # fmt: skip
        if len(out) >= 5:
            break
    return out


def main() -> None:
    res: dict[str, Any] = {}
    res["rate_2_cores"] = round(rate(RATE_SCHEDULES, 2), 1)
    res["rate_1_core"] = round(rate(RATE_SCHEDULES // 4, 1), 1)
    res["minutes_for_100k_on_2_cores"] = round(100_000 / res["rate_2_cores"] / 60, 1)
    res["profile_top_tottime"] = profile_one()
    res["first_failure"] = {
        f"{v}/{s}": first_failures(v, s) for v in ("none", "v5") for s in ("random", "pct")
    }
    res["shrink"] = shrink_costs()
    det = RESULTS / "explore-determinism.json"
    if det.is_file():
        d = json.loads(det.read_text())
        res["determinism"] = {k: d[k] for k in ("schedules_run", "divergences", "elapsed_s")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "explore.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
