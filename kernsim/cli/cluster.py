"""``kernsim run`` and ``kernsim up``: the six services on this machine (or driven there).

The launcher (kernsim.services.launch.launcher) runs the experiment; this module parses the
command, turns each way a run can end into its exit status (kernsim.exits) and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from kernsim.cli import options
from kernsim.cli.parser import UsageError
from kernsim.cli.sim import exit_status
from kernsim.exits import Exit, killed_by
from kernsim.services.launch.cluster import Cluster, ServiceFailure
from kernsim.services.launch.launcher import (
    ClusterResult,
    record_interrupted,
    run_one,
    write_results,
)
from kernsim.services.launch.lifecycle import (
    Interrupted,
    SetupError,
    interruptible,
    parse_services,
    start_cluster,
    token_from_env,
)
from kernsim.services.launch.records import RecordWriter
from kernsim.services.runtime.config import SERVICES
from kernsim.sim.render import render_table
from kernsim.workloads import CONTROLLERS

#: The longest load --until-leak may ask for.
UNTIL_LEAK_MAX_S = 3600
#: With --until-leak, the rounds its wall-time bound may not stop before: as many as a
#: quiet machine runs within the README's bound (four 9 s rounds of about 12 s in 54 s),
#: so that a loaded machine's verdict rests on as many kills.  Measured at a load whose
#: rounds took minutes, one round in four showed no leak (bench/results/main-job.jsonl).
MIN_ROUNDS = 4
#: The most rounds --min-rounds may ask for.
MIN_ROUNDS_MAX = 100


def _services(text: str) -> dict[str, tuple[str, int]]:
    """``--services``: the six services' msgpack RPC addresses."""
    try:
        return parse_services(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(p: argparse.ArgumentParser) -> None:
    options.add_scenario(p, CONTROLLERS, "kamezawa", "machine and workload")
    options.add_faults(p, "none")
    options.add_seed(p, 1, "seeds faults and workload")
    options.add_page_cluster(p)


def register(sub: Any) -> None:
    """Add ``run`` and ``up`` to the kernsim command line."""
    run = sub.add_parser(
        "run",
        help="run a scenario on the local cluster of six services",
        description="Start the six services on free 127.0.0.1 ports, run the workload for "
        "--duration seconds, kill every task, wait for quiescence, check the invariants over "
        "the live services.  Exit 1 on a memsw leak, on a swap slot the variant never gives "
        "back by itself, or on another broken invariant; 0 otherwise (slots the variant gives "
        "back by design are reported, not failed; see --strict); 2 for bad usage; 3 when a "
        "service died, stopped answering, or the kernel made no step for 120 s (a loaded machine "
        "makes a run slower, not a failure); 4 for a setup or environment error (bad token, a "
        "service that refused its configuration); 128+N when signal N (SIGTERM, SIGINT) "
        "stopped it.  KERNSIM_TOKEN, when set, is given to the services and said in every "
        "hello.",
    )
    _common(run)
    options.add_variant(run, many=True)
    options.add_duration(run, 10.0, "seconds of load per round")
    run.add_argument(
        "--until-leak",
        type=options.seconds,
        default=None,
        metavar="S",
        help="repeat --duration rounds of load (kill all, quiesce, look) until memsw stays "
        "above usage with no task left ('leak seen'), or until another round would take the "
        "rounds past S seconds of wall time, but never before --min-rounds rounds ('bound "
        "reached'): a loaded machine, whose rounds take longer, still runs that many "
        "(default: one round)",
    )
    run.add_argument(
        "--min-rounds",
        type=options.positive,
        default=None,
        metavar="N",
        help=f"with --until-leak: the rounds its bound may not stop before (default: {MIN_ROUNDS})",
    )
    options.add_json(run, "print one JSON object per run")
    options.add_verbose(run, "list every violation")
    options.add_strict(run)
    options.add_out(
        run, None, "write DIR/records.jsonl (the run's trace, flushed per record) and "
        "DIR/results.json",
    )  # fmt: skip
    run.add_argument(
        "--services",
        type=_services,
        default=None,
        metavar="mm=HOST:PORT,...",
        help="drive six services already running (their msgpack RPC addresses, all six) "
        "instead of starting them here; they must run --variant; see docs/multihost.md "
        "(default: start them here)",
    )
    run.set_defaults(handler=cmd_run)
    up = sub.add_parser(
        "up",
        help="start the six services and keep them up until Ctrl-C",
        description="Start the six services on free 127.0.0.1 ports, print their URLs, stay up "
        "until Ctrl-C, then stop them all.  Exit 0 after Ctrl-C, 2 for bad usage, 3 when a "
        "service died, 4 for a setup or environment error.",
    )
    _common(up)
    options.add_variant(up)
    up.add_argument("--load", action="store_true", help="start the scenario's workload")
    options.add_duration(up, 3600.0, "with --load: seconds of load")
    up.set_defaults(handler=cmd_up)


def _cluster(args: argparse.Namespace, variant: str, **extra: Any) -> Cluster:
    """The cluster the command's flags describe, under ``variant``."""
    return Cluster(
        variant=variant,
        scenario=args.scenario,
        faults=args.faults,
        seed=args.seed,
        page_cluster=args.page_cluster,
        token=token_from_env(),
        **extra,
    )


def cmd_run(args: argparse.Namespace) -> int:
    if args.until_leak is not None and not args.duration <= args.until_leak <= UNTIL_LEAK_MAX_S:
        raise UsageError(f"--until-leak must be between --duration and {UNTIL_LEAK_MAX_S} seconds")
    if args.min_rounds is not None and args.until_leak is None:
        raise UsageError("--min-rounds needs --until-leak")
    if args.min_rounds is not None and args.min_rounds > MIN_ROUNDS_MAX:
        raise UsageError(f"--min-rounds must be at most {MIN_ROUNDS_MAX}")
    min_rounds = MIN_ROUNDS if args.min_rounds is None else args.min_rounds
    results: list[ClusterResult] = []
    unfinished: list[dict[str, Any]] = []
    try:
        out = RecordWriter(Path(args.out) / "records.jsonl") if args.out else None
    except OSError as exc:
        print(f"kernsim: setup error: --out {args.out}: {exc.strerror}", file=sys.stderr)
        return Exit.SETUP
    try:
        for variant in args.variant or ["none"]:
            log_dir = Path(args.out) / "logs" / variant if args.out else None
            cluster = _cluster(args, variant, log_dir=log_dir, remote=args.services)
            measured: dict[str, Any] = {}
            run = run_one(cluster, args.duration, args.until_leak, out, measured, min_rounds)
            try:
                r = asyncio.run(interruptible(run))
            except (ServiceFailure, SetupError) as exc:
                return _failed(exc)
            except Interrupted as exc:
                unfinished.append(record_interrupted(out, variant, exc, measured))
                print(f"kernsim: {exc}; every service was stopped", file=sys.stderr)
                return killed_by(exc.signum)
            results.append(r)
            if args.json:
                print(json.dumps(r.to_dict()), flush=True)
    finally:
        if out is not None:
            out.close()
            write_results(Path(args.out) / "results.json", results, unfinished)
    if not args.json:
        print(render_table([_Row(r) for r in results], verbose=args.verbose))
    return exit_status(results, args.strict)


class _Row:
    """A result as render_table reads it (it shows the trace hash column)."""

    def __init__(self, r: ClusterResult) -> None:
        self._r = r
        self.scenario, self.faults, self.page_cluster = r.scenario, r.faults, r.page_cluster
        self.variant, self.seed, self.violations = r.variant, r.seed, r.violations
        self.verdict, self.memsw_leak_bytes = r.verdict, r.memsw_leak_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**self._r.to_dict(), "trace_sha256": "(cluster)"}


