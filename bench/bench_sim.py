"""Simulation speed on one core: primitive steps per second and complete `race`
schedules per second, each against a baseline measured in the same process.

Baselines:
- steps: a bare Python loop that calls one primitive function directly on the
  state (no scheduler, no trace): what a step would cost with no simulation at all;
- schedules: the same `race` schedule with the trace kept in memory vs not kept.

Writes bench/results/sim.json; BENCHMARKS.md quotes it.

    python bench/bench_sim.py [--schedules N]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from kernsim.model.filemap import trylock_page, unlock_page
from kernsim.model.mm import MmConfig, MmState
from kernsim.model.page_alloc import alloc_page
from kernsim.sim.run import simulate

OUT = Path(__file__).parent / "results" / "sim.json"


def bare_primitive_rate(n: int = 200_000) -> float:
    """Primitive calls per second with no engine: the floor a step cannot beat."""
    mm = MmState(MmConfig())
    pfn, _ = alloc_page(mm, False)
    t0 = time.perf_counter()
    for _ in range(n // 2):
        trylock_page(mm, pfn)
        unlock_page(mm, pfn)
        mm.woken.clear()
    return n / (time.perf_counter() - t0)


def schedules(n: int, keep_trace: bool) -> tuple[float, int]:
    t0 = time.perf_counter()
    steps = 0
    for seed in range(n):
        steps += simulate("race", "none", seed, keep_trace=keep_trace).events
    return n / (time.perf_counter() - t0), steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=300)
    args = ap.parse_args()
    bare = bare_primitive_rate()
    rate_kept, steps = schedules(args.schedules, keep_trace=True)
    rate, _ = schedules(args.schedules, keep_trace=False)
    t0 = time.perf_counter()
    k = simulate("kamezawa", "none", 1, keep_trace=False)
    kamezawa_s = time.perf_counter() - t0
    steps_per_schedule = steps / args.schedules
    result = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "bare_primitive_calls_per_s": round(bare),
        "sim_steps_per_s": round(rate * steps_per_schedule),
        "sim_step_cost_vs_bare_call": round(bare / (rate * steps_per_schedule), 1),
        "race_steps_per_schedule": round(steps_per_schedule, 1),
        "race_schedules_per_s_one_core": round(rate, 1),
        "race_schedules_per_s_trace_kept": round(rate_kept, 1),
        "trace_keeping_cost_ratio": round(rate / rate_kept, 2),
        "race_100k_schedules_minutes_two_cores": round(100_000 / (2 * rate) / 60, 1),
        "kamezawa_run_s": round(kamezawa_s, 2),
        "kamezawa_steps": k.events,
        "kamezawa_steps_per_s": round(k.events / kamezawa_s),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
