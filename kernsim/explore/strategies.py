"""Schedulers for schedule search: random walk, PCT, and replay of a recorded schedule.

Theory of operation
-------------------
Every strategy here runs the engine in its *scripted* mode with a zero step
cost: all runnable CPUs are then due at the same virtual instant, and the
strategy alone decides which one runs next.  Virtual time still passes for
sleeps and bio latencies, and a strategy only ever picks among the steps due
within ``window_s`` of the earliest one.  A window wider than zero matters:
with an infinitely fast CPU an interrupt (a bio completion) would otherwise
never meet a task in the middle of a code path, because nothing else is due
at its exact instant; within the window, steps due at nearby instants are
concurrent and the strategy orders them.  A step picked ahead of an earlier
one moves the clock to its own time, and the earlier one then runs late: the
clock stays monotonic.

A schedule is recorded as data, relative to a *default* scheduler that is
non-preemptive: keep running the CPU that ran last while it is runnable, else
the one that became runnable first.  Every decision where a strategy chose
otherwise is a *switch*, anchored to kernel events rather than to a decision
index: ``(D, m, X)`` means "when CPU D is about to run its m-th step by
default, run CPU X instead".  Replaying the switches over the default
scheduler gives the very same run, without any of the strategy's randomness:
each anchor is used once, and where two match at once the one recorded first
wins, as it did.  X's own step count is left out on purpose: it changes as
soon as any earlier step moves, and the preemption would be lost.  Dropping
switches (shrinking) gives a schedule closer to the default, and, unlike a
decision index, an anchor still names the same preemption after an earlier
switch is dropped and the decisions shift.

The strategies draw from their own ``random.Random``, never from the
engine's: the engine's source keeps driving the scenario (kill moments, bio
latencies) in the order the schedule fixes, so a replay reproduces the trace
hash bit for bit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from kernsim.explore.footprint import Obj, scheduling_footprint
from kernsim.sim.cpu import SimCpu
from kernsim.sim.engine import Engine, Strategy

Ready = list[tuple[float, float, int, SimCpu]]
#: ``swarm``: each schedule draws one of these (strategy, window as a multiple of
#: --window-us).  A narrow window lets a task run long stretches (reclaim against
#: a zap: example-a, type-2, writeback); a wide one lets a bio completion meet a
#: task in the middle of a code path (example-b, type-1, the v5 hole); ``delay``
#: holds a CPU back in the middle of a code path while another runs a whole
#: section on the same page (v5's write and read windows).
SWARM = (
    ("random", 1.0),
    ("pos", 1.0),
    ("random", 5.0),
    ("pos", 5.0),
    ("delay", 1.0),
    ("delay", 5.0),
)


def swarm_choice(seed: int, window_s: float) -> tuple[str, float]:
    """Swarm testing (Groce et al., ISSTA 2012): vary the search's own configuration
    from schedule to schedule, so that no setting hides a class of races."""
    strategy, scale = SWARM[random.Random(seed * 104729 + 3).randrange(len(SWARM))]
    return strategy, window_s * scale


#: (default CPU, its step count, CPU run instead)
Switch = tuple[str, int, str]


class Chooser(Strategy):
    """Base of the search strategies: picks among the steps due now, records switches."""

    scripted = True
    step_cost_s = 0.0

    def __init__(self, rng: random.Random, window_s: float = 0.0) -> None:
        super().__init__(rng)
        self.window_s = window_s
        self.decision = 0
        self.last: SimCpu | None = None
        self.switches: list[Switch] = []
        self.picked: dict[str, int] = {}  # steps each CPU has run: the anchors' counts
        self.engine: Engine | None = None

    def footprint(self, cpu: SimCpu) -> frozenset[Obj]:
        assert self.engine is not None
        return scheduling_footprint(cpu, self.engine.mm)

    def conflicts(self, ready: Ready, i: int) -> list[int]:
        """The other ready CPUs whose pending step touches an object step ``i`` touches."""
        fp = self.footprint(ready[i][3])
        if not fp:
            return []
        me = ready[i][3]
        return [j for j, e in enumerate(ready) if e[3] is not me and fp & self.footprint(e[3])]

    def count(self, cpu: SimCpu) -> int:
        return self.picked.get(cpu.name, 0)

    fixed_key = 0.0  # no draw from the engine's random source: see the module docstring

    def key(self, cpu: SimCpu) -> float:
        return 0.0

    #: pick() is not called when only one CPU is due (it could only run that one):
    #: strategies whose pick() keeps state about every decision turn this off.
    skip_single = True

    def choose(self, engine: Engine, ready: Ready) -> int:
        """Pick one of ``ready``, the engine's heap of pending steps.

        ``ready`` is a heap ordered by (time, key, seq) and every key is 0.0
        (see key()): its root ``ready[0]`` is the earliest step, the first one
        that became runnable among those due at that instant.  So ``t`` is its
        time, and the default scheduler's fallback (the step due first) is 0.
        """
        self.engine = engine
        first = ready[0]
        default = 0
        if len(ready) == 1:
            due = [0]
        else:
            # One pass finds the due steps and the default: non-preemptive, the last
            # CPU while it is due now (at t itself), else the root.
            t = first[0]
            horizon = t + self.window_s
            last = self.last
            due = []
            for i, e in enumerate(ready):
                if e[0] <= horizon:
                    due.append(i)
                    if e[3] is last and e[0] <= t:
                        default = i
        if len(due) == 1 and self.skip_single:
            cpu = first[3]
            pick = 0
        else:
            pick = self.pick(ready, due, default)
            cpu = ready[pick][3]
            if pick != default:
                d = ready[default][3].name
                self.switches.append((d, self.picked.get(d, 0), cpu.name))
        picked = self.picked
        name = cpu.name
        picked[name] = picked.get(name, 0) + 1
        self.decision += 1
        self.last = cpu
        return pick

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        return default

    def _highest(self, ready: Ready, due: list[int], prio: dict[str, float], base: float) -> int:
        """The first due step of the highest priority, as ``max()`` would pick it; a CPU
        seen for the first time draws ``base + random()``, in the order of ``due``.
        Priorities are never negative."""
        rng = self.rng
        best, top = due[0], -1.0
        for i in due:
            name = ready[i][3].name
            p = prio.get(name)
            if p is None:
                p = prio[name] = base + rng.random()
            if p > top:
                best, top = i, p
        return best


class RandomWalk(Chooser):
    """At every step, any CPU due now, uniformly at random."""

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        return due[int(self.rng.random() * len(due))] if len(due) > 1 else default


class Pct(Chooser):
    """PCT (Burckhardt et al., ASPLOS 2010) with ``depth`` d over about ``steps`` steps.

    Each CPU gets a random priority above d when it first shows up (CPUs are
    created as the run goes: bio completions, work items), so the initial
    priorities are distinct and randomly ordered.  At the i-th of the d-1
    change points the CPU that runs drops to priority i, below every initial one.
    The highest-priority CPU due now always runs.
    """

    skip_single = False  # a change point may fall on any decision

    def __init__(self, rng: random.Random, window_s: float, depth: int, steps: int) -> None:
        super().__init__(rng, window_s)
        self.depth = depth
        points = rng.sample(range(1, max(steps, depth) + 1), max(depth - 1, 0))
        # The i-th change point (in time order) lowers its CPU to priority i.
        self.change_at = {k: i for i, k in enumerate(sorted(points), start=1)}
        self.priority: dict[str, float] = {}

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        best = self._highest(ready, due, self.priority, self.depth)
        change = self.change_at.get(self.decision)
        if change is not None:
            self.priority[ready[best][3].name] = float(change)
        return best


class Pos(Chooser):
    """Partial Order Sampling (Yuan, Yang and Gu, CAV 2018).

    Every pending step gets a random priority when it becomes pending; the
    highest-priority step due now runs.  After a step runs, the pending steps
    of other CPUs that conflict with it (their footprints share an object) get
    fresh priorities: racing steps are reordered at random, while a step that
    races with nothing keeps its place.  Unlike a random walk, a long code path
    is not cut at every step: only where another CPU's step would race with it.
    """

    skip_single = False  # every step that runs is a new event with a new priority

    def __init__(self, rng: random.Random, window_s: float) -> None:
        super().__init__(rng, window_s)
        self.prio: dict[str, float] = {}

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        best = self._highest(ready, due, self.prio, 0.0) if len(due) > 1 else default
        prio = self.prio
        me = ready[best][3]
        prio.pop(me.name, None)  # its next step is a new event
        # The pending steps that race with it get fresh priorities.  Only a CPU that
        # has a priority can lose it: the others' footprints are not needed.
        others = [e[3] for e in ready if e[3] is not me and e[3].name in prio]
        if others:
            fp = self.footprint(me)
            if fp:
                for cpu in others:
                    if fp & self.footprint(cpu):
                        del prio[cpu.name]
        return best


class ConflictPct(Chooser):
    """PCT whose change points fall on *racing* steps only.

    Plain PCT spreads its d-1 change points uniformly over every decision of a
    run (about 2,000 on ``race``, most of them reclaim loops that race with
    nothing).  Here a decision counts only when the step that runs conflicts
    with a step another CPU has pending (their footprints share an object), and
    the change points are drawn over the ``steps`` racing decisions of a run.
    """

    skip_single = False

    def __init__(self, rng: random.Random, window_s: float, depth: int, steps: int) -> None:
        super().__init__(rng, window_s)
        self.depth = depth
        points = rng.sample(range(1, max(steps, depth) + 1), max(depth - 1, 0))
        self.change_at = {k: i for i, k in enumerate(sorted(points), start=1)}
        self.priority: dict[str, float] = {}
        self.racing = 0  # racing decisions so far

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        best = self._highest(ready, due, self.priority, self.depth) if len(due) > 1 else default
        if len(ready) > 1 and self.conflicts(ready, best):
            self.racing += 1
            change = self.change_at.get(self.racing)
            if change is not None:
                self.priority[ready[best][3].name] = float(change)
        return best


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of a run, as the systematic search sees it."""

    due: tuple[str, ...]  # the CPUs that could run
    default: str  # the one the default scheduler runs
    picked: str
    last_due: bool  # the CPU that ran last could go on: running another is a preemption
    footprints: dict[str, frozenset[Obj]]  # each due CPU's pending step


