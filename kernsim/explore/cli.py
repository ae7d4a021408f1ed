"""``kernsim explore``, ``kernsim replay`` and ``kernsim matrix``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernsim import options
from kernsim.cli import EXIT_OK, EXIT_USAGE, EXIT_VIOLATION, UsageError
from kernsim.explore.executors import default_jobs
from kernsim.explore.job import WINDOW_S
from kernsim.explore.shrink import BUDGET
from kernsim.sim.engine import TRACE_IDENTITY

_positive = options.positive


def register(sub: Any) -> None:
    from kernsim.sim.scenarios import SCENARIOS
    from kernsim.variants import VARIANTS

    ex = sub.add_parser(
        "explore",
        help="search schedules for races; shrink, classify and draw each one",
        description="Run N schedules of the deterministic simulation, one seed each, "
        "under a search strategy (default swarm: random walk, POS or delay per seed).  Every "
        "distinct race is shrunk, classified by its racing steps and drawn as a CPU0/CPU1 "
        "diagram.  Exit 0 "
        "when no schedule breaks an invariant, 1 when one does, 2 for bad usage.",
    )
    ex.add_argument("--scenario", default="race", choices=list(SCENARIOS))
    ex.add_argument("--variant", default="none", choices=list(VARIANTS))
    ex.add_argument(
        "--strategy",
        default="swarm",
        choices=["swarm", "random", "pos", "pct", "cpct", "delay", "systematic"],
        help="swarm (default): each schedule draws random, pos or delay and a window of 1x "
        "or 5x --window-us; pos: partial order sampling; delay: a CPU held back at a step on "
        "a page or slot another CPU will touch; pct: PCT over every step; cpct: PCT "
        "with change points on racing steps; systematic: every schedule with at most "
        "--preemptions preemptions (partial-order reduced)",
    )
    ex.add_argument("--schedules", type=_positive, default=300, help="default 300")
    ex.add_argument("--jobs", type=_positive, default=None, help="processes (default: all cores)")
    ex.add_argument("--seed", type=options.seed, default=0, help="first seed (default 0)")
    ex.add_argument("--depth", type=_positive, default=3, help="PCT's d (default 3)")
    ex.add_argument("--preemptions", type=int, default=2,
                    help="systematic: the preemption bound K (default 2)")  # fmt: skip
    ex.add_argument("--shrink-budget", type=int, default=BUDGET, metavar="N",
                    help="runs one race's shrinking may take (default %(default)s)")  # fmt: skip
    ex.add_argument("--stop-after-no-new-pairs", type=_positive, default=None, metavar="N",
                    help="stop when N schedules in a row covered no new racing pair")  # fmt: skip
    ex.add_argument(
        "--window-us",
        type=float,
        default=WINDOW_S * 1e6,
        help="steps due within this many virtual us are concurrent (default %(default)g)",
    )
    ex.add_argument(
        "--page-cluster",
        type=options.page_cluster,
        default=None,
        help="/proc/sys/vm/page-cluster, 0-8 (default: the scenario's)",
    )
    ex.add_argument("--faults", default=None, help="fault profile (default: the scenario's)")
    ex.add_argument("--out", type=Path, default=None, help="write replay files and reports here")
    ex.add_argument("--executor", default=None, help="dask://HOST:PORT: run on a Dask cluster")
    ex.add_argument("--check-determinism", action="store_true",
                    help="run every schedule twice and compare the trace hashes")  # fmt: skip
    ex.add_argument("--json", action="store_true", help="print the summary as JSON")
    ex.set_defaults(handler=cmd_explore)
    rp = sub.add_parser(
        "replay",
        help="re-run a replay file and draw its race",
        description="Exit 1 when the failure reproduces: the same trace hash and violations "
        '("reproduced"), or the same violations on a trace the current model tells apart '
        'from the recorded one ("same violations, different trace": the file was recorded '
        "by an older model).  Exit 0 when it does not reproduce, 2 for a bad file.",
    )
    rp.add_argument("file", type=Path)
    rp.add_argument("--json", action="store_true")
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
        "Exit 0 when every cell is clean, 1 otherwise.",
    )
    mx.add_argument("--schedules", type=int, default=200, help="race schedules per variant")
    mx.add_argument(
        "--kamezawa-seeds",
        type=int,
        default=2,
        help="kamezawa runs per variant, ~5-10 s each (default 2; 0 skips)",
    )
    mx.add_argument("--strategy", default="random", choices=["random", "pct"])
    mx.add_argument("--jobs", type=_positive, default=None, help="processes (default: all cores)")
    mx.add_argument("--seed", type=options.seed, default=0, help="first race seed (default 0)")
    mx.add_argument("--out", type=Path, default=Path("out/matrix"))
    mx.add_argument("--json", action="store_true", help="print the matrix as JSON")
    mx.add_argument("--history", action="store_true",
                    help="every known race against each posted version")  # fmt: skip
    mx.set_defaults(handler=cmd_matrix)


def cmd_explore(args: argparse.Namespace) -> int:
    from kernsim.explore.search import SearchConfig, explore

    if args.window_us < 0:
        raise UsageError("--window-us must be >= 0")
    if args.shrink_budget < 0:
        raise UsageError("--shrink-budget must be >= 0")
    if args.preemptions < 0:
        raise UsageError("--preemptions must be >= 0")
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
    from kernsim import progress

    try:
        summary = explore(cfg)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    finally:
        progress.done()  # the shrinking phase's spinner
    if args.out is not None:
        from kernsim.explore.report import write_explore_report

        write_explore_report(args.out, summary, getattr(args, "command_line", None))
    if args.json:
        print(json.dumps(summary))
    else:
        print(render(summary))
    if summary["divergences"]:
        return EXIT_USAGE + 1  # a determinism failure is a bug in kernsim, not a race
    return EXIT_VIOLATION if summary["failures"] else EXIT_OK


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
    from kernsim.explore.report import parse_diagrams, race_verdict

    for r in s["races"]:
        verdict = race_verdict(parse_diagrams(r.get("diagram", "")))
        lines += ["", f"== {r['class']} x{r['count']}  {', '.join(r['kinds'])}  ({verdict})"]
        if "events" in r:
            lines.append(
                f"   shrunk: {r['events_before_shrinking']} -> {r['events']} events, "
                f"{r['switches_before_shrinking']} -> {r['switches']} switches; "
                f"shrink: {r['shrink_attempts']} attempts; replay: {r['replay']}"
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
    from kernsim.explore import replayfile
    from kernsim.explore.diagram import draw_all
    from kernsim.explore.job import execute, kinds_of

    try:
        job, data = replayfile.read(args.file)
        run = execute(job)
    except replayfile.ReplayFileError as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:  # an unknown scenario or variant named in the file
        raise UsageError(f"{args.file}: {exc}") from exc
    kinds = list(kinds_of(run.result)) if run.result is not None else []
    verdict = replay_verdict(data, run.result_hash(), kinds)
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
    return EXIT_VIOLATION if reproduced else EXIT_OK


def replay_verdict(data: dict[str, Any], trace_sha256: str, kinds: list[str]) -> str:
    """ "reproduced" (same trace, bit for bit), "same violations, different trace" (the
    schedule still breaks the same invariants, but the model changed since the file was
    recorded), or "not reproduced"."""
    if not kinds or kinds != list(data["kinds"]):
        return "not reproduced"
    if trace_sha256 == data["trace_sha256"]:
        return "reproduced"
    return "same violations, different trace"


def cmd_matrix(args: argparse.Namespace) -> int:
    from kernsim.explore.matrix import MatrixConfig, build_matrix
    from kernsim.explore.matrix_report import to_markdown, write_matrix

    if args.history:
        from kernsim.explore import history

        h = history.build_history(args.jobs or default_jobs())
        return _emit(args, h, history.write_history, history.to_markdown, history.all_clean(h))
    if args.schedules < 0 or args.kamezawa_seeds < 0:
        raise UsageError("--schedules and --kamezawa-seeds must be >= 0")
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
    return EXIT_OK if clean else EXIT_VIOLATION
