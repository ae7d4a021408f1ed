"""How much does judging a message cost? ns per FaultModel.on_send.

Every simulated RPC goes through on_send, so its cost bounds how many
schedules per minute the explorer can run. Numbers are ratios against a bare
four-argument function call measured in the same process, so they compare
across machines; absolute ns are printed too.

    python bench/bench_faults.py [--n 200000] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import timeit
from collections.abc import Callable

from kernsim.faults import DelayQueue, FaultModel, Profile, load_profile

SERVICES = ("mm", "memcg", "blockdev", "vmscan", "workqueue", "tasks")
MSG_TYPES = ("swap_duplicate", "add_to_swap_cache", "trylock_page", "unlock_page")


def baseline(src: str, dest: str, msg_type: str, now_s: float) -> None:
    """The floor: a plain Python call with the same arguments."""


def bench_call(fn: Callable[[str, str, str, float], object], n: int, repeat: int) -> float:
    """Best-of-`repeat` ns per call of fn over a realistic mix of links."""
    calls = [(SERVICES[i % 6], SERVICES[(i * 5 + 1) % 6], MSG_TYPES[i % 4]) for i in range(1024)]

    def loop() -> None:
        # The clock only moves forward, as in a run; the addition is paid by
        # the baseline too, so it cancels out of the ratio.
        now_s = 0.0
        for _ in range(n // len(calls)):
            for src, dest, msg_type in calls:
                now_s += 1e-4
                fn(src, dest, msg_type, now_s)

    total = (n // len(calls)) * len(calls)
    return min(timeit.repeat(loop, number=1, repeat=repeat)) / total * 1e9


def bench_queue(n: int, repeat: int) -> float:
    """ns per message for on_send + push + pop_ready under the lan profile."""

    def run() -> None:
        model = FaultModel(load_profile("lan"), random.Random(1))
        queue: DelayQueue[int] = DelayQueue(model.controls)
        for i in range(n):
            now_s = i * 1e-4
            verdict = model.on_send("mm", "memcg", "swap_duplicate", now_s)
            queue.push(i, verdict.deliver_at_s, link=("mm", "memcg"))
            queue.pop_ready(now_s)

    return min(timeit.repeat(run, number=1, repeat=repeat)) / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="calls per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers here for docs")
    args = parser.parse_args()

    base_ns = bench_call(baseline, args.n, args.repeat)
    rows = [("bare function call (baseline)", base_ns)]
    rows.append(("on_send, no rules", _on_send_ns(Profile("none"), args)))
    rows.append(("on_send, lan profile", _on_send_ns(load_profile("lan"), args)))
    rows.append(
        ("on_send, reorder-heavy profile", _on_send_ns(load_profile("reorder-heavy"), args))
    )
    rows.append(("on_send+push+pop_ready, lan", bench_queue(args.n, args.repeat)))

    print(f"{'case':<34} {'ns/call':>9} {'x baseline':>11}")
    for name, ns in rows:
        print(f"{name:<34} {ns:>9.0f} {ns / base_ns:>11.1f}")
    if args.json:
        table = [
            {"case": k, "ns_per_call": round(v), "x_baseline": round(v / base_ns, 1)}
            for k, v in rows
        ]
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(table, out, indent=2)


def _on_send_ns(profile: Profile, args: argparse.Namespace) -> float:
    model = FaultModel(profile, random.Random(1))
    return bench_call(model.on_send, args.n, args.repeat)


if __name__ == "__main__":
    main()
