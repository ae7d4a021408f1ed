"""``kernsim plot``: the dashboard's headline panels as a PNG (kernsim.plot draws them)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from kernsim import plot, progress
from kernsim.cli import options
from kernsim.cli.parser import UsageError
from kernsim.exits import Exit


def register(sub: Any) -> None:
    """Add ``plot`` to the kernsim command line."""
    p = sub.add_parser(
        "plot",
        help="draw usage vs memsw.usage over time as PNG from Prometheus",
        description="Query a Prometheus that scrapes the cluster (query_range) and draw the "
        "dashboard's headline panels (usage vs memsw.usage per cgroup, memsw leak, stale swap "
        "cache pages) as one PNG, for a user without Grafana.  Exit 2 on bad input or when "
        "Prometheus cannot be reached or has no kernsim series.",
    )
    p.add_argument(
        "--prometheus",
        default="http://127.0.0.1:9090",
        help="Prometheus base URL (default: the compose deployment's, %(default)s)",
    )
    p.add_argument("--since", default="10m",
                   help="window up to now: 90s, 10m, 1h (default: %(default)s)")  # fmt: skip
    p.add_argument("--step", default=None, help="resolution, e.g. 5s (default: window / 1000)")
    options.add_out(p, Path("kernsim-headline.png"), "where the picture goes", "PNG")
    p.add_argument("--title", default=None,
                   help="figure title (default: kernsim, the window and the URL)")  # fmt: skip
    p.set_defaults(handler=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    try:
        base = plot.check_url(args.prometheus)
        since_s = plot.parse_duration(args.since)
        step_s = plot.parse_duration(args.step) if args.step else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    queries = sum(len(targets) for _, targets, _ in plot.PANELS)
    progress.phase(f"querying Prometheus at {base} ({queries} range queries)")
    try:
        panels = plot.fetch(base, since_s, step_s, time.time())
    except plot.PrometheusError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        progress.done()
    if not any(panels):
        raise UsageError(
            f"no kernsim series at {base} in the last {args.since}: is it scraping the cluster?"
        )
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"no such folder for --out: {out.parent}")
    progress.phase(f"drawing {out}")
    try:
        plot.draw(panels, out, args.title or f"kernsim, last {args.since} ({base})")
    finally:
        progress.done()
    n = sum(len(p) for p in panels)
    print(f"wrote {out} ({n} series over {args.since})")
    return Exit.OK
