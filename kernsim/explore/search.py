"""The explorer: run N schedules, then shrink, classify and draw each distinct race once."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kernsim.explore import replayfile
from kernsim.explore.diagram import draw_all
from kernsim.explore.executors import run_all
from kernsim.explore.job import WINDOW_S, Job, Outcome, execute, run_schedule
from kernsim.explore.shrink import BUDGET, Shrunk, shrink
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


@dataclass(slots=True)
class Race:
    key: tuple[tuple[str, ...], tuple[str, ...]]
    first: Outcome
    count: int = 0
    seeds: list[int] = field(default_factory=list)


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
    return [replace(base, seed=cfg.seed + i, index=i) for i in range(cfg.schedules)]


def estimate_steps(cfg: SearchConfig) -> int:
    """PCT's k: the decisions of one run under the default scheduler."""
    job = Job(cfg.scenario, cfg.variant, cfg.seed, "default", window_s=cfg.window_s,
              page_cluster=cfg.page_cluster, faults=cfg.faults)  # fmt: skip
    return max(run_schedule(job).decisions, 10)


def explore(cfg: SearchConfig) -> dict[str, Any]:
    steps = estimate_steps(cfg) if cfg.strategy == "pct" else 0
    jobs = make_jobs(cfg, steps)
    races: dict[tuple[tuple[str, ...], tuple[str, ...]], Race] = {}
    counts = {"ok": 0, "failed": 0, "livelock": 0, "diverged": 0}
    first_failure: int | None = None
    curve: list[tuple[int, int]] = []
    start = time.perf_counter()
    for n, o in enumerate(run_all(run_schedule, jobs, cfg.jobs, cfg.executor), start=1):
        counts[o.status] += 1
        if o.failed:
            first_failure = o.index if first_failure is None else first_failure
            race = races.setdefault((o.classes, o.kinds), Race((o.classes, o.kinds), o))
            race.count += 1
            race.seeds.append(o.seed)
            curve.append((n, counts["failed"]))
        if cfg.progress:
            _progress(n, len(jobs), counts, start)
    elapsed = time.perf_counter() - start
    if cfg.progress:
        print(file=sys.stderr)
    shrunk = _shrink_races(cfg, jobs, list(races.values()))
    return {
        "scenario": cfg.scenario,
        "variant": cfg.variant,
        "strategy": cfg.strategy,
        "depth": cfg.depth if cfg.strategy == "pct" else None,
        "steps_estimate": steps or None,
        "window_s": cfg.window_s,
        "schedules_run": len(jobs),
        "failures": counts["failed"],
        "livelocks": counts["livelock"],
        "divergences": counts["diverged"],
        "first_failure_at": first_failure,
        "elapsed_s": round(elapsed, 3),
        "schedules_per_s": round(len(jobs) / elapsed, 1) if elapsed > 0 else None,
        "failures_curve": curve,
        "races": shrunk,
    }


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
    items = [(jobs[r.first.index], r.first, cfg.shrink_budget) for r in todo]
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
        "shrink_schedules_run": sh.runs,
        "params": dict(sh.job.params),
        "trace_sha256": run.result_hash(),
        "replay": replay,
        "usage_plot": usage_plot,
        "diagram": diagram,
    }