class Forced(Chooser):
    """Runs the CPUs named by ``prefix`` at the first decisions, then the default
    scheduler, and records every decision (kernsim.explore.systematic)."""

    skip_single = False  # every decision is recorded: the sleep sets follow each step

    def __init__(self, rng: random.Random, window_s: float, prefix: Sequence[str]) -> None:
        super().__init__(rng, window_s)
        self.prefix = prefix
        self.records: list[Decision | None] = []  # None within the prefix: not needed
        self.diverged = False

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        k = self.decision
        pick = default
        if k < len(self.prefix):
            want = self.prefix[k]
            found = [i for i in due if ready[i][3].name == want]
            if found:
                pick = found[0]
            else:
                self.diverged = True
        last = self.last
        if k < len(self.prefix):
            self.records.append(None)
            return pick
        self.records.append(
            Decision(
                tuple(ready[i][3].name for i in due),
                ready[default][3].name,
                ready[pick][3].name,
                last is not None and any(ready[i][3] is last for i in due),
                {ready[i][3].name: self.footprint(ready[i][3]) for i in due},
            )
        )
        return pick


class Replay(Chooser):
    """The default scheduler plus recorded switches; a switch that does not match is skipped."""

    def __init__(self, rng: random.Random, window_s: float, switches: Sequence[Switch]) -> None:
        super().__init__(rng, window_s)
        self.want: dict[tuple[str, int], list[str]] = {}
        for d, m, x in switches:  # in recorded order: the first that matches wins
            self.want.setdefault((d, m), []).append(x)

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        d = ready[default][3]
        wanted = self.want.get((d.name, self.count(d)))
        if not wanted:
            return default
        for n, x in enumerate(wanted):
            for i in due:
                if ready[i][3].name == x:
                    del wanted[n]  # used once: D may be the default at this count again
                    return i
        return default
