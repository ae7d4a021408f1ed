"""One schedule as a plain, picklable job: what a process pool or a Dask worker runs."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kernsim.check.spec import workload_params
from kernsim.explore.coverage import Pair
from kernsim.explore.delay import Delay
from kernsim.explore.strategies import (
    Chooser,
    ConflictPct,
    Forced,
    Pct,
    Pos,
    RandomWalk,
    Replay,
    Switch,
)
from kernsim.faults import Profile, load_profile
from kernsim.sim.engine import SimulationError, Strategy, collector_paused
from kernsim.sim.run import SimResult, build_world, check
from kernsim.sim.scenarios import get_scenario

STRATEGIES = ("random", "pos", "pct", "cpct", "delay", "replay", "default", "systematic")
#: A step budget far above a normal run of the search scenarios (race: 2-20k steps).
MAX_STEPS = 200_000
#: About a swap read under the "none" profile: a completion can meet any step of a task.
WINDOW_S = 0.0002


@dataclass(frozen=True, slots=True)
class Job:
    """A schedule: the scenario and variant, the seed, and how the scheduler decides."""

    scenario: str
    variant: str
    seed: int
    strategy: str = "random"
    depth: int = 3
    window_s: float = WINDOW_S  # steps due this close together are concurrent
    steps: int = 2000  # PCT's estimate k of the steps in a run
    switches: tuple[Switch, ...] = ()  # "replay": the recorded schedule
    page_cluster: int | None = None
    params: tuple[tuple[str, Any], ...] = ()
    faults: str | None = None  # None: the scenario's own fault profile
    max_steps: int = MAX_STEPS
    index: int = 0  # position in the search, for first_failure_at
    check_determinism: bool = False
    prefix: tuple[str, ...] = ()  # "systematic": the CPUs of the first decisions, in order

    def with_params(self, **params: Any) -> Job:
        merged = {**dict(self.params), **params}
        return replace(self, params=tuple(sorted(merged.items())))


@dataclass(frozen=True, slots=True)
class Outcome:
    index: int
    seed: int
    status: str  # "ok", "failed", "livelock", "diverged"
    # The trace's identity, for a schedule that did not pass (what a replay file pins).
    # A passing one is not hashed: formatting every event's identity line was an
    # eighth of a search's CPU.  Run.result_hash() hashes any run on demand.
    trace_sha256: str
    events: int
    decisions: int
    kinds: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    switches: tuple[Switch, ...] = ()  # kept for failures only: they are replayed
    memsw_leak_bytes: int = 0
    swap_slots_used: int = 0
    wall_s: float = 0.0
    pairs: frozenset[Pair] = frozenset()  # racing pairs covered (kernsim.explore.coverage)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(slots=True)
class Run:
    """A finished run with everything a diagram needs (only in the process that ran it)."""

    job: Job
    result: SimResult | None
    chooser: Chooser
    load_events: int = 0  # trace events before the settle phase began
    livelock: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def result_hash(self) -> str:
        return self.result.sha256() if self.result is not None else ""


def chooser_rng(job: Job) -> random.Random:
    """The chooser's own random source, derived from the job's seed (never the engine's:
    see kernsim.explore.strategies)."""
    return random.Random(job.seed * 7919 + 17)


def make_strategy(job: Job) -> Callable[[random.Random], Strategy]:
    rng = chooser_rng(job)
    w = job.window_s
    if job.strategy == "random":
        return lambda _: RandomWalk(rng, w)
    if job.strategy == "pct":
        return lambda _: Pct(rng, w, job.depth, job.steps)
    if job.strategy == "pos":
        return lambda _: Pos(rng, w)
    if job.strategy == "cpct":
        return lambda _: ConflictPct(rng, w, job.depth, job.steps)
    if job.strategy == "delay":
        return lambda _: Delay(rng, w)
    if job.strategy == "replay":
        return lambda _: Replay(rng, w, job.switches)
    if job.strategy == "default":
        return lambda _: Chooser(rng, w)
    if job.strategy == "systematic":
        return lambda _: Forced(rng, w, job.prefix)
    raise ValueError(f"unknown strategy {job.strategy!r} (known: {', '.join(STRATEGIES)})")


@functools.lru_cache(maxsize=16)
def _profile(name: str) -> Profile:
    """A fault profile, read once per process: a search runs thousands of schedules
    under one profile, and finding and parsing its file took about 2 ms of each."""
    return load_profile(name)


def execute(
    job: Job,
    observers: tuple[Callable[..., None], ...] = (),
    strategy: Callable[[random.Random], Strategy] | None = None,
) -> Run:
    """Run ``job`` as simulate() would, keeping the chooser and where the load ended.

    ``observers`` are added to the engine's (e.g. a counter sampler for a plot);
    ``strategy`` replaces the job's own chooser (one that makes the same decisions
    and records more, e.g. the shrinker's)."""
    profile = _profile(job.faults or get_scenario(job.scenario).faults)
    world = build_world(
        job.scenario,
        job.variant,
        job.seed,
        profile,
        job.page_cluster,
        strategy or make_strategy(job),
        max_steps=job.max_steps,
    )
    engine = world.engine
    chooser = engine.strategy
    assert isinstance(chooser, Chooser)
    engine.observers.extend(observers)
    run = Run(job, None, chooser)
    try:
        get_scenario(job.scenario).run(world, job_params(job, profile))
        run.load_events = len(engine.trace)
        run.result = check(world, job.scenario, hash_trace=False)
    except SimulationError as exc:
        run.livelock = str(exc)
    return run


def job_params(job: Job, profile: Profile | None = None) -> dict[str, Any]:
    """The workload parameters ``job`` runs with: the scenario's, stretched by its fault
    profile as simulate() stretches them, then the job's own."""
    if profile is None:
        profile = _profile(job.faults or get_scenario(job.scenario).faults)
    return workload_params(job.scenario, profile, job.params)


def run_schedule(job: Job) -> Outcome:
    """The per-seed job: run one schedule and say whether it broke an invariant.

    The cyclic collector pauses for the whole schedule, setting up and checking
    included, not only while the engine runs: the run is dropped when this
    returns, and the next collection frees its cycles in one pass (a search
    collected each schedule's objects in about 20 passes, a tenth of its CPU)."""
    start = time.perf_counter()
    with collector_paused():
        return outcome_of(job, execute(job), start)


def outcome_of(job: Job, run: Run, start: float) -> Outcome:
    from kernsim.explore.classify import classify_run
    from kernsim.explore.coverage import racing_pairs

    r = run.result
    if r is None:
        return Outcome(job.index, job.seed, "livelock", "", job.max_steps, run.chooser.decision)
    status = "failed" if r.violations else "ok"
    if job.check_determinism and execute(job).result_hash() != run.result_hash():
        status = "diverged"
    failed = status == "failed"
    return Outcome(
        index=job.index,
        seed=job.seed,
        status=status,
        trace_sha256=run.result_hash() if status != "ok" else "",
        events=r.events,
        decisions=run.chooser.decision,
        kinds=kinds_of(r),
        classes=tuple(classify_run(run)) if failed else (),
        switches=tuple(run.chooser.switches) if failed else (),
        memsw_leak_bytes=r.memsw_leak_bytes,
        swap_slots_used=r.swap_slots_used,
        wall_s=time.perf_counter() - start,
        pairs=racing_pairs(r.world.engine.trace) if r.world is not None else frozenset(),
    )


def kinds_of(result: SimResult) -> tuple[str, ...]:
    return tuple(sorted({v.kind for v in result.violations}))
