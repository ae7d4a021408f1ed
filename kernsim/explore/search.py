"""The explorer: run N schedules, then shrink, classify and draw each distinct race once."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kernsim.explore import replayfile
from kernsim.explore.coverage import Coverage
from kernsim.explore.diagram import draw_all
from kernsim.explore.executors import run_all
from kernsim.explore.job import WINDOW_S, Job, Outcome, execute, run_schedule
from kernsim.explore.shrink import BUDGET, Shrunk, shrink
from kernsim.explore.strategies import swarm_choice
from kernsim.explore.timeline import CounterSampler, plot_usage

#: Distinct races shrunk per search; the rest are counted, not shrunk.
MAX_SHRINKS = 8


@dataclass(frozen=True, slots=True)
class SearchConfig:
    scenario: str
    variant: str
    strategy: str = "pct"
    schedules: int = 1000
    jobs: int = 1
    seed: int = 0
    depth: int = 3
    window_s: float = WINDOW_S
    page_cluster: int | None = None
    faults: str | None = None
    out: Path | None = None
    executor: str | None = None
    check_determinism: bool = False
    shrink_budget: int = BUDGET
    progress: bool = False
    preemptions: int = 2  # systematic: the preemption bound
    por: bool = True  # systematic: prune equivalent schedules (sleep sets)
    stop_after_no_new_pairs: int | None = None


@dataclass(slots=True)
class Race:
    key: tuple[tuple[str, ...], tuple[str, ...]]
    first: Outcome
    count: int = 0
    seeds: list[int] = field(default_factory=list)
    #: The failure shrunk: of the equivalent failures (same classes and kinds) the one
    #: with the fewest kernel events, then the fewest switches.
    shortest: Outcome | None = None

    def add(self, o: Outcome) -> None:
        self.count += 1
        self.seeds.append(o.seed)
        s = self.shortest
        if s is None or (o.events, len(o.switches)) < (s.events, len(s.switches)):
            self.shortest = o


def make_jobs(cfg: SearchConfig, steps: int) -> list[Job]:
    base = Job(
        cfg.scenario,
        cfg.variant,
        0,
        cfg.strategy,
        cfg.depth,
        cfg.window_s,
        steps,
        page_cluster=cfg.page_cluster,
        faults=cfg.faults,
        check_determinism=cfg.check_determinism,
    )
    jobs = [replace(base, seed=cfg.seed + i, index=i) for i in range(cfg.schedules)]
    if cfg.strategy == "swarm":
        for i, job in enumerate(jobs):
            strategy, window_s = swarm_choice(job.seed, cfg.window_s)
            jobs[i] = replace(job, strategy=strategy, window_s=window_s)
    return jobs


def estimate_steps(cfg: SearchConfig) -> int:
    """PCT's k: the decisions of one run under the default scheduler (``pct``), or
    the racing decisions of one run without change points (``cpct``)."""
    if cfg.strategy == "cpct":
        from kernsim.explore.strategies import ConflictPct

        job = Job(cfg.scenario, cfg.variant, cfg.seed, "cpct", depth=1, window_s=cfg.window_s,
                  page_cluster=cfg.page_cluster, faults=cfg.faults)  # fmt: skip
        chooser = execute(job).chooser
        assert isinstance(chooser, ConflictPct)
        return max(chooser.racing, 10)
    job = Job(cfg.scenario, cfg.variant, cfg.seed, "default", window_s=cfg.window_s,
              page_cluster=cfg.page_cluster, faults=cfg.faults)  # fmt: skip
    return max(run_schedule(job).decisions, 10)


def explore(cfg: SearchConfig) -> dict[str, Any]:
    if cfg.strategy == "systematic":
        from kernsim.explore.systematic import explore_systematic

        return explore_systematic(cfg)
    steps = estimate_steps(cfg) if cfg.strategy in ("pct", "cpct") else 0
    jobs = make_jobs(cfg, steps)
    races: dict[tuple[tuple[str, ...], tuple[str, ...]], Race] = {}
    counts = {"ok": 0, "failed": 0, "livelock": 0, "diverged": 0}
    first_failure: int | None = None
    curve: list[tuple[int, int]] = []
    cover = Coverage()
    stopped_early = False
    n = 0
    start = time.perf_counter()
    outcomes = run_all(run_schedule, jobs, cfg.jobs, cfg.executor)
    try:
        for n, o in enumerate(outcomes, start=1):
            counts[o.status] += 1
            cover.add(n, o.pairs)
            if o.failed:
                first_failure = o.index if first_failure is None else first_failure
                race = races.setdefault((o.classes, o.kinds), Race((o.classes, o.kinds), o))
                race.add(o)
                curve.append((n, counts["failed"]))
            if cfg.progress:
                _progress(n, len(jobs), counts, start)
            limit = cfg.stop_after_no_new_pairs
            if limit is not None and cover.since_new >= limit and n < len(jobs):
                stopped_early = True
                break
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()  # stops the pool: the schedules not run yet are cancelled
    elapsed = time.perf_counter() - start
    if cfg.progress:
        print(file=sys.stderr)
    shrunk = _shrink_races(cfg, jobs, list(races.values()))
    summary = {
        "scenario": cfg.scenario,
        "variant": cfg.variant,
        "strategy": cfg.strategy,
        "depth": cfg.depth if cfg.strategy in ("pct", "cpct") else None,
        "steps_estimate": steps or None,
        "window_s": cfg.window_s,
        "schedules_run": n,
        "schedules_planned": len(jobs),
        "stopped_early": stopped_early,
        "failures": counts["failed"],
        "livelocks": counts["livelock"],
        "divergences": counts["diverged"],
        "first_failure_at": first_failure,
        "elapsed_s": round(elapsed, 3),
        "schedules_per_s": round(n / elapsed, 1) if elapsed > 0 else None,
        "failures_curve": curve,
        "coverage": len(cover.pairs),
        "coverage_curve": cover.curve,
        "coverage_pairs": sorted(cover.pairs),
        "races": shrunk,
    }
    _coverage_png(cfg, summary)
    return summary


def _coverage_png(cfg: SearchConfig, summary: dict[str, Any]) -> None:
    """coverage.png in --out (named in the summary as ``coverage_png``), if matplotlib is
    installed."""
    summary["coverage_png"] = None
    if cfg.out is None:
        return
    from kernsim.explore.coverage import plot_coverage

    cfg.out.mkdir(parents=True, exist_ok=True)
    png = cfg.out / "coverage.png"
    title = f"{cfg.scenario} under {cfg.variant} ({cfg.strategy}): racing pairs covered"
    if plot_coverage(png, summary["coverage_curve"], summary["schedules_run"], title):
        summary["coverage_png"] = png.name


def _progress(n: int, total: int, counts: dict[str, int], start: float) -> None:
    """The search's bar (kernsim.progress: rich on a terminal, phase lines otherwise); at
    the end, the shrinking phase's spinner, which the caller's done() clears."""
    from kernsim import progress

    if n == 1:
        progress.bar(total, "schedules")
    progress.advance(1, f"{counts['failed']} failing")
    if n == total:
        progress.done()
        if counts["failed"]:
            progress.phase(
                f"shrinking, classifying and drawing the failing races ({counts['failed']} "
                "failing schedules)",
                ticking=False,  # the shrink runs fork a process pool
            )


def shrink_job(item: tuple[Job, Outcome, int]) -> Shrunk:
    """Top-level, so that a process pool or Dask can run it."""
    job, outcome, budget = item
    return shrink(job, outcome, budget)


def _shrink_races(cfg: SearchConfig, jobs: list[Job], races: list[Race]) -> list[dict[str, Any]]:
    todo = races[:MAX_SHRINKS]
    start = [r.shortest or r.first for r in todo]
    items = [(jobs[o.index], o, cfg.shrink_budget) for o in start]
    merged: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}
    for race, sh in zip(todo, run_all(shrink_job, items, cfg.jobs, cfg.executor), strict=True):
        entry = describe(cfg, sh)
        key = (entry["class"], entry["detail"], tuple(entry["kinds"]))
        if key in merged:  # two unshrunk keys shrank to the same race
            merged[key]["count"] += race.count
            continue
        entry.update(count=race.count, seeds=race.seeds[:20])
        merged[key] = entry
    for race in races[MAX_SHRINKS:]:
        classes, kinds = race.key
        merged[("+".join(classes), "not shrunk", kinds)] = {
            "class": "+".join(classes), "detail": "not shrunk", "kinds": list(kinds),
            "count": race.count, "seeds": race.seeds[:20],
        }  # fmt: skip
    return list(merged.values())


def describe(cfg: SearchConfig, sh: Shrunk) -> dict[str, Any]:
    """Replay the shrunk schedule: its class, diagram, and replay file."""
    sampler = CounterSampler()
    run = execute(sh.job, observers=(sampler,))
    drawn = draw_all(run)
    cls = "+".join(sorted({m.cls for m, _ in drawn}))
    pairs = sorted({p for m, _ in drawn for p in m.pairs})
    cites = sorted({m.cite for m, _ in drawn if m.cite})
    detail = "; ".join(sorted({m.detail for m, _ in drawn if m.detail}))
    diagram = "\n\n".join(d for _, d in drawn)
    replay = None
    usage_plot = None
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        path = cfg.out / f"{cfg.scenario}-{cfg.variant}-{cls}-seed{sh.job.seed}.json"
        replayfile.write(path, sh.job, run.result_hash(), sh.outcome.kinds,
                         race_class=cls, diagram=diagram)  # fmt: skip
        replay = str(path)
        png = path.with_suffix(".usage.png")
        if plot_usage(png, sampler, f"{cls}, seed {sh.job.seed}: usage and memsw.usage"):
            usage_plot = png.name
    return {
        "class": cls,
        "detail": detail,
        "kinds": list(sh.outcome.kinds),
        "seed": sh.job.seed,
        "events": sh.outcome.events,
        "events_before_shrinking": sh.events_before,
        "switches": len(sh.outcome.switches),
        "switches_before_shrinking": sh.switches_before,
        "shrink_attempts": sh.runs,
        "racing_pairs": [list(p) for p in pairs],
        "cite": cites,
        "params": dict(sh.job.params),
        "trace_sha256": run.result_hash(),
        "replay": replay,
        "usage_plot": usage_plot,
        "diagram": diagram,
    }
