"""``kernsim up`` and ``kernsim run``: the cluster on this machine.

``run`` mirrors kernsim.sim.run.settle_and_check over live services: load,
kill all, wait for quiescence, drain the pagevecs, check the invariants on
state fetched from mm and memcg with the simulation's checker, one pass of
global reclaim, report.  Exit 0 when the invariants hold, 1 when not, 2 for
bad usage, 3 when a service died or stopped answering (named on stderr), 4
for a setup or environment error (one line on stderr; see lifecycle.py), and
128 + the signal's number when SIGTERM or SIGINT stopped it.

With ``--out DIR`` the run leaves ``DIR/records.jsonl``: the run's trace, one
JSON record per line, each written whole and fsync'd as it is made (the
services and their pids, every phase, a progress sample each second, the
result, or the failure naming the service), so a run that dies midway still
leaves everything up to that point readable; and ``DIR/results.json``, the
result objects, written once at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernsim.protocol import ProtocolError
from kernsim.services.cluster import Cluster, ServiceFailure
from kernsim.services.config import SERVICES
from kernsim.services.lifecycle import (
    EXIT_SETUP,
    Interrupted,
    SetupError,
    interruptible,
    parse_services,
    start_cluster,
    token_from_env,
)
from kernsim.services.records import RecordWriter
from kernsim.services.snapshot import memcg_restore, mm_restore

from kernsim import options, progress
from kernsim.sim.checker import (
    Violation,
    global_reclaim_violations,
    quiescent_violations,
    slots_in_use,
    stale_swapcache_pages,
)
from kernsim.sim.result import RunResult

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_SERVICE = 0, 1, 2, 3
#: What each recorded phase means, for the progress lines on stderr.
PHASES = {
    "workload_started": "{duration_s:g} s of load, then every task is killed",
    "killed_all": "every task killed; waiting for I/O and work to quiesce",
    "quiescent": "quiescent",
    "round_checked": "round {round}: memsw.usage - usage = {memsw_minus_usage_bytes} B with no "
    "task left ({swapin_reads} swap-in reads)",
}


@dataclass(slots=True)
class ClusterResult(RunResult):
    """kernsim sim's result object, without trace_sha256, with wall_s, ops and messages."""

    wall_s: float = 0.0
    messages: int = 0
    #: Load rounds run, their wall seconds, and what ended them (``leak seen``,
    #: ``bound reached`` with --until-leak, else ``one round``).
    load_rounds: int = 1
    load_s: float = 0.0
    ended: str = "one round"
    #: Swap-in reads (pages read back from swap, readahead included) during the load.
    swapin_reads: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = RunResult.to_dict(self)
        d.update(
            wall_s=round(self.wall_s, 3),
            ops=self.events,
            messages=self.messages,
            load_rounds=self.load_rounds,
            load_s=self.load_s,
            ended=self.ended,
            swapin_reads=self.swapin_reads,
        )
        return d


