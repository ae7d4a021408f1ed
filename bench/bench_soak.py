"""Soak: the cluster under the kamezawa workload with faults, for minutes, sampled.

Every ``--interval`` seconds it records the kernel operations per second of
the whole cluster (mm + memcg primitives) and each service's resident
memory; the workload is restarted whenever it ends, so the load never
stops.  Samples go to a JSON-lines file as they are taken (a crash loses
nothing already sampled); the summary (per service: RSS at the start and end
of the steady part, least-squares slope in MiB per minute; ops/s mean and
slope) goes to ``--json``.  The first ``--warmup`` seconds are left out of the
drift figures: allocators and caches grow once, then must stay flat.

    python bench/bench_soak.py [--duration 600] [--interval 5] [--faults cluster-hdd]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from kernsim.services.launch.cluster import Cluster
from kernsim.services.launch.records import RecordWriter, read_records, rss_bytes
from kernsim.services.runtime.config import SERVICES

MIB = 1 << 20


def slope_per_min(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (seconds), per minute."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def sample(cluster: Cluster, t0: float, last: dict[str, float]) -> dict[str, Any]:
    stats = await cluster.statistics()
    ops = stats["mm"]["ops"] + stats["memcg"]["ops"]
    now = time.monotonic()
    rate = (ops - last["ops"]) / (now - last["t"]) if last["t"] else 0.0
    last.update(ops=ops, t=now)
    rss = {n: (rss_bytes(p.pid) or 0) / MIB for n, p in cluster.procs.items()}
    return {
        "t_s": round(now - t0, 2),
        "ops": ops,
        "ops_per_s": round(rate, 1),
        "rss_mib": {n: round(v, 2) for n, v in rss.items()},
        "in_flight": {n: stats[n]["node"]["in_flight"] for n in SERVICES},
        # mm's model state: pages it holds (the leak's stale pages among them), so that
        # mm's RSS can be read against what the modelled kernel keeps.
        "mm_pages": stats["mm"]["mm"]["pages_allocated"],
        "mm_swapcache_pages": stats["mm"]["mm"]["swapcache_pages"],
        "mm_stale_swapcache_pages": stats["mm"]["stale_swapcache_pages"],
    }


async def soak(args: argparse.Namespace, out: RecordWriter) -> None:
    cluster = Cluster(variant=args.variant, scenario="kamezawa", faults=args.faults, seed=1)
    out.write("config", **{k: v for k, v in vars(args).items() if k not in ("samples", "json")})
    try:
        await cluster.start()
        t0 = time.monotonic()
        last = {"ops": 0.0, "t": 0.0}
        rounds = 0
        while time.monotonic() - t0 < args.duration:
            status = await cluster.rpc("tasks", "quiesce_status")
            if not status["workload"]:
                await cluster.rpc("tasks", "kill_all")
                body = {"scenario": "kamezawa", "duration_s": float(args.round_s), "seed": rounds}
                await cluster.rpc("tasks", "start_workload", body)
                rounds += 1
            out.write("sample", round=rounds, **await sample(cluster, t0, last))
            await asyncio.sleep(args.interval)  # the sampling period itself, not a wait for a state
    finally:
        await cluster.stop()


def summarize(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    steady = [s for s in samples if s["t_s"] >= warmup_s and s["ops_per_s"] > 0]
    ts = [s["t_s"] for s in steady]
    out: dict[str, Any] = {"samples": len(samples), "steady_samples": len(steady)}
    if not steady:
        return out
    rates = [s["ops_per_s"] for s in steady]
    out["ops_per_s"] = {
        "mean": round(statistics.fmean(rates)),
        "min": round(min(rates)),
        "max": round(max(rates)),
        "slope_per_min": round(slope_per_min(ts, rates), 1),
    }
    out["rss_mib"] = {}
    # Levels off: the slope over the second half of the steady part, beside the whole.
    half = [i for i, t in enumerate(ts) if t >= (ts[0] + ts[-1]) / 2]
    for name in SERVICES:
        ys = [s["rss_mib"][name] for s in steady]
        out["rss_mib"][name] = {
            "start": ys[0],
            "end": ys[-1],
            "max": max(ys),
            "slope_mib_per_min": round(slope_per_min(ts, ys), 4),
            "second_half_slope_mib_per_min": round(
                slope_per_min([ts[i] for i in half], [ys[i] for i in half]), 4
            ),
        }
    if "mm_pages" in steady[0]:
        out["mm_state"] = {
            k: {"start": steady[0][k], "end": steady[-1][k], "max": max(s[k] for s in steady)}
            for k in ("mm_pages", "mm_swapcache_pages", "mm_stale_swapcache_pages")
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=60.0)
    p.add_argument("--round-s", type=float, default=60.0, help="workload length per round")
    p.add_argument("--faults", default="cluster-hdd")
    p.add_argument("--variant", default="none")
    p.add_argument("--samples", default="bench/results/soak-samples.jsonl")
    p.add_argument("--json", default="bench/results/soak.json")
    a = p.parse_args()
    path = Path(a.samples)
    path.unlink(missing_ok=True)
    with RecordWriter(path, fsync=False) as out:
        asyncio.run(soak(a, out))
    samples = [r for r in read_records(path) if r["kind"] == "sample"]
    summary = {
        "duration_s": a.duration,
        "interval_s": a.interval,
        "warmup_s": a.warmup,
        "faults": a.faults,
        "variant": a.variant,
        **summarize(samples, a.warmup),
    }
    print(json.dumps(summary, indent=2))
    Path(a.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
