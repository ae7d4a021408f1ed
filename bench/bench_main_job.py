"""The README's main job, run again and again: how often it shows the leak, at what load.

Each run is README.md's first `kernsim run` command (with ``--json``), a fresh
cluster each time.  One JSON line per run is appended to ``--out``: the load
average when it started and when it ended (``os.getloadavg()``, 1 min), its
wall time, and for each variant the verdict, memsw leak, load rounds, seconds
of rounds, swap-in reads and what ended it.  ``--summary`` prints the rate over
every line of the file.

    python bench/bench_main_job.py --runs 10 --out bench/results/main-job.jsonl
    python bench/bench_main_job.py --summary --out bench/results/main-job.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEYS = ("verdict", "memsw_leak_bytes", "load_rounds", "load_s", "swapin_reads", "ended")


def main_job() -> list[str]:
    """The kernsim arguments of README's first command."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("    python3 -m venv .venv") and "/kernsim run " in line:
            return shlex.split(line.split("&& .venv/bin/kernsim ", 1)[1])
    raise SystemExit("README.md has no main job line")


def one_run() -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load0, t0 = os.getloadavg()[0], time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "kernsim", *main_job(), "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    rows = {d["variant"]: d for d in map(json.loads, r.stdout.splitlines())}
    row: dict[str, Any] = {
        "started": started,
        "load_start": round(load0, 2),
        "load_end": round(os.getloadavg()[0], 2),
        "wall_s": round(time.monotonic() - t0, 1),
        "exit": r.returncode,
        **{v: {k: d.get(k) for k in KEYS} for v, d in rows.items()},
    }
    if r.returncode not in (0, 1):
        row["stderr_tail"] = r.stderr.strip().splitlines()[-5:]
    return row


def summary(path: Path) -> str:
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not runs:
        return "no runs"
    leaks = sum(1 for r in runs if r.get("none", {}).get("memsw_leak_bytes", 0) > 0)
    up = sum(1 for r in runs if r.get("upstream", {}).get("memsw_leak_bytes", 0) > 0)
    loads = [r["load_start"] for r in runs] + [r["load_end"] for r in runs]
    walls = [r["wall_s"] for r in runs]
    rounds = [r["none"]["load_rounds"] for r in runs if "none" in r]
    return (
        f"{len(runs)} runs: leak under none in {leaks}, under upstream in {up}; "
        f"load average {min(loads):.1f}-{max(loads):.1f}; "
        f"wall {min(walls):.0f}-{max(walls):.0f} s; "
        f"rounds under none {min(rounds)}-{max(rounds)}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "main-job.jsonl")
    p.add_argument("--summary", action="store_true", help="print the rate over --out and stop")
    args = p.parse_args()
    if not args.summary:
        for _ in range(args.runs):
            row = one_run()
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print(summary(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
