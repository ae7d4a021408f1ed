"""The ``kernsim`` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from kernsim import options

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2

#: Modules that add subcommands: each has ``register(subparsers)``, which adds its
#: parsers and sets ``handler`` (args -> exit status) on each.
COMMAND_MODULES: list[str] = [
    "kernsim.services.launcher",
    "kernsim.explore.cli",
    "kernsim.plot",
    "kernsim.faultctl",
]


class UsageError(Exception):
    """Bad arguments: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument said in one line (and where to read more)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_seeds = options.seeds
_page_cluster = options.page_cluster


def build_parser() -> argparse.ArgumentParser:
    from kernsim.sim.scenarios import SCENARIOS
    from kernsim.variants import VARIANTS

    parser = Parser(
        prog="kernsim",
        description="A laboratory for Linux kernel races: the memcg stale swap cache leak "
        "of 2.6.30.",
    )
    parser.add_argument("--version", action="version", version=f"kernsim {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    sim = sub.add_parser(
        "sim",
        help="run the deterministic simulation",
        description="Run a scenario on the virtual clock, kill every task, let the system "
        "settle and check the invariants.  Exit 1 on a memsw leak, on a swap slot the "
        "variant never gives back by itself, or on another broken invariant; 0 otherwise "
        "(slots the variant gives back by design are reported, not failed; see --strict); "
        "2 for bad usage.",
    )
    sim.add_argument(
        "--scenario",
        default="kamezawa",
        choices=list(SCENARIOS),
        help="workload or catalogue race (default: kamezawa)",
    )
    sim.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        help="kernel variant; repeat to compare side by side (default: none)",
    )
    sim.add_argument(
        "--seed", type=_seeds, default=[1], help="seed, or a list: 7, 1-20, 1,5,9 (default: 1)"
    )
    sim.add_argument(
        "--faults",
        default=None,
        help="fault profile name (deploy/faults/NAME.toml) or a path (default: the scenario's)",
    )
    sim.add_argument(
        "--page-cluster",
        type=_page_cluster,
        default=None,
        help="/proc/sys/vm/page-cluster (0 disables readahead; default 3)",
    )
    sim.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="load scenarios: kill-all rounds (kamezawa) or generations",
    )
    sim.add_argument("--json", action="store_true", help="print one JSON object per run")
    sim.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list every violation with the trace events it names, and draw each race "
        "as a CPU-column diagram",
    )
    add_strict(sim)
    sim.set_defaults(handler=cmd_sim)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 also when swap slots stay pinned that the variant gives back by design "
        "(2.6.31's reuse of cache-only slots, memcg reclaim of charged cache pages)",
    )


#: Scenarios whose runs take seconds: they show progress.
LONG_SCENARIOS = ("kamezawa", "nishimura")


def cmd_sim(args: argparse.Namespace) -> int:
    from kernsim import progress
    from kernsim.sim import render
    from kernsim.sim.run import simulate

    variants = args.variant or ["none"]
    params: dict[str, Any] = {}
    if args.rounds is not None:
        if args.rounds < 1:
            raise UsageError("--rounds must be at least 1")
        params["rounds" if args.scenario == "kamezawa" else "generations"] = args.rounds
    _warn_if_not_for(args.scenario, args.faults)
    runs = [(seed, variant) for seed in args.seed for variant in variants]
    stream = len(runs) > render.SIDE_BY_SIDE and not args.json
    show = args.scenario in LONG_SCENARIOS or len(runs) > render.SIDE_BY_SIDE
    if stream:
        print(f"scenario {args.scenario}, {len(runs)} runs", flush=True)
        print(render.stream_header(), flush=True)
    results = []
    for i, (seed, variant) in enumerate(runs, start=1):
        if show:
            progress.phase(f"sim {i}/{len(runs)}: {args.scenario} under {variant}, seed {seed}")
        try:
            r = simulate(args.scenario, variant, seed, args.faults, args.page_cluster,
                         params=params, keep_trace=True)  # fmt: skip
        except (ValueError, OSError) as exc:
            raise UsageError(str(exc)) from exc
        finally:
            progress.done()
        results.append(r)
        if args.json:
            print(json.dumps(r.to_dict()), flush=True)
        elif stream:
            print(render.stream_row(r), flush=True)
            if args.verbose and r.violations:
                print("\n".join(render.render_violations(r, True)), flush=True)
    if stream:
        print(_tally(results))
    elif not args.json:
        print(render_table(results, verbose=args.verbose))
        if args.verbose:
            _diagrams(results)
    return exit_status(results, args.strict)


def _tally(results: Sequence[Any]) -> str:
    from collections import Counter

    counts = Counter(r.verdict for r in results)
    return f"{len(results)} runs: " + ", ".join(f"{n} {v}" for v, n in counts.most_common())


def _diagrams(results: Sequence[Any]) -> None:
    """``sim -v``: each race as replay draws it, one column per CPU."""
    from kernsim.explore.diagram import draw_result

    for r in results:
        for text in draw_result(r):
            print()
            print(text)


def exit_status(results: Sequence[Any], strict: bool = False) -> int:
    """1 when a run leaks what its variant never gives back by itself or breaks another
    invariant; with ``strict``, also when it pins slots its variant gives back by design."""
    bad = any(r.failed or (strict and r.violations) for r in results)
    return EXIT_VIOLATION if bad else EXIT_OK


def _warn_if_not_for(scenario: str, faults: str | None) -> None:
    """A profile that says it does not apply to the scenario: one clear line on stderr."""
    from kernsim.faults import load_profile

    if faults is None:
        return
    try:
        reason = load_profile(faults).not_for_reason(scenario)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    if reason:
        print(
            f"kernsim: warning: fault profile {faults!r} does not apply to scenario "
            f"{scenario!r}: {reason}",
            file=sys.stderr,
        )


def render_table(results: Sequence[Any], verbose: bool = False) -> str:
    from kernsim.sim.render import render_table as render

    return render(results, verbose)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("kernsim")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    given = sys.argv[1:] if argv is None else list(argv)
    if not given:  # a bare `kernsim`: the list of commands, not an error about one
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(given)
    # The exact command, for reports that say what made them.
    args.command_line = shlex.join(["kernsim", *given])
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"kernsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`kernsim replay F | head`): stop quietly with the status a
        # shell gives a process SIGPIPE ended, as cat does, instead of a traceback.  Point
        # stdout at /dev/null so that the interpreter's flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
