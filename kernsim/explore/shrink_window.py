"""Shrinking the drawn race: the same race with fewer of the other CPUs' steps inside it.

A race's diagram draws every step on its slot and pages from the first step of
its pattern to a few steps after the decisive one.  When another CPU runs a
whole code path on the page inside that window (fork's second mm swapping the
page in while the first has just decided to copy it), the diagram draws all of
it, although only that path's racing steps decide the race.  The same race
often happens with that path run *before* the window opens: the candidates
below are the recorded schedule with one CPU's steps, from the window's start
through one of its drawn steps, moved in front of the window (a run forced
through that order of CPUs, ``kernsim.explore.strategies.Forced``).  The
shrinker keeps a candidate only when it fails the same way and draws fewer
rows; every candidate is one schedule run, replayed like any other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from kernsim.explore.classify import Match, settled_trace
from kernsim.explore.diagram import draw_all, race_events
from kernsim.explore.job import Job, Run, chooser_rng, execute
from kernsim.explore.strategies import Ready, Replay, Switch
from kernsim.model.port import PrimitiveInfo
from kernsim.sim.engine import Engine, Strategy

#: Rows a diagram may take: one screen, a race that reads like the mail.
SCREEN = 25
#: Steps of the window's first CPU, counted back from the window's start, in front of
#: which another CPU's steps are moved.
INSERT_POINTS = 6


def drawn_rows(run: Run) -> int:
    """The rows of the longest diagram of a failing ``run`` (0 when none is drawn)."""
    if run.result is None or not run.result.violations:
        return 0  # a livelock or a clean run: no diagram
    return max((len(d.splitlines()) for _, d in draw_all(run)), default=0)


class _Recording(Replay):
    """A replay that also records the CPU of every decision, in order."""

    def __init__(self, rng: random.Random, window_s: float, switches: tuple[Switch, ...]) -> None:
        super().__init__(rng, window_s, switches)
        self.sequence: list[str] = []

    def choose(self, engine: Engine, ready: Ready) -> int:
        i = super().choose(engine, ready)
        assert self.last is not None
        self.sequence.append(self.last.name)
        return i


@dataclass(slots=True)
class Recorded:
    """A replayed run with the CPU of each decision and the decision of each event."""

    run: Run
    sequence: list[str]
    decision_of: list[int]  # trace index -> index into ``sequence``


def record(job: Job) -> Recorded:
    """Replay ``job`` (a "replay" job) recording its decisions."""
    made: list[_Recording] = []

    def strategy(_: random.Random) -> Strategy:
        made.append(_Recording(chooser_rng(job), job.window_s, job.switches))
        return made[-1]

    decision_of: list[int] = []

    def observe(engine: Engine, info: PrimitiveInfo) -> None:
        decision_of.append(made[-1].decision - 1)

    run = execute(job, (observe,), strategy)
    return Recorded(run, made[-1].sequence if made else [], decision_of)


def longest_match(run: Run) -> Match | None:
    drawn = draw_all(run)
    if not drawn:
        return None
    return max(drawn, key=lambda md: len(md[1].splitlines()))[0]


def window_moves(rec: Recorded) -> list[tuple[str, ...]]:
    """Orders of CPUs to force: for each of the window's first CPU's last steps up to
    the window's start, and each drawn step of another CPU inside the window (not a
    step of the race's pattern), that CPU's steps from there through the drawn step
    moved in front.  Nearest to the window's start first."""
    if rec.run.result is None or not rec.run.result.violations:
        return []
    m = longest_match(rec.run)
    if m is None:
        return []
    trace = settled_trace(rec.run)
    seq, dec = rec.sequence, rec.decision_of
    where = {id(ev): i for i, ev in enumerate(trace)}
    drawn = [where[id(ev)] for ev in race_events(trace, m)]
    first = trace[m.start].cpu
    points = [i for i in range(m.start, -1, -1) if trace[i].cpu == first][:INSERT_POINTS]
    out: dict[tuple[str, ...], None] = {}
    for i in points:
        r = dec[i]
        for e in drawn:
            cpu = trace[e].cpu
            if e <= m.start or cpu == first or e in m.steps:
                continue
            q = dec[e]
            moved = [k for k in range(r, q + 1) if seq[k] == cpu]
            if not moved:
                continue
            gone = set(moved)
            rest = (seq[k] for k in range(r, len(seq)) if k not in gone)
            out.setdefault((*seq[:r], *(seq[k] for k in moved), *rest))
    return list(out)


def forced(job: Job, order: tuple[str, ...]) -> Job:
    """A job forced through ``order`` (then the default scheduler)."""
    return replace(job, strategy="systematic", prefix=order, switches=())


def as_replay(job: Job, switches: tuple[Switch, ...]) -> Job:
    return replace(job, strategy="replay", switches=switches, prefix=())
