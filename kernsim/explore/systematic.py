"""Systematic search: every schedule with at most K preemptions, up to equivalence.

Theory of operation
-------------------
A schedule is the sequence of CPUs picked at each decision.  The search is
stateless, as in CHESS (Musuvathi and Qadeer, PLDI 2007): each schedule is
run from the start, forced through a *prefix* of decisions and then left to
the default scheduler (keep running the CPU that ran last, else the one that
became runnable first).  From each run's decision records, every decision
after the prefix yields children: the same prefix up to it, then another CPU.
Picking another CPU while the last one could go on is a *preemption*; a
child is only made while the preemptions of its prefix stay within K
(preemption bounding).  Switching when the last CPU blocked or finished is
free.  With no step-time window (every runnable CPU can run next), the search
covers every interleaving the bound allows, not only those the clock makes
likely.

Partial-order reduction prunes children that only reorder independent steps
(steps whose footprints share no object, ``kernsim.explore.footprint``) with
sleep sets (Godefroid, 1996): after exploring CPU t at a decision, t sleeps in
the later siblings' subtrees until a step dependent on t's pending step runs;
a sleeping CPU is never picked as a child.  ``pruned`` counts those children.
Combining sleep sets with a preemption bound is not exact in general (Coons,
Musuvathi and McKinley, "Bounded partial-order reduction", OOPSLA 2013): a
pruned schedule's equivalent may need one more preemption than the bound.
``complete`` therefore means: every child within the bound was run or pruned
as equivalent, and the schedule budget (``--schedules``) was not reached.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kernsim.explore.coverage import Coverage
from kernsim.explore.executors import mapper
from kernsim.explore.job import Job, Outcome, execute, outcome_of
from kernsim.explore.strategies import Decision, Forced

#: No step-time window: every runnable CPU can run next (a finite number, so that a
#: replay file stays plain JSON).
WINDOW_S = 1e9
#: Schedules per batch and process.
BATCH = 16


@dataclass(frozen=True, slots=True)
class Node:
    prefix: tuple[str, ...]
    preemptions: int
    sleep: tuple[tuple[str, frozenset[Any]], ...]  # CPU -> footprint of its pending step


@dataclass(slots=True)
class Tally:
    runs: int = 0
    pruned: int = 0
    beyond_bound: int = 0
    diverged: int = 0


Ran = tuple[Outcome, list[Decision | None], bool]


def run_node(job: Job) -> Ran:
    """Top-level, so that a process pool can run it: the outcome and the decisions."""
    start = time.perf_counter()
    run = execute(job)
    chooser = run.chooser
    assert isinstance(chooser, Forced)
    return outcome_of(job, run, start), chooser.records, chooser.diverged


def children(
    node: Node, records: list[Decision | None], bound: int, tally: Tally, por: bool = True
) -> list[Node]:
    """The unexplored schedules that branch off this run after its prefix."""
    out: list[Node] = []
    sleep = dict(node.sleep)
    picked = (*node.prefix, *(d.picked for d in records[len(node.prefix) :] if d is not None))
    for i in range(len(node.prefix), len(records)):
        d = records[i]
        assert d is not None
        explored = [d.picked]
        for c in d.due:
            if c == d.picked:
                continue
            cost = 1 if d.last_due and c != d.default else 0
            if node.preemptions + cost > bound:
                tally.beyond_bound += 1
                continue
            if por and c in sleep:
                tally.pruned += 1
                continue
            fc = d.footprints[c]
            asleep = {**sleep, **{e: d.footprints[e] for e in explored}}
            keep = tuple(sorted(((n, fp) for n, fp in asleep.items() if not fp & fc), key=_name))
            out.append(Node((*picked[:i], c), node.preemptions + cost, keep))
            explored.append(c)
        ran = d.footprints[d.picked]
        sleep = {n: fp for n, fp in sleep.items() if n != d.picked and not fp & ran}
    return out


def _name(item: tuple[str, frozenset[Any]]) -> str:
    return item[0]


@dataclass(slots=True)
class Found:
    """What the search has seen so far."""

    races: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"ok": 0, "failed": 0, "livelock": 0, "diverged": 0}
    )
    first: int | None = None
    curve: list[tuple[int, int]] = field(default_factory=list)
    cover: Coverage = field(default_factory=Coverage)

    def add(self, job: Job, o: Outcome) -> None:
        from kernsim.explore.search import Race

        self.jobs.append(job)
        self.counts[o.status] += 1
        self.cover.add(len(self.jobs), o.pairs)
        if o.failed:
            self.first = o.index if self.first is None else self.first
            race = self.races.setdefault((o.classes, o.kinds), Race((o.classes, o.kinds), o))
            race.count += 1
            race.seeds.append(o.index)
            self.curve.append((len(self.jobs), self.counts["failed"]))


def search(cfg: Any, base: Job, pmap: Callable[..., Iterator[Ran]]) -> tuple[Tally, Found, int]:
    """Depth first over the schedule tree; returns the nodes left unexplored."""
    stack = [Node((), 0, ())]
    tally, found = Tally(), Found()
    while stack and tally.runs < cfg.schedules:
        # A batch of the deepest nodes: the order does not matter for completeness,
        # and a batch keeps every core busy.
        n = min(len(stack), BATCH * cfg.jobs, cfg.schedules - tally.runs)
        batch = [stack.pop() for _ in range(n)]
        todo = [replace(base, prefix=b.prefix, index=tally.runs + i) for i, b in enumerate(batch)]
        for node, job, (o, records, diverged) in zip(
            batch, todo, pmap(run_node, todo), strict=True
        ):
            tally.runs += 1
            tally.diverged += diverged
            found.add(job, o)
            # The earliest branch point goes deepest in the stack: it stays small.
            kids = children(node, records, cfg.preemptions, tally, cfg.por)
            stack.extend(reversed(kids))
        if cfg.progress:
            failing = found.counts["failed"]
            line = f"\r{tally.runs} schedules, {len(stack)} to go, {failing} failing"
            print(line, end="", file=sys.stderr, flush=True)
    return tally, found, len(stack)


def explore_systematic(cfg: Any) -> dict[str, Any]:
    """``kernsim explore --strategy systematic``: the search of the module docstring."""
    from kernsim.explore.search import _shrink_races

    base = Job(cfg.scenario, cfg.variant, cfg.seed, "systematic", window_s=WINDOW_S,
               page_cluster=cfg.page_cluster, faults=cfg.faults)  # fmt: skip
    start = time.perf_counter()
    with mapper(cfg.jobs, cfg.executor) as pmap:
        tally, found, left = search(cfg, base, pmap)
    elapsed = time.perf_counter() - start
    if cfg.progress:
        print(file=sys.stderr)
    shrunk = _shrink_races(cfg, found.jobs, list(found.races.values()))
    return {
        "scenario": cfg.scenario,
        "variant": cfg.variant,
        "strategy": "systematic",
        "preemptions": cfg.preemptions,
        "complete": not left and not tally.diverged,
        "schedules_run": tally.runs,
        "pruned": tally.pruned,
        "beyond_bound": tally.beyond_bound,
        "schedules_left": left,
        "window_s": WINDOW_S,
        "failures": found.counts["failed"],
        "livelocks": found.counts["livelock"],
        "divergences": tally.diverged,
        "first_failure_at": found.first,
        "elapsed_s": round(elapsed, 3),
        "schedules_per_s": round(tally.runs / elapsed, 1) if elapsed > 0 else None,
        "failures_curve": found.curve,
        "coverage": len(found.cover.pairs),
        "coverage_curve": found.cover.curve,
        "coverage_pairs": sorted(found.cover.pairs),
        "races": shrunk,
    }
