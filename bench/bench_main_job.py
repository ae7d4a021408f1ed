"""The README's main job, run again and again: how often it shows the leak, at what load.

Each run is README.md's first `kernsim run` command (with ``--json``), a fresh
cluster each time.  One JSON line per run is appended to ``--out``: the batch it
belongs to, how its load was made, the load average when it started and when it
ended (``os.getloadavg()``, 1 min), its wall time, its exit status (with the tail
of stderr when it is neither 0 nor 1), and for each variant the verdict, memsw
leak, load rounds, seconds of rounds, swap-in reads and what ended them.

A loaded machine can be emulated for the job's own processes, without loading the
machine for anyone else: ``--cpu F`` runs each job in a cgroup of its own whose CPU
bandwidth is F of one CPU (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``, over
a 100 ms period), as root.  The job's seven processes then share F of a CPU, as
they would share the CPU time a machine at a high load average leaves them.
``--jobs N`` runs N jobs at once (each in its own cgroup with ``--cpu``).
``--summary`` prints the rates per batch over every line of the file.

    python bench/bench_main_job.py --runs 20 --batch quiet
    python bench/bench_main_job.py --runs 20 --jobs 4 --cpu 0.2 --batch cpu-0.2
    python bench/bench_main_job.py --summary
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEYS = ("verdict", "memsw_leak_bytes", "load_rounds", "load_s", "swapin_reads", "ended")
KEYS += ("min_rounds", "other_failures")
CGROUP = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def main_job() -> list[str]:
    """The kernsim arguments of README's first command."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("    python3 -m venv .venv") and "/kernsim run " in line:
            return shlex.split(line.split("&& .venv/bin/kernsim ", 1)[1])
    raise SystemExit("README.md has no main job line")


@contextlib.contextmanager
def cpu_cgroup(name: str, cpu: float) -> Iterator[Path]:
    """A cgroup whose processes share ``cpu`` of one CPU; yields its cgroup.procs file."""
    quota = max(1000, int(cpu * PERIOD_US))
    if (CGROUP / "cgroup.controllers").exists():  # v2
        group = CGROUP / name
        group.mkdir()
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}\n")
    else:  # v1, the cpu controller mounted on its own
        group = CGROUP / "cpu" / name
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
        (group / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    try:
        yield group / "cgroup.procs"
    finally:
        # Every process of the job has exited (the launcher stops its services).
        with contextlib.suppress(OSError):
            group.rmdir()


def one_run(n: int, cpu: float | None) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load0, t0 = os.getloadavg()[0], time.monotonic()
    cmd = [sys.executable, "-m", "kernsim", *main_job(), "--json"]
    with contextlib.ExitStack() as stack:
        if cpu is not None:
            procs = stack.enter_context(cpu_cgroup(f"kernsim-bench-{os.getpid()}-{n}", cpu))
            # The shell moves itself into the cgroup, then becomes the job.
            cmd = ["sh", "-c", f'echo $$ > {shlex.quote(str(procs))} && exec "$@"', "sh", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
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


def summary(path: Path, batch: str | None = None) -> str:
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    batches: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if batch is None or r.get("batch") == batch:
            batches.setdefault(str(r.get("batch")), []).append(r)
    return "\n".join(_batch_line(name, rs) for name, rs in batches.items()) or "no runs"


def _batch_line(name: str, runs: list[dict[str, Any]]) -> str:
    leaks = sum(1 for r in runs if _leaked(r.get("none")))
    up = sum(1 for r in runs if _leaked(r.get("upstream")))
    failed = sum(1 for r in runs if r["exit"] not in (0, 1))
    # A code path that failed (service_error) leaves the model half-way: no verdict.
    broken = sum(
        1
        for r in runs
        for v in ("none", "upstream")
        if "service_error" in ((r.get(v) or {}).get("other_failures") or [])
    )
    loads = [r["load_start"] for r in runs] + [r["load_end"] for r in runs]
    walls = [r["wall_s"] for r in runs]
    rounds = [r["none"]["load_rounds"] for r in runs if r.get("none")]
    up_rounds = [r["upstream"]["load_rounds"] for r in runs if r.get("upstream")]
    how = runs[0].get("load", "the shared machine as it was")
    return (
        f"{name} ({how}): {len(runs)} runs: leak under none in {leaks}, under upstream "
        f"in {up}; {failed} failed (exit not 0/1), {broken} with a failed code path; "
        f"load average {min(loads):.1f}-"
        f"{max(loads):.1f}; wall {min(walls):.0f}-{max(walls):.0f} s; rounds under none "
        f"{_span(rounds)}, under upstream {_span(up_rounds)}"
    )


def _leaked(row: dict[str, Any] | None) -> bool:
    return bool(row) and (row or {}).get("memsw_leak_bytes", 0) > 0


def _span(xs: list[int]) -> str:
    return f"{min(xs)}-{max(xs)}" if xs else "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "main-job.jsonl")
    p.add_argument("--batch", default=time.strftime("%Y%m%dT%H%M"), help="the runs' batch name")
    p.add_argument("--cpu", type=float, default=None, help="each job gets this much of a CPU")
    p.add_argument("--jobs", type=int, default=1, help="jobs run at once")
    p.add_argument("--summary", action="store_true", help="print the rates over --out and stop")
    args = p.parse_args()
    if not args.summary:
        how = (
            f"cgroup CPU bandwidth {args.cpu:g} of a CPU per job ({PERIOD_US // 1000} ms period)"
            if args.cpu is not None
            else "no emulated load"
        )
        how += f", {args.jobs} job(s) at once"
        lock = threading.Lock()

        def run(n: int) -> None:
            row = {"batch": args.batch, "load": how, **one_run(n, args.cpu)}
            with lock, args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run, range(args.runs)))
    print(summary(args.out, None if args.summary else args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
