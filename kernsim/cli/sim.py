"""``kernsim sim``: a scenario on the virtual clock, settled and checked."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from kernsim import progress
from kernsim.cli import options
from kernsim.cli.parser import UsageError
from kernsim.exits import Exit
from kernsim.explore.diagram import draw_result
from kernsim.faults import load_profile
from kernsim.sim import render
from kernsim.sim.run import simulate
from kernsim.sim.scenarios import SCENARIOS

#: Scenarios whose runs take seconds: they show progress.
LONG_SCENARIOS = ("kamezawa", "nishimura")


def register(sub: Any) -> None:
    """Add ``sim`` to the kernsim command line."""
    p = sub.add_parser(
        "sim",
        help="run the deterministic simulation",
        description="Run a scenario on the virtual clock, kill every task, let the system "
        "settle and check the invariants.  Exit 1 on a memsw leak, on a swap slot the "
        "variant never gives back by itself, or on another broken invariant; 0 otherwise "
        "(slots the variant gives back by design are reported, not failed; see --strict); "
        "2 for bad usage.",
    )
    options.add_scenario(p, SCENARIOS, "kamezawa", "workload or catalogue race")
    options.add_variant(p, many=True)
    options.add_seed(p, 1, many=True)
    options.add_faults(p)
    options.add_page_cluster(p)
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="load scenarios: kill-all rounds (kamezawa) or generations (default: the scenario's)",
    )
    options.add_json(p, "print one JSON object per run")
    options.add_verbose(
        p,
        "list every violation with the trace events it names, and draw each race "
        "as a CPU-column diagram",
    )
    options.add_strict(p)
    p.set_defaults(handler=cmd_sim)


def cmd_sim(args: argparse.Namespace) -> int:
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
        print(render.render_table(results, args.verbose))
        if args.verbose:
            _diagrams(results)
    return exit_status(results, args.strict)


def _tally(results: Sequence[Any]) -> str:
    counts = Counter(r.verdict for r in results)
    return f"{len(results)} runs: " + ", ".join(f"{n} {v}" for v, n in counts.most_common())


def _diagrams(results: Sequence[Any]) -> None:
    """``sim -v``: each race as replay draws it, one column per CPU."""
    for r in results:
        for text in draw_result(r):
            print()
            print(text)


def exit_status(results: Sequence[Any], strict: bool = False) -> int:
    """1 when a run leaks what its variant never gives back by itself or breaks another
    invariant; with ``strict``, also when it pins slots its variant gives back by design."""
    bad = any(r.failed or (strict and r.violations) for r in results)
    return Exit.VIOLATED if bad else Exit.OK


def _warn_if_not_for(scenario: str, faults: str | None) -> None:
    """A profile that says it does not apply to the scenario: one clear line on stderr."""
    if faults is None:
        return
    reason = load_profile(faults).not_for_reason(scenario)
    if reason:
        print(
            f"kernsim: warning: fault profile {faults!r} does not apply to scenario "
            f"{scenario!r}: {reason}",
            file=sys.stderr,
        )
