"""One simulation run, end to end: build, load, kill all, settle, check, report.

The steps are kernsim.check's (the machine from kernsim.check.spec,
settle_and_check, the result builder); here they run on a ``World``.
:func:`simulate` chains them; the explorer's job (kernsim.explore.job) runs the
same steps with its own scheduler and keeps what a diagram needs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernsim.check.invariants import Violation
from kernsim.check.result import RunResult
from kernsim.check.settle import Findings, crashed, run_now, settle_and_check
from kernsim.check.spec import Params, fault_profile, mm_config, workload_params
from kernsim.faults import Profile
from kernsim.model.memcontrol import MemcgBug
from kernsim.model.mm import KernelBug
from kernsim.sim.checker import EVENTS_PER_OBJECT, format_event
from kernsim.sim.engine import Strategy
from kernsim.sim.scenarios import get_scenario
from kernsim.sim.world import World
from kernsim.variants import get_variant


@dataclass(slots=True)
class SimResult(RunResult):
    """A simulation's result: the common fields plus the trace's SHA-256 and the world."""

    trace_sha256: str = ""
    world: World | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**RunResult.to_dict(self), "trace_sha256": self.sha256()}

    def sha256(self) -> str:
        """The trace hash, computed now if the run left it out (check(hash_trace=False))."""
        if not self.trace_sha256 and self.world is not None:
            self.trace_sha256 = self.world.engine.trace_sha256()
        return self.trace_sha256


def build_world(
    scenario: str,
    variant: str,
    seed: int,
    profile: Profile,
    page_cluster: int | None = None,
    strategy: Callable[[random.Random], Strategy] = Strategy,
    keep_trace: bool = True,
    max_steps: int = 5_000_000,
) -> World:
    """The scenario's machine under ``variant``, its limits set, the continuous checks on."""
    sc = get_scenario(scenario)
    world = World.create(
        get_variant(variant),
        seed,
        profile,
        mm_config(scenario, variant, page_cluster),
        strategy,
        limit_bytes=sc.limit_bytes,
        memsw_limit_bytes=sc.memsw_limit_bytes,
        keep_trace=keep_trace,
        max_steps=max_steps,
    )
    world.check_continuously()
    return world


def simulate(
    scenario: str,
    variant: str,
    seed: int,
    faults: str | Profile | None = None,
    page_cluster: int | None = None,
    strategy: Callable[[random.Random], Strategy] = Strategy,
    params: Params | None = None,
    keep_trace: bool = True,
    max_steps: int = 5_000_000,
) -> SimResult:
    """Run ``scenario`` under ``variant`` from ``seed``; the same arguments give the same
    result and the same trace hash."""
    profile = fault_profile(scenario, faults)
    world = build_world(
        scenario, variant, seed, profile, page_cluster, strategy, keep_trace, max_steps
    )
    try:
        get_scenario(scenario).run(world, workload_params(scenario, profile, params or ()))
        return check(world, scenario)
    except (KernelBug, MemcgBug) as exc:
        # A BUG_ON of the kernel fired in the model: report it like any violation,
        # with the events that led there, instead of losing the run to a traceback.
        return _crashed(world, scenario, exc)


def check(world: World, scenario: str, hash_trace: bool = True) -> SimResult:
    """The load is over: settle, check, then global reclaim (check.settle).

    Without ``hash_trace`` the result's ``trace_sha256`` is left empty: a search
    hashes only the schedules it reports (SimResult.sha256())."""
    return result(world, scenario, run_now(settle_and_check(world)), hash_trace)


def result(world: World, scenario: str, findings: Findings, hash_trace: bool = True) -> SimResult:
    """The result of a run on ``world``: what it was, what it found, its trace hash."""
    engine = world.engine
    return SimResult.build(
        findings,
        scenario=scenario,
        variant=engine.variant.name,
        seed=engine.seed,
        faults=engine.profile.name,
        events=engine.steps,
        virtual_s=engine.now,
        vmscan_results=dict(engine.results),
        trace_sha256=engine.trace_sha256() if hash_trace else "",
        world=world,
    )


def _crashed(world: World, scenario: str, exc: Exception) -> SimResult:
    engine = world.engine
    engine.close()
    bug = Violation(
        "kernel_bug",
        f"{type(exc).__name__}: {exc}",
        at_s=engine.now,
        events=[format_event(ev) for ev in engine.trace[-EVENTS_PER_OBJECT:]],
    )
    return result(world, scenario, crashed(run_now(world.state()), bug))


__all__ = ["SimResult", "build_world", "check", "simulate"]
