"""The ``kernsim`` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

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


def _seeds(text: str) -> list[int]:
    """``7``, ``1-20`` or ``1,5,9``."""
    try:
        out: list[int] = []
        for part in text.split(","):
            lo, sep, hi = part.partition("-")
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a seed list: {text!r} (try 7, 1-20 or 1,5,9)"
        ) from None
    if not out or any(s < 0 for s in out):
        raise argparse.ArgumentTypeError(f"seeds must be whole numbers >= 0: {text!r}")
    return out


def _page_cluster(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 8:
        raise argparse.ArgumentTypeError("page-cluster must be between 0 and 8")
    return value


def build_parser() -> argparse.ArgumentParser:
    from kernsim.sim.scenarios import SCENARIOS
    from kernsim.variants import VARIANTS

    parser = argparse.ArgumentParser(
        prog="kernsim",
        description="A laboratory for Linux kernel races: the memcg stale swap cache leak "
        "of 2.6.30.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser(
        "sim",
        help="run the deterministic simulation",
        description="Run a scenario on the virtual clock, kill every task, let the system "
        "settle and check the invariants.  Exit 0 when they hold, 1 when not, 2 for bad "
        "usage.",
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
        "-v", "--verbose", action="store_true", help="print the trace events each violation names"
    )
    sim.set_defaults(handler=cmd_sim)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def cmd_sim(args: argparse.Namespace) -> int:
    from kernsim.sim.run import simulate

    variants = args.variant or ["none"]
    params: dict[str, Any] = {}
    if args.rounds is not None:
        if args.rounds < 1:
            raise UsageError("--rounds must be at least 1")
        params["rounds" if args.scenario == "kamezawa" else "generations"] = args.rounds
    results = []
    for seed in args.seed:
        for variant in variants:
            try:
                r = simulate(
                    args.scenario,
                    variant,
                    seed,
                    args.faults,
                    args.page_cluster,
                    params=params,
                    keep_trace=True,
                )
            except (ValueError, OSError) as exc:
                raise UsageError(str(exc)) from exc
            results.append(r)
            if args.json:
                print(json.dumps(r.to_dict()), flush=True)
    if not args.json:
        print(render_table(results, verbose=args.verbose))
    return EXIT_OK if all(r.invariants_ok for r in results) else EXIT_VIOLATION


ROWS = [
    ("seed", "seed"),
    ("invariants", "invariants_ok"),
    ("memsw leak (bytes)", "memsw_leak_bytes"),
    ("memory.usage_in_bytes", "usage_bytes"),
    ("memory.memsw.usage_in_bytes", "memsw_usage_bytes"),
    ("stale swap cache pages", "stale_swapcache_pages"),
    ("swap slots in use", "swap_slots_used"),
    ("  after global reclaim", "swap_slots_used_after_global_reclaim"),
    ("memcg OOM kills", "oom_kills"),
    ("kernel events", "events"),
    ("virtual seconds", "virtual_s"),
    ("trace sha256", "trace_sha256"),
]


def render_table(results: Sequence[Any], verbose: bool = False) -> str:
    """The runs side by side, one column each, then their violations."""
    if not results:
        return ""
    first = results[0]
    lines = [
        f"scenario {first.scenario}, faults {first.faults}, page_cluster {first.page_cluster}",
        "",
    ]
    cols = [r.to_dict() for r in results]
    header = ["", *[f"{c['variant']}" for c in cols]]
    rows = [header]
    for label, key in ROWS:
        if key == "virtual_s" and "wall_s" in cols[0]:
            label = "seconds of load (wall)"  # the cluster runs on the real clock
        vals = []
        for c in cols:
            v = c[key]
            if key == "invariants_ok":
                v = "ok" if v else "VIOLATED"
            elif key == "trace_sha256":
                v = v[:12]
            elif isinstance(v, float):
                v = f"{v:.3f}"
            vals.append(str(v))
        rows.append([label, *vals])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in results:
        if r.violations:
            lines.append("")
            lines.append(f"violations under {r.variant}, seed {r.seed}:")
            for v in r.violations:
                lines.append(f"  [{v.kind}] {v.message}")
                if verbose:
                    lines.extend(f"      {e}" for e in v.events)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"kernsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