def cmd_up(args: argparse.Namespace) -> int:
    return asyncio.run(_up(args))


async def _up(args: argparse.Namespace) -> int:
    cluster = _cluster(args, args.variant, log_level="INFO")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await start_cluster(cluster)
        _print_addresses(cluster)
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
        return Exit.OK
    except (ServiceFailure, SetupError) as exc:
        return _failed(exc)
    finally:
        await cluster.stop()


def _failed(exc: ServiceFailure | SetupError) -> int:
    """One line on stderr and the exit status of a run or ``up`` that could not go on:
    a service died or stopped answering (3), or the environment is wrong (4)."""
    if isinstance(exc, ServiceFailure):
        print(f"kernsim: cluster failure: {exc}", file=sys.stderr)
        return Exit.SERVICE
    print(f"kernsim: setup error: {exc}", file=sys.stderr)
    return Exit.SETUP


def _print_addresses(cluster: Cluster) -> None:
    for name in SERVICES:
        rpc, _ = cluster.ports[name]
        print(f"{name:10} {cluster.admin_url(name)}  (rpc 127.0.0.1:{rpc})", flush=True)
    print(f"memcg files: {cluster.admin_url('memcg')}/cgroup/A/memory.usage_in_bytes")
    admins = ",".join(cluster.admin_url(name) for name in SERVICES)
    print(f"faults: kernsim faults show --admin {admins}")
    print(f"logs: {cluster.log_dir}   Ctrl-C stops every service", flush=True)
