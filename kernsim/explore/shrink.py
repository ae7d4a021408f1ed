"""Shrinking: the fewest switches and kernel events that still break the same invariants.

A failing schedule is first turned into a replay job (the default scheduler
plus its recorded switches), then reduced in the passes below, each keeping a
candidate only when it still fails with the same violation kinds and the
same race class (or a subset of them), with no more switches than the best
so far (pass 6: with a shorter diagram instead) and no more kernel events
than the original -- so a schedule never grows:

1. the scenario's size: first every size at its smallest and the earliest
   kill in one run (often enough, and then the passes below work on a much
   shorter run), else fewer tasks, fewer pages, an earlier kill one by one;
2. equivalent failures: the same strategy (and a random walk) under other seeds
   with an early kill, keeping the first failure with the same kinds and classes
   and fewer events (most of a long run is reclaim retrying before the kill);
3. kernel events: the earliest kill time that keeps the race (a bisection);
4. the shortest prefix of the switches that still fails (a bisection: the
   switches after the race are most of a random walk's, and cost ddmin most);
5. ddmin (Zeller and Hildebrandt, 2002) over the switches that are left;
6. the drawn race, when its diagram does not fit on one screen: another CPU's
   steps inside the race's window moved in front of it
   (``kernsim.explore.shrink_window``), kept when the diagram gets shorter;
7. kernel events again: each switch moved to the earliest step that keeps
   the race, when that makes the run shorter.

Once the best's diagram fits on one screen (``SCREEN`` rows), no candidate
whose diagram does not is kept; an equivalent failure under another seed that
does not fit does not end the look for one that does.

Every candidate is one schedule run; their number is the shrinking's cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from kernsim.explore.job import WINDOW_S, Job, Outcome, execute, job_params, outcome_of
from kernsim.explore.shrink_window import (
    SCREEN,
    as_replay,
    drawn_rows,
    forced,
    record,
    window_moves,
)
from kernsim.explore.strategies import Switch

T = TypeVar("T")
#: Candidate runs one shrink may spend.
BUDGET = 400
#: Bisection steps on the kill time.
KILL_STEPS = 8
#: Other seeds tried for an equivalent failure with fewer events (at most a quarter of
#: the budget), and how many such failures end the look (the fewest events wins).
RESEEDS = 100
RESEED_FOUND = 1
#: The kill moments tried there: the first eighth of the scenario's range.
EARLY_KILL = 0.125
#: Seeds tried for a failure found at seed s: s * RESEED_STRIDE + 1, + 2, ...
RESEED_STRIDE = 1_000_003
#: Rounds of the drawn-race pass, candidates tried per round, and the share of the
#: budget ddmin leaves it when the diagram is over a screen.
WINDOW_ROUNDS = 8
WINDOW_TRIES = 100
WINDOW_SHARE = 0.25
#: Integer parameters that size a scenario (smaller is simpler), tried in this order.
SIZE_PARAMS = ("tasks", "pages", "rounds", "generations", "passes")


@dataclass(frozen=True, slots=True)
class Shrunk:
    job: Job  # a "replay" job: replay it to see the shrunk failure
    outcome: Outcome
    runs: int  # schedules run by the shrinking
    events_before: int
    switches_before: int


class _Shrinker:
    def __init__(self, target: Outcome, budget: int) -> None:
        self.events = target.events
        self.kinds = target.kinds
        self.classes = set(target.classes)
        self.budget = budget
        self.runs = 0
        self.rows = 0  # rows of the best's longest diagram

    def keeps(self, best: Outcome, o: Outcome, any_switches: bool = False) -> bool:
        return (
            o.failed
            and o.kinds == self.kinds
            and bool(o.classes)
            and set(o.classes) <= self.classes
            # Fewer switches first; events may move between candidates, never past
            # the original's.
            and o.events <= self.events
            and (any_switches or len(o.switches) <= len(best.switches))
        )

    def attempt(
        self,
        job: Job,
        best: Outcome,
        fewer_events: bool = False,
        same_classes: bool = False,
        fewer_rows: bool = False,
    ) -> Outcome | None:
        """Run ``job``; its outcome when it may replace ``best`` (then its rows are the
        best's).  ``fewer_rows``: only a shorter diagram, with any number of switches."""
        if self.runs >= self.budget:
            return None
        self.runs += 1
        start = time.perf_counter()
        run = execute(job)
        o = outcome_of(job, run, start)
        if fewer_events and o.events >= best.events:
            return None
        if same_classes and set(o.classes) != self.classes:
            return None
        if not self.keeps(best, o, any_switches=fewer_rows):
            return None
        rows = drawn_rows(run)
        if fewer_rows and rows >= self.rows:
            return None
        if rows > SCREEN >= self.rows:  # the best fits on a screen: so must this
            return None
        self.rows = rows
        return o


def shrink(job: Job, outcome: Outcome, budget: int = BUDGET) -> Shrunk:
    """Shrink the failing ``outcome`` of ``job``; the result is never larger."""
    s = _Shrinker(outcome, budget)
    base = replace(job, strategy="replay", switches=outcome.switches, check_determinism=False)
    best_job, best = base, outcome
    s.runs += 1  # the original's diagram (replayed): does it fit on a screen?
    s.rows = drawn_rows(execute(base))
    best_job, best = _shrink_size(s, best_job, best)
    best_job, best = _fewest_events(s, job, best_job, best)
    best_job, best = _earlier_kill(s, best_job, best)
    best_job, best = _shortest_prefix(s, best_job, best)
    # ddmin leaves the drawn-race pass its share when the diagram is over a screen.
    budget = s.budget
    if s.rows > SCREEN:
        s.budget -= int(budget * WINDOW_SHARE)
    best_job, best = _ddmin_switches(s, best_job, best)
    s.budget = budget
    best_job, best = _tighter_window(s, best_job, best)
    best_job, best = _earlier_switches(s, best_job, best)
    return Shrunk(best_job, best, s.runs, outcome.events, len(outcome.switches))


def _fewest_events(s: _Shrinker, job: Job, best_job: Job, best: Outcome) -> tuple[Job, Outcome]:
    """Among equivalent failing schedules, the one with the fewest kernel events: the
    same strategy (and a random walk) under other seeds, every task killed early in
    the scenario's range (most of a long run is memcg reclaim retrying in the tiny
    cgroup before the kill).  A candidate counts only with the same violation kinds and the
    same classes, exactly; the fewest events of up to ``RESEED_FOUND`` such wins, of
    those whose diagram fits on a screen (a longer one is kept while the look goes on)."""

    params: dict[str, Any] = job_params(job)  # scaled by the job's fault profile, as run
    early, late = params.get("kill_min_s"), params.get("kill_max_s")
    if job.strategy in ("replay", "systematic", "default") or not isinstance(early, float):
        return best_job, best
    assert isinstance(late, float)
    kill = (early, early + (late - early) * EARLY_KILL)
    # Every other seed: a random walk at the default window, which finds the frequent
    # classes in short runs most often.
    ways = ((job.strategy, job.window_s), ("random", min(job.window_s, WINDOW_S)))
    found = 0
    for k in range(1, min(RESEEDS, s.budget // 4) + 1):  # the other passes need the rest
        strategy, window_s = ways[k % 2]
        cand = replace(job, seed=job.seed * RESEED_STRIDE + k, strategy=strategy,
                       window_s=window_s, check_determinism=False)  # fmt: skip
        cand = cand.with_params(kill_min_s=kill[0], kill_max_s=kill[1])
        o = s.attempt(cand, best, fewer_events=True, same_classes=True)
        if o is None:
            continue
        best_job = replace(cand, strategy="replay", switches=o.switches)
        best = o
        if s.rows <= SCREEN:
            found += 1
        if found >= RESEED_FOUND:
            break
    return best_job, best


def _tighter_window(s: _Shrinker, job: Job, best: Outcome) -> tuple[Job, Outcome]:
    """The drawn race, while its diagram does not fit on a screen: record the schedule
    and try the orders of ``window_moves()`` (another CPU's steps inside the race's
    window run in front of it), keeping the first that fails the same way with a
    shorter diagram; then, while it does not fit, again from there.  At most
    ``WINDOW_SHARE`` of the budget, which ddmin leaves it."""
    budget, s.budget = s.budget, min(s.budget, s.runs + int(s.budget * WINDOW_SHARE))
    for _ in range(WINDOW_ROUNDS):
        if s.rows <= SCREEN or s.runs >= s.budget:
            break
        s.runs += 1
        rec, shorter = record(job), False
        for order in window_moves(rec)[:WINDOW_TRIES]:
            o = s.attempt(forced(job, order), best, fewer_rows=True)
            if o is not None:
                job, best, shorter = as_replay(job, o.switches), o, True
                break
        if not shorter:
            break
    s.budget = budget
    return job, best


def _earlier_kill(s: _Shrinker, job: Job, best: Outcome) -> tuple[Job, Outcome]:
    """Kernel events: kill the tasks as early as the race allows (a bisection on the
    kill time).  What runs after the race until the kill -- reclaim retrying on the
    leaked page, over and over -- goes with it."""
    params = job_params(job)  # as the run sees them: scaled by the job's fault profile
    lo, hi = 0.0, params.get("kill_min_s")
    if not isinstance(hi, float):
        return job, best
    for _ in range(KILL_STEPS):
        mid = (lo + hi) / 2
        cand = job.with_params(kill_min_s=mid, kill_max_s=mid)
        o = s.attempt(cand, best, fewer_events=True)
        if o is None:
            lo = mid
        else:
            job, best, hi = replace(cand, switches=o.switches), o, mid
    return job, best


def _earlier_switches(s: _Shrinker, job: Job, best: Outcome) -> tuple[Job, Outcome]:
    """Kernel events: move each switch (D, m, X) to the earliest step m' of D that
    still gives the race (a bisection), keeping a move only when the run gets
    shorter: the steps D took before it was preempted, and their retries, go."""
    switches = list(job.switches)
    for j in range(len(switches)):
        if j >= len(switches):
            break
        d, m, x = switches[j]
        lo, hi = 0, m
        while lo < hi:
            mid = (lo + hi) // 2
            trial = [*switches[:j], (d, mid, x), *switches[j + 1 :]]
            cand = replace(job, switches=tuple(trial))
            o = s.attempt(cand, best, fewer_events=True)
            if o is None:
                lo = mid + 1
            else:
                job, best, hi = replace(cand, switches=o.switches), o, mid
                switches = list(o.switches)
                if len(switches) != len(trial):
                    break  # the replay dropped a switch: start the next one afresh
    return job, best


def _ddmin_switches(s: _Shrinker, job: Job, best: Outcome) -> tuple[Job, Outcome]:
    found: dict[str, tuple[Job, Outcome]] = {}

    def test(switches: Sequence[Switch]) -> bool:
        nonlocal best
        cand = replace(job, switches=tuple(switches))
        o = s.attempt(cand, best)
        if o is None:
            return False
        # The replay records only the switches it could apply: keep those.
        best = o
        found["best"] = (replace(cand, switches=o.switches), o)
        return True

    ddmin(list(job.switches), test)
    return found.get("best", (job, best))


def _shortest_prefix(s: _Shrinker, job: Job, best: Outcome) -> tuple[Job, Outcome]:
    lo, hi = 0, len(job.switches)  # the first ``hi`` switches are known to fail
    while lo < hi:
        mid = (lo + hi) // 2
        cand = replace(job, switches=job.switches[:mid])
        o = s.attempt(cand, best)
        if o is None:
            lo = mid + 1
        else:
            job, best, hi = replace(cand, switches=o.switches), o, min(mid, len(o.switches))
    return job, best


def ddmin(items: list[T], test: Callable[[list[T]], bool]) -> list[T]:
    """The smallest subsequence of ``items`` found for which ``test`` holds (it holds
    for ``items``); removes complements of ever finer chunks."""
    if items and test([]):
        return []
    n = 2
    while len(items) >= 2:
        size = -(-len(items) // n)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        for i in range(len(chunks)):
            rest = [x for j, c in enumerate(chunks) if j != i for x in c]
            if test(rest):
                items, n = rest, max(n - 1, 2)
                break
        else:
            if n >= len(items):
                break
            n = min(n * 2, len(items))
    return items


def _shrink_size(s: _Shrinker, job: Job, best: Outcome) -> tuple[Job, Outcome]:
    params = job_params(job)  # as the run sees them: scaled by the job's fault profile
    smallest = _smallest(params)
    if smallest:
        cand = job.with_params(**smallest)
        o = s.attempt(cand, best)
        if o is not None:
            return replace(cand, switches=o.switches), o
    for name, value in _size_candidates(params):
        if value >= params[name]:  # an earlier candidate already went further
            continue
        cand = job.with_params(**{name: value})
        o = s.attempt(cand, best)
        if o is not None:
            job, best = replace(cand, switches=o.switches), o
            params[name] = value
    return job, best


def _smallest(params: dict[str, Any]) -> dict[str, Any]:
    """Every size parameter at its smallest useful value: two tasks race, one page each."""
    out: dict[str, Any] = {}
    for name in SIZE_PARAMS:
        v = params.get(name)
        low = 2 if name == "tasks" else 1
        if isinstance(v, int) and v > low:
            out[name] = low
    lo, hi = params.get("kill_min_s"), params.get("kill_max_s")
    if isinstance(lo, float) and isinstance(hi, float) and hi > lo:
        out["kill_max_s"] = lo
    return out


def _size_candidates(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """Smaller values to try, largest cut first: halve, then step down by one."""
    out: list[tuple[str, Any]] = []
    for name in SIZE_PARAMS:
        v = params.get(name)
        if isinstance(v, int) and v > 1:
            out += [(name, x) for x in sorted({1, v // 2, v - 1}) if 0 < x < v]
    lo, hi = params.get("kill_min_s"), params.get("kill_max_s")
    if isinstance(lo, float) and isinstance(hi, float) and hi > lo:
        # An earlier kill leaves fewer events behind it.
        out += [("kill_max_s", lo + (hi - lo) * f) for f in (0.0, 0.25, 0.5)]
    return out
