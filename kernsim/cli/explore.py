"""``kernsim explore``, ``kernsim replay`` and ``kernsim matrix``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernsim import progress
from kernsim.cli import options
from kernsim.cli.parser import UsageError
from kernsim.exits import Exit
from kernsim.explore import history, replayfile
from kernsim.explore.diagram import draw_all
from kernsim.explore.executors import default_jobs
from kernsim.explore.job import WINDOW_S, execute, kinds_of
from kernsim.explore.matrix import MatrixConfig, build_matrix
from kernsim.explore.matrix_report import to_markdown, write_matrix
from kernsim.explore.report import parse_diagrams, race_verdict, write_explore_report
from kernsim.explore.search import SearchConfig, explore
from kernsim.explore.shrink import BUDGET
from kernsim.sim.engine import TRACE_IDENTITY
from kernsim.sim.scenarios import SCENARIOS


def register(sub: Any) -> None:
    """Add ``explore``, ``replay`` and ``matrix`` to the kernsim command line."""
    ex = sub.add_parser(
        "explore",
        help="search schedules for races; shrink, classify and draw each one",
        description="Run N schedules of the deterministic simulation, one seed each, "
        "under a search strategy (default swarm: random walk, POS or delay per seed).  Every "
        "distinct race is shrunk, classified by its racing steps and drawn as a CPU0/CPU1 "
        "diagram.  Exit 0 when no schedule breaks an invariant, 1 when one does, 2 for bad "
        "usage, 3 when --check-determinism saw one schedule give two traces.",
    )
    options.add_scenario(ex, SCENARIOS, "race", "workload or catalogue race")
    options.add_variant(ex)
    ex.add_argument(
        "--strategy",
        default="swarm",
        choices=["swarm", "random", "pos", "pct", "cpct", "delay", "systematic"],
        help="swarm (default): each schedule draws random, pos or delay and a window of 1x "
        "or 5x --window-us; pos: partial order sampling; delay: a CPU held back at a step on "
        "a page or slot another CPU will touch; pct: PCT over every step; cpct: PCT "
        "with change points on racing steps; systematic: every schedule with at most "
        "--preemptions preemptions (partial-order reduced) (default: %(default)s)",
    )
    ex.add_argument("--schedules", type=options.positive, default=300,
                    help="schedules to run (default: %(default)s)")  # fmt: skip
    options.add_jobs(ex)
    options.add_seed(ex, 0, "first seed")
    ex.add_argument("--depth", type=options.positive, default=3,
                    help="PCT's d (default: %(default)s)")  # fmt: skip
    ex.add_argument("--preemptions", type=options.count, default=2,
                    help="systematic: the preemption bound K (default: %(default)s)")  # fmt: skip
    ex.add_argument("--shrink-budget", type=options.count, default=BUDGET, metavar="N",
                    help="runs one race's shrinking may take (default: %(default)s)")  # fmt: skip
    ex.add_argument("--stop-after-no-new-pairs", type=options.positive, default=None,
                    metavar="N", help="stop when N schedules in a row covered no new racing "
                    "pair (default: run every schedule)")  # fmt: skip
    ex.add_argument(
        "--window-us",
        type=options.non_negative,
        default=WINDOW_S * 1e6,
        help="steps due within this many virtual us are concurrent (default: %(default)g)",
    )
    options.add_page_cluster(ex)
    options.add_faults(ex)
    options.add_out(ex, None, "write replay files and an HTML report into this folder")
    ex.add_argument("--executor", default=None, metavar="dask://HOST:PORT",
                    help="run on a Dask cluster (default: processes here)")  # fmt: skip
    ex.add_argument("--check-determinism", action="store_true",
                    help="run every schedule twice and compare the trace hashes")  # fmt: skip
    options.add_json(ex, "print the summary as JSON", "text and each race's diagram")
    ex.set_defaults(handler=cmd_explore)
    rp = sub.add_parser(
        "replay",
        help="re-run a replay file and draw its race",
        description="Exit 1 when the failure reproduces: the same trace hash and violations "
        '("reproduced"), or the same violations on a trace the current model tells apart '
        'from the recorded one ("same violations, different trace": the file was recorded '
        "by an older model).  Exit 0 when it does not reproduce, 2 for a bad file.",
    )
    rp.add_argument("file", type=Path, help="a replay file (explore --out writes them)")
    options.add_json(rp, "print the verdict as JSON", "text and the race's diagram")
    rp.set_defaults(handler=cmd_replay)
    _register_matrix(sub)


def _register_matrix(sub: Any) -> None:
    mx = sub.add_parser(
        "matrix",
        help="every variant against every known race and the search workloads",
        description="Run the catalogue races (scripted, once each), N schedules of `race` "
        "(the same seeds in every column) and a few `kamezawa` seeds under none, v5, "
        "upstream and none with page_cluster=0; count which leak memsw, which pin swap "
        "slots, which are clean.  Writes matrix.md, matrix.json and matrix.png into --out.  "
        "Exit 0 when every cell is clean, 1 otherwise, 2 for bad usage.",
    )
    mx.add_argument("--schedules", type=options.count, default=200,
                    help="race schedules per variant (default: %(default)s)")  # fmt: skip
    mx.add_argument(
        "--kamezawa-seeds",
        type=options.count,
        default=2,
        help="kamezawa runs per variant, ~5-10 s each; 0 skips them (default: %(default)s)",
    )
    mx.add_argument("--strategy", default="random", choices=["random", "pct"],
                    help="how the race schedules are drawn (default: %(default)s)")  # fmt: skip
    options.add_jobs(mx)
    options.add_seed(mx, 0, "first race seed")
    options.add_out(mx, Path("out/matrix"), "write matrix.md, matrix.json and matrix.png here")
    options.add_json(mx, "print the matrix as JSON", "a Markdown table")
    mx.add_argument("--history", action="store_true",
                    help="every known race against each posted version")  # fmt: skip
    mx.set_defaults(handler=cmd_matrix)


def cmd_explore(args: argparse.Namespace) -> int:
    if args.executor and not args.executor.startswith("dask://"):
        raise UsageError(f"unknown executor {args.executor!r} (try dask://HOST:PORT)")
    cfg = SearchConfig(
        args.scenario,
        args.variant,
        args.strategy,
        args.schedules,
        args.jobs or default_jobs(),
        args.seed,
        args.depth,
        args.window_us * 1e-6,
        args.page_cluster,
        args.faults,
        args.out,
        args.executor,
        args.check_determinism,
        progress=not args.json,
        preemptions=args.preemptions,
        stop_after_no_new_pairs=args.stop_after_no_new_pairs,
        shrink_budget=args.shrink_budget,
    )
    try:
        summary = explore(cfg)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    finally:
        progress.done()  # the shrinking phase's spinner
    if args.out is not None:
        write_explore_report(args.out, summary, getattr(args, "command_line", None))
    if args.json:
        print(json.dumps(summary))
    else:
        print(render(summary))
    if summary["divergences"]:
        return Exit.SERVICE  # a determinism failure is a bug in kernsim, not a race
    return Exit.VIOLATED if summary["failures"] else Exit.OK


def render(s: dict[str, Any]) -> str:
    lines = [
        f"{s['schedules_run']} schedules of {s['scenario']} under {s['variant']} "
        f"({s['strategy']}): {s['failures']} failing, {s['livelocks']} livelocked, "
        f"first failure at {_first(s['first_failure_at'])}, "
        f"{s['coverage']} racing pairs covered, {s['schedules_per_s']} schedules/s",
    ]
    if s.get("strategy") == "systematic":
        done = "complete" if s["complete"] else "NOT complete (schedule budget reached)"
        lines.append(f"systematic, <= {s['preemptions']} preemptions: {done}; "
                     f"{s['pruned']} schedules pruned as equivalent")  # fmt: skip
    if s.get("stopped_early"):
        lines.append(f"stopped: no new racing pair in the last schedules "
                     f"({s['schedules_run']} of {s['schedules_planned']} run)")  # fmt: skip
    if s["divergences"]:
        lines.append(f"DETERMINISM: {s['divergences']} schedules gave two different traces")
    if not s["failures"]:
        lines.append(hint(s))

    for r in s["races"]:
        verdict = race_verdict(parse_diagrams(r.get("diagram", "")))
        lines += ["", f"== {r['class']} x{r['count']}  {', '.join(r['kinds'])}  ({verdict})"]
        if "events" in r:
            lines.append(
                f"   shrunk: {r['events_before_shrinking']} -> {r['events']} events, "
                f"{r['switches_before_shrinking']} -> {r['switches']} switches; "
                f"shrink: {r['shrink_attempts']} attempts; "
                + (f"replay: {r['replay']}" if r["replay"] else "replay file: with --out DIR")
            )
            if r.get("cite"):
                lines.append(f"   described in: {'; '.join(r['cite'])}")
            if r["class"].startswith("NEW") and r.get("racing_pairs"):
                pairs = "; ".join(f"{a} -> {b} ({k})" for k, a, b in r["racing_pairs"])
                lines.append(f"   racing pairs: {pairs}")
            lines += ["", r["diagram"]]
    return "\n".join(lines)


def _first(index: int | None) -> str:
    return "none" if index is None else f"#{index}"


def hint(s: dict[str, Any]) -> str:
    """What to try next when a search found nothing."""
    tips = []
    if s["strategy"] != "swarm":
        tips.append("--strategy swarm")
    if s["strategy"] == "systematic":
        tips.append(f"--preemptions {s['preemptions'] + 1}")
    else:
        tips.append(f"--schedules {s['schedules_run'] * 10}")
    tips.append(f"--window-us {s['window_s'] * 5e6:g}")
    tips.append("--seed N (another part of the seed space)")
    return "no schedule broke an invariant; to search harder try: " + ", ".join(tips)


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        job, data = replayfile.read(args.file)
        run = execute(job)
    except replayfile.ReplayFileError as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:  # an unknown scenario or variant named in the file
        raise UsageError(f"{args.file}: {exc}") from exc
    kinds = list(kinds_of(run.result)) if run.result is not None else []
    verdict = replayfile.verdict(data, run.result_hash(), kinds)
    reproduced = verdict != "not reproduced"
    if args.json:
        print(json.dumps({"reproduced": reproduced, "verdict": verdict,
                          "trace_sha256": run.result_hash(),
                          "recorded_trace_sha256": data["trace_sha256"],
                          "trace_identity": TRACE_IDENTITY, "kinds": kinds}))  # fmt: skip
    else:
        now, then = run.result_hash()[:12], str(data["trace_sha256"])[:12]
        if verdict == "reproduced":
            print(f"reproduced ({now})")
        elif verdict == "same violations, different trace":
            print(f"reproduced: same violations, different trace ({now}; the file's {then} "
                  "was recorded by an older model)")  # fmt: skip
        else:
            print(f"NOT reproduced ({now}; the file recorded {then}: {', '.join(data['kinds'])})")
        if run.result is not None and run.result.violations:
            print("\n\n".join(d for _, d in draw_all(run)))
    return Exit.VIOLATED if reproduced else Exit.OK


def cmd_matrix(args: argparse.Namespace) -> int:
    if args.history:
        h = history.build_history(args.jobs or default_jobs())
        return _emit(args, h, history.write_history, history.to_markdown, history.all_clean(h))
    cfg = MatrixConfig(args.schedules, args.kamezawa_seeds, args.jobs or default_jobs(),
                       args.strategy, seed=args.seed)  # fmt: skip
    m = build_matrix(cfg)
    clean = all(c["clean"] == c["runs"] for r in m["rows"] for c in r["cells"].values())
    return _emit(args, m, write_matrix, to_markdown, clean)


def _emit(
    args: argparse.Namespace,
    data: dict[str, Any],
    write: Callable[[Path, dict[str, Any], str | None], list[Path]],
    markdown: Callable[[dict[str, Any]], str],
    clean: bool,
) -> int:
    """Write a matrix's files into --out, print it (or --json), exit 1 unless clean."""
    try:
        paths = write(args.out, data, getattr(args, "command_line", None))
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc}") from exc
    if args.json:
        print(json.dumps(data))
    else:
        print(markdown(data))
        print("written:", ", ".join(map(str, paths)))
    return Exit.OK if clean else Exit.VIOLATED
