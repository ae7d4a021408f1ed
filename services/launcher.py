"""``kernsim up`` and ``kernsim run``: the cluster on this machine.

``run`` starts the services and runs services/experiment.py on them: rounds of
load, then the simulation's own settle_and_check (kernsim.check.settle) over
the live services -- kill all, wait for quiescence, drain the pagevecs, check
the invariants on state fetched from mm and memcg, one pass of global
reclaim -- and report.  Exit 0 when the invariants hold, 1 when not, 2 for
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernsim.services.cluster import Cluster, ServiceFailure
from kernsim.services.config import SERVICES
from kernsim.services.experiment import ClusterResult, experiment, sample_progress
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

from kernsim import options, progress
from kernsim.workloads import CONTROLLERS

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_SERVICE = 0, 1, 2, 3


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
            sampler = asyncio.ensure_future(sample_progress(cluster, out, last=measured))
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
        print(render_table(results, verbose=args.verbose))
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


def _check_args(args: argparse.Namespace) -> None:
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
            with contextlib.suppress(asyncio.TimeoutError):
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
        "above usage with no task left, or until S seconds of load in all "
        "(default: one round)",
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
