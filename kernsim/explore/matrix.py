"""The leak matrix: every variant against every known race and every search workload.

Rows are workloads, columns are variants (``none``, ``v5``, ``upstream``,
and ``none`` with ``page_cluster=0``, i.e. no swap-in readahead):

- the catalogue races (``example-a``, ``example-b``, ``type-1``, ``type-2``):
  scripted, so one run each says whether the variant closes that interleaving;
- ``race`` under schedule search: N schedules, the same seeds in every column;
- ``kamezawa``: the mails' reproducer, a few seeds (each run takes seconds).

Each run lands in exactly one bucket: ``memsw_leak`` (memsw.usage > usage once
every task is gone, whatever else broke), ``slot_pinned`` (no memsw leak, but
swap slots still in use), ``other`` (another invariant, or a livelock), or
``clean``.  A cell is the count per bucket, plus the race classes seen.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from kernsim.explore.executors import run_all
from kernsim.explore.job import WINDOW_S, Job, Outcome, run_schedule

CATALOGUE = ("example-a", "example-b", "type-1", "type-2")
BUCKETS = ("memsw_leak", "slot_pinned", "other", "clean")


@dataclass(frozen=True, slots=True)
class Column:
    label: str
    variant: str
    page_cluster: int | None = None


COLUMNS = (
    Column("none", "none"),
    Column("v5", "v5"),
    Column("upstream", "upstream"),
    Column("none, page_cluster=0", "none", 0),
)


@dataclass(frozen=True, slots=True)
class SimTask:
    """One plain simulate() run: a catalogue race or a kamezawa seed."""

    row: str
    column: str
    scenario: str
    variant: str
    seed: int
    page_cluster: int | None


@dataclass(frozen=True, slots=True)
class Tally:
    """What one run contributes to its cell."""

    row: str
    column: str
    bucket: str
    kinds: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    memsw_leak_bytes: int = 0
    swap_slots_used: int = 0
    error: str = ""


@dataclass(slots=True)
class Cell:
    runs: int = 0
    buckets: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    memsw_leak_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, t: Tally) -> None:
        self.runs += 1
        self.buckets[t.bucket] += 1
        self.classes.update(t.classes)
        self.kinds.update(t.kinds)
        self.memsw_leak_bytes += t.memsw_leak_bytes
        if t.error and len(self.errors) < 3:
            self.errors.append(t.error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            **{b: self.buckets.get(b, 0) for b in BUCKETS},
            "memsw_leak_bytes": self.memsw_leak_bytes,
            "classes": dict(sorted(self.classes.items())),
            "kinds": dict(sorted(self.kinds.items())),
            "errors": self.errors,
        }


def bucket_of(failed: bool, memsw_leak_bytes: int, swap_slots_used: int) -> str:
    if memsw_leak_bytes > 0:
        return "memsw_leak"
    if swap_slots_used > 0:
        return "slot_pinned"
    return "other" if failed else "clean"


def run_sim_task(task: SimTask) -> Tally:
    """Top-level (it crosses process boundaries): one simulate() run, bucketed."""
    from kernsim.explore.classify import classify_run
    from kernsim.explore.job import Run
    from kernsim.explore.strategies import Chooser
    from kernsim.sim.run import simulate

    # Only the catalogue's short traces are kept: they are classified below.
    keep = task.scenario in CATALOGUE
    try:
        r = simulate(task.scenario, task.variant, task.seed, None, task.page_cluster,
                     keep_trace=keep)  # fmt: skip
    except (AssertionError, RuntimeError) as exc:
        # A scripted setup that cannot happen under this variant (e.g. no readahead
        # with page_cluster=0) is reported, not fatal to the whole matrix.
        return Tally(task.row, task.column, "other", error=f"{type(exc).__name__}: {exc}")
    kinds = tuple(sorted({v.kind for v in r.violations}))
    classes: tuple[str, ...] = ()
    if keep and r.violations:
        import random

        job = Job(task.scenario, task.variant, task.seed)
        classes = tuple(classify_run(Run(job, r, Chooser(random.Random(0)))))
    bucket = bucket_of(bool(r.violations), r.memsw_leak_bytes, r.swap_slots_used)
    return Tally(task.row, task.column, bucket, kinds, classes, r.memsw_leak_bytes,
                 r.swap_slots_used)  # fmt: skip


def tally_outcome(row: str, column: str, o: Outcome) -> Tally:
    if o.status == "livelock":
        return Tally(row, column, "other", ("livelock",))
    bucket = bucket_of(o.failed, o.memsw_leak_bytes, o.swap_slots_used)
    return Tally(row, column, bucket, o.kinds, o.classes, o.memsw_leak_bytes, o.swap_slots_used)


@dataclass(frozen=True, slots=True)
class MatrixConfig:
    schedules: int = 200
    kamezawa_seeds: int = 2
    jobs: int = 1
    strategy: str = "random"
    window_s: float = WINDOW_S
    seed: int = 0
    columns: tuple[Column, ...] = COLUMNS
    catalogue: tuple[str, ...] = CATALOGUE


def sim_tasks(cfg: MatrixConfig) -> list[SimTask]:
    out: list[SimTask] = []
    for col in cfg.columns:
        # Kamezawa first: the longest runs should start first on the pool.
        for s in range(cfg.kamezawa_seeds):
            out.append(SimTask("kamezawa", col.label, "kamezawa", col.variant, cfg.seed + 1 + s,
                               col.page_cluster))  # fmt: skip
    for col in cfg.columns:
        for name in cfg.catalogue:
            out.append(SimTask(name, col.label, name, col.variant, 1, col.page_cluster))
    return out


def race_jobs(cfg: MatrixConfig) -> list[tuple[str, Job]]:
    out: list[tuple[str, Job]] = []
    for col in cfg.columns:
        base = Job("race", col.variant, 0, cfg.strategy, window_s=cfg.window_s,
                   page_cluster=col.page_cluster)  # fmt: skip
        # The same seeds in every column: a cell differs from its neighbour only by
        # the variant.
        for i in range(cfg.schedules):
            out.append((col.label, replace(base, seed=cfg.seed + i, index=i)))
    return out


def rows_of(cfg: MatrixConfig) -> list[str]:
    rows = list(cfg.catalogue)
    if cfg.schedules:
        rows.append(f"race ({cfg.strategy} search)")
    if cfg.kamezawa_seeds:
        rows.append("kamezawa")
    return rows


def build_matrix(cfg: MatrixConfig) -> dict[str, Any]:
    """Run every cell; the summary that the Markdown, JSON and PNG are made from."""
    start = time.perf_counter()
    cells: dict[tuple[str, str], Cell] = {}
    tasks = sim_tasks(cfg)
    from kernsim import progress

    for t in progress.track(run_all(run_sim_task, tasks, cfg.jobs), len(tasks), "matrix runs"):
        cells.setdefault((t.row, t.column), Cell()).add(t)
    race_row = f"race ({cfg.strategy} search)"
    labelled = race_jobs(cfg)
    outcomes = progress.track(run_all(run_schedule, [j for _, j in labelled], cfg.jobs),
                              len(labelled), "matrix race schedules")  # fmt: skip
    for (label, _), o in zip(labelled, outcomes, strict=True):
        cells.setdefault((race_row, label), Cell()).add(tally_outcome(race_row, label, o))
    cols = [c.label for c in cfg.columns]
    return {
        "columns": cols,
        "rows": [
            {"workload": row, "cells": {c: cells.get((row, c), Cell()).to_dict() for c in cols}}
            for row in rows_of(cfg)
        ],
        "schedules": cfg.schedules,
        "strategy": cfg.strategy,
        "window_s": cfg.window_s,
        "kamezawa_seeds": cfg.kamezawa_seeds,
        "first_seed": cfg.seed,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