async def experiment(
    cluster: Cluster,
    duration_s: float,
    settle_s: float = 120.0,
    out: RecordWriter | None = None,
    until_leak_s: float | None = None,
) -> ClusterResult:
    """Load rounds, then drain, check, global reclaim: one run on a started cluster.

    A load round is the scenario's workload for ``duration_s`` (kamezawa: three tasks,
    pkill every 3 s), kill all, quiescence.  Without ``until_leak_s`` one round is run.
    With it, rounds repeat (each with its own workload seed) until memsw.usage stays
    above usage with no task left, or until the next round (``duration_s`` at least)
    would pass ``until_leak_s`` seconds of rounds in all, as the wall clock counts them
    (load, kill, quiescence): the verdict says which ended it, and ``swapin_reads`` how
    many chances a kill had to catch a swap-in in flight.  A leak, once there,
    stays (nothing inside the memcg reclaims it), so the rounds only add kill rounds
    as Kamezawa's loop did, and the check at the end sees them all.
    """

    def phase(name: str, **fields: Any) -> None:
        text = PHASES.get(name, name).format(duration_s=duration_s, **fields)
        progress.phase(f"{cluster.variant}: {text}")
        if out is not None:
            out.write("phase", phase=name, variant=cluster.variant, **fields)

    t0 = time.monotonic()
    reads0 = reads = await _swapin_reads(cluster)
    rounds, load_s, gap = 0, 0.0, 0
    while True:
        started = time.monotonic()
        gap = await _load_round(cluster, duration_s, cluster.seed + rounds, settle_s, phase)
        rounds += 1
        # What the round took, not its nominal duration: kamezawa's kills wait for the
        # tasks' progress (kernsim/workloads.py), longer on a loaded machine.
        load_s += time.monotonic() - started
        before, reads = reads, await _swapin_reads(cluster)
        # Swap-ins are the chances a kill had to catch readahead in flight (a machine loaded
        # enough kills the tasks before they touch their pages twice: none at all).
        swapins = reads - before
        phase("round_checked", round=rounds, memsw_minus_usage_bytes=gap, swapin_reads=swapins)
        if until_leak_s is None or gap > 0 or load_s + duration_s > until_leak_s:
            break
    ended = "leak seen" if gap > 0 else "bound reached" if until_leak_s is not None else "one round"
    wall_load = time.monotonic() - t0
    progress.phase(f"{cluster.variant}: draining pagevecs, checking the invariants")
    await cluster.rpc("workqueue", "run_path", {"path": "lru_add_drain_all"})
    mm = mm_restore((await cluster.rpc("mm", "snapshot"))["state"])
    memcg_data = (await cluster.rpc("memcg", "snapshot"))["state"]
    memcg = memcg_restore(memcg_data)
    group = memcg.groups[memcg.by_name["/A"]]
    stale = len(stale_swapcache_pages(mm, memcg))
    used = len(slots_in_use(mm))
    violations = [Violation(k, m) for k, m in memcg_data["violations"]]
    violations += quiescent_violations(mm, memcg)
    progress.phase(f"{cluster.variant}: one pass of global reclaim")
    await cluster.rpc("vmscan", "run_path", {"path": "global_reclaim"}, timeout_s=settle_s)
    mm_after = mm_restore((await cluster.rpc("mm", "snapshot"))["state"])
    used_after = slots_in_use(mm_after)
    violations += global_reclaim_violations(mm_after)
    stats = await cluster.statistics()
    violations += _crashes(stats)
    results: dict[str, int] = {}
    for svc in ("tasks", "vmscan"):
        for k, v in stats[svc]["vmscan_results"].items():
            results[k] = results.get(k, 0) + v
    return ClusterResult(
        scenario=cluster.scenario,
        variant=cluster.variant,
        seed=cluster.seed,
        faults=cluster.faults,
        page_cluster=mm.config.page_cluster,
        events=stats["mm"]["ops"] + stats["memcg"]["ops"],
        virtual_s=wall_load,
        usage_bytes=group.res.usage,
        memsw_usage_bytes=group.memsw.usage,
        stale_swapcache_pages=stale,
        swap_slots_used=used,
        swap_slots_used_after_global_reclaim=len(used_after),
        oom_kills=group.oom_kills,
        vmscan_results=results,
        wall_s=time.monotonic() - t0,
        messages=sum(s["node"]["messages_sent"] for s in stats.values()),
        violations=violations,
        load_rounds=rounds,
        load_s=round(load_s, 3),
        ended=ended,
        swapin_reads=reads - reads0,
    )


async def _swapin_reads(cluster: Cluster) -> int:
    """Swap-in reads completed so far (end_swap_bio_read runs on blockdev)."""
    stats = (await cluster.rpc("blockdev", "statistics"))["stats"]
    return int(stats["work_items"].get("end_swap_bio_read", 0))


async def _load_round(
    cluster: Cluster, duration_s: float, seed: int, settle_s: float, phase: Any
) -> int:
    """One round of load, kill all, quiescence; memsw.usage - usage of /A with no task left."""
    await cluster.rpc(
        "tasks",
        "start_workload",
        {"scenario": cluster.scenario, "duration_s": float(duration_s), "seed": seed},
    )
    phase("workload_started", seed=seed)
    # kamezawa's kills may each wait up to ten periods for the tasks' progress.
    await cluster.watched(_until_quiet(cluster), duration_s * 12 + settle_s, "the workload")
    await cluster.rpc("tasks", "kill_all")
    phase("killed_all")
    await cluster.watched(_until_quiet(cluster), settle_s, "quiescence")
    phase("quiescent")
    a = (await cluster.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
    return int(a["memsw_usage_bytes"]) - int(a["usage_bytes"])


async def _until_quiet(cluster: Cluster) -> None:
    while not (await cluster.rpc("tasks", "quiesce_status"))["quiescent"]:
        await asyncio.sleep(0.1)


def _crashes(stats: dict[str, Any]) -> list[Violation]:
    """A kernel BUG_ON or a failed code path anywhere is a violation, named by service."""
    out = []
    for name, s in stats.items():
        for text in s["node"]["crash_texts"] + s.get("crash_texts", []):
            out.append(Violation("service_error", f"{name}: {text}"))
    return out


async def _progress(
    cluster: Cluster, out: RecordWriter, every_s: float = 1.0, last: dict[str, Any] | None = None
) -> None:
    """A progress record each ``every_s``: kernel ops and memcg's counters (kept in ``last``)."""
    while True:
        await asyncio.sleep(every_s)  # the sampling period, not a wait for a state
        with contextlib.suppress(ServiceFailure, OSError, ProtocolError):
            mm = (await cluster.rpc("mm", "statistics", timeout_s=2.0))["stats"]
            memcg = (await cluster.rpc("memcg", "statistics", timeout_s=2.0))["stats"]
            sample = {"ops": mm["ops"] + memcg["ops"], "cgroups": memcg.get("cgroups")}
            out.write("progress", variant=cluster.variant, **sample)
            if last is not None:
                last.update(sample, ts=round(time.time(), 6))


async def run_one(
    args: argparse.Namespace,
    variant: str,
    out: RecordWriter | None = None,
    measured: dict[str, Any] | None = None,
) -> ClusterResult:
    cluster = Cluster(
        variant=variant,
        scenario=args.scenario,
        faults=args.faults,
        seed=args.seed,
        page_cluster=args.page_cluster,
        token=token_from_env(),
        log_dir=Path(args.out) / "logs" / variant if args.out else None,
        remote=parse_services(args.services) if getattr(args, "services", None) else None,
    )
    sampler: asyncio.Task[None] | None = None
    try:
        progress.phase(f"{variant}: starting the six services")
        await start_cluster(cluster)
        if out is not None:
            out.write(
                "cluster_started", variant=variant, pids=cluster.pids(), ports=cluster.addresses()
            )
            sampler = asyncio.ensure_future(_progress(cluster, out, last=measured))
        until = getattr(args, "until_leak", None)
        result = await experiment(cluster, args.duration, out=out, until_leak_s=until)
        if out is not None:
            out.write("result", **result.to_dict())
        return result
    except ServiceFailure as exc:
        if out is not None:
            why = str(exc).removeprefix(f"service {exc.service} ")
            out.write("failure", variant=variant, service=exc.service, why=why)
        tail = cluster.log_tail(exc.service) if exc.service in SERVICES else ""
        why = str(exc).removeprefix(f"service {exc.service} ")
        if tail:
            why += f"\n--- last lines of its log ---\n{tail}"
        raise ServiceFailure(exc.service, why) from exc
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(BaseException):
                await sampler
        progress.phase(f"{variant}: stopping the services")
        await cluster.stop()
        progress.done()


def cmd_run(args: argparse.Namespace) -> int:
    from kernsim.cli import exit_status, render_table

    _check_args(args)
    results = []
    unfinished: list[dict[str, Any]] = []
    try:
        out = RecordWriter(Path(args.out) / "records.jsonl") if args.out else None
    except OSError as exc:
        print(f"kernsim: setup error: --out {args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_SETUP
    try:
        for variant in args.variant or ["none"]:
            measured: dict[str, Any] = {}
            try:
                r = asyncio.run(interruptible(run_one(args, variant, out, measured)))
            except ServiceFailure as exc:
                print(f"kernsim: cluster failure: {exc}", file=sys.stderr)
                return EXIT_SERVICE
            except SetupError as exc:
                print(f"kernsim: setup error: {exc}", file=sys.stderr)
                return EXIT_SETUP
            except Interrupted as exc:
                unfinished.append(_interrupted(out, variant, exc, measured))
                print(f"kernsim: {exc}; every service was stopped", file=sys.stderr)
                return 128 + exc.signum
            results.append(r)
            if args.json:
                print(json.dumps(r.to_dict()), flush=True)
    finally:
        if out is not None:
            out.close()
            _write_results(Path(args.out) / "results.json", results, unfinished)
    if not args.json:
        print(render_table([_Row(r) for r in results], verbose=args.verbose))
    return exit_status(results, args.strict)


def _interrupted(
    out: RecordWriter | None, variant: str, exc: Interrupted, measured: dict[str, Any]
) -> dict[str, Any]:
    """The record and the results.json entry of a run a signal stopped: what it measured."""
    if out is not None:
        out.write("interrupted", variant=variant, signal=exc.name)
    return {"variant": variant, "incomplete": True, "interrupted_by": exc.name,
            "last_progress": measured}  # fmt: skip


def _write_results(
    path: Path, results: list[ClusterResult], unfinished: Sequence[dict[str, Any]] = ()
) -> None:
    """All results so far, then any run a signal cut short (``"incomplete": true``),
    replaced atomically: a reader sees the old file or the new one."""
    tmp = path.with_suffix(".tmp")
    entries = [r.to_dict() for r in results] + list(unfinished)
    tmp.write_text(json.dumps(entries, indent=2) + "\n")
    os.replace(tmp, path)


class _Row:
    """A result as kernsim.cli.render_table reads it (it shows the trace hash column)."""

    def __init__(self, r: ClusterResult) -> None:
        self._r = r
        self.scenario, self.faults, self.page_cluster = r.scenario, r.faults, r.page_cluster
        self.variant, self.seed, self.violations = r.variant, r.seed, r.violations
        self.verdict, self.memsw_leak_bytes = r.verdict, r.memsw_leak_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**self._r.to_dict(), "trace_sha256": "(cluster)", "virtual_s": self._r.wall_s}


def _check_args(args: argparse.Namespace) -> None:
    from kernsim.services.workloads import CONTROLLERS

    from kernsim.cli import UsageError
    from kernsim.faults import load_profile

    if args.scenario not in CONTROLLERS:
        raise UsageError(
            f"scenario {args.scenario!r} has no cluster workload (known: {', '.join(CONTROLLERS)})"
        )
    if getattr(args, "duration", 1.0) <= 0:
        raise UsageError("--duration must be positive")
    until = getattr(args, "until_leak", None)
    if until is not None and not args.duration <= until <= 3600:
        raise UsageError("--until-leak must be between --duration and 3600 seconds")
    try:
        load_profile(args.faults)
        if getattr(args, "services", None):
            parse_services(args.services)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc


async def _up(args: argparse.Namespace) -> int:
    cluster = Cluster(
        variant=args.variant,
        scenario=args.scenario,
        faults=args.faults,
        seed=args.seed,
        page_cluster=args.page_cluster,
        log_level="INFO",
        token=token_from_env(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await start_cluster(cluster)
        for name in SERVICES:
            rpc, _ = cluster.ports[name]
            print(f"{name:10} {cluster.admin_url(name)}  (rpc 127.0.0.1:{rpc})", flush=True)
        print(f"memcg files: {cluster.admin_url('memcg')}/cgroup/A/memory.usage_in_bytes")
        admins = ",".join(cluster.admin_url(name) for name in SERVICES)
        print(f"faults: kernsim faults show --admin {admins}")
        print(f"logs: {cluster.log_dir}   Ctrl-C stops every service", flush=True)
        if args.load:
            await cluster.rpc(
                "tasks",
                "start_workload",
                {"scenario": args.scenario, "duration_s": float(args.duration), "seed": args.seed},
            )
        while not stop.is_set():
            if (dead := cluster.dead()) is not None:
                raise ServiceFailure(dead[0], f"exited with status {dead[1]}")
            with __import__("contextlib").suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return EXIT_OK
    except ServiceFailure as exc:
        print(f"kernsim: cluster failure: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    except SetupError as exc:
        print(f"kernsim: setup error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    finally:
        await cluster.stop()


def cmd_up(args: argparse.Namespace) -> int:
    _check_args(args)
    return asyncio.run(_up(args))


def _common(p: argparse.ArgumentParser) -> None:
    from kernsim.services.workloads import CONTROLLERS

    p.add_argument(
        "--scenario",
        default="kamezawa",
        choices=list(CONTROLLERS),
        help="machine and workload (default: kamezawa)",
    )
    p.add_argument(
        "--faults",
        default="none",
        help="fault profile name (deploy/faults/NAME.toml) or path (default: none)",
    )
    p.add_argument(
        "--seed", type=options.seed, default=1, help="seeds faults and workload (default: 1)"
    )
    p.add_argument(
        "--page-cluster",
        type=options.page_cluster,
        default=None,
        help="/proc/sys/vm/page-cluster, 0-8 (default: the scenario's, 3)",
    )


def register(sub: Any) -> None:
    """Add ``up`` and ``run`` to the kernsim command line."""
    from kernsim.cli import add_strict
    from kernsim.variants import VARIANTS

    run = sub.add_parser(
        "run",
        help="run a scenario on the local cluster of six services",
        description="Start the six services on free 127.0.0.1 ports, run the workload for "
        "--duration seconds, kill every task, wait for quiescence, check the invariants over "
        "the live services.  Exit 1 on a memsw leak, on a swap slot the variant never gives "
        "back by itself, or on another broken invariant; 0 otherwise (slots the variant gives "
        "back by design are reported, not failed; see --strict); 2 for bad usage; 3 when a "
        "service died or stopped answering; 4 for a setup or environment error (bad token, a "
        "service that refused its configuration); 128+N when signal N (SIGTERM, SIGINT) "
        "stopped it.  KERNSIM_TOKEN, when set, is given to the services and said in every "
        "hello.",
    )
    _common(run)
    run.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        help="kernel variant; repeat to compare side by side (default: none)",
    )
    run.add_argument("--duration", type=float, default=10.0, help="seconds of load (default: 10)")
    run.add_argument(
        "--until-leak",
        type=float,
        default=None,
        metavar="S",
        help="repeat --duration rounds of load (kill all, quiesce, look) until memsw stays "
        "above usage with no task left, or until another round would take the rounds past "
        "S seconds of wall time (default: one round)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object per run")
    run.add_argument("-v", "--verbose", action="store_true", help="list every violation")
    add_strict(run)
    run.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write DIR/records.jsonl (the run's trace, flushed per record) and DIR/results.json",
    )
    run.add_argument(
        "--services",
        default=None,
        metavar="mm=HOST:PORT,...",
        help="drive six services already running (their msgpack RPC addresses, all six) "
        "instead of starting them here; they must run --variant; see docs/multihost.md",
    )
    run.set_defaults(handler=cmd_run)
    up = sub.add_parser(
        "up",
        help="start the six services and keep them up until Ctrl-C",
        description="Start the six services on free 127.0.0.1 ports, print their URLs, stay up "
        "until Ctrl-C, then stop them all.",
    )
    _common(up)
    up.add_argument(
        "--variant", default="none", choices=list(VARIANTS), help="kernel variant (default: none)"
    )
    up.add_argument("--load", action="store_true", help="start the scenario's workload")
    up.add_argument(
        "--duration",
        type=float,
        default=3600.0,
        help="with --load: seconds of load (default: 3600)",
    )
    up.set_defaults(handler=cmd_up)
