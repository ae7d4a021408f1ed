"""One simulation run, end to end: build, load, kill all, settle, check, report."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernsim.faults import Profile, load_profile
from kernsim.model.memcontrol import MemcgBug
from kernsim.model.mm import KernelBug, MmConfig
from kernsim.model.mm_types import PAGE_SIZE
from kernsim.model.swap import lru_add_drain_all
from kernsim.sim.checker import (
    EVENTS_PER_OBJECT,
    ContinuousChecker,
    Violation,
    attach_events,
    format_event,
    global_reclaim_violations,
    quiescent_violations,
    slots_in_use,
    stale_swapcache_pages,
)
from kernsim.sim.engine import SimCpu, Strategy
from kernsim.sim.result import RunResult
from kernsim.sim.scenarios import get_scenario
from kernsim.sim.world import World
from kernsim.variants import get_variant


@dataclass(slots=True)
class SimResult(RunResult):
    """A simulation's result: the common fields plus the trace's SHA-256 and the world."""

    trace_sha256: str = ""
    world: World | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**RunResult.to_dict(self), "trace_sha256": self.trace_sha256}


def simulate(
    scenario: str,
    variant: str,
    seed: int,
    faults: str | Profile | None = None,
    page_cluster: int | None = None,
    strategy: Callable[[random.Random], Strategy] = Strategy,
    params: dict[str, Any] | None = None,
    keep_trace: bool = True,
    max_steps: int = 5_000_000,
) -> SimResult:
    """Run ``scenario`` under ``variant`` from ``seed``; the same arguments give the same
    result and the same trace hash."""
    sc = get_scenario(scenario)
    var = get_variant(variant)
    if faults is None:
        faults = sc.faults
    profile = faults if isinstance(faults, Profile) else load_profile(faults)
    mm_kwargs: dict[str, Any] = dict(sc.mm, swap_has_cache=var.swap_has_cache)
    if page_cluster is not None:
        mm_kwargs["page_cluster"] = page_cluster
    world = World.create(
        var,
        seed,
        profile,
        MmConfig(**mm_kwargs),
        strategy,
        limit_bytes=sc.limit_bytes,
        memsw_limit_bytes=sc.memsw_limit_bytes,
        keep_trace=keep_trace,
        max_steps=max_steps,
    )
    checker = ContinuousChecker()
    world.engine.observers.append(checker)
    try:
        # The profile stretches the workload's timings to its latencies (Profile.scale_workload).
        sc.run(world, {**profile.scale_workload(sc.params), **(params or {})})
        result = settle_and_check(world, checker)
    except (KernelBug, MemcgBug) as exc:
        # A BUG_ON of the kernel fired in the model: report it like any violation,
        # with the events that led there, instead of losing the run to a traceback.
        result = _crashed(world, checker, exc)
    result.scenario = scenario
    return result


def _crashed(world: World, checker: ContinuousChecker, exc: Exception) -> SimResult:
    engine = world.engine
    engine.close()
    group = engine.memcg.group(world.memcg_id)
    bug = Violation(
        "kernel_bug",
        f"{type(exc).__name__}: {exc}",
        at_s=engine.now,
        events=[format_event(ev) for ev in engine.trace[-EVENTS_PER_OBJECT:]],
    )
    return SimResult(
        scenario="",
        variant=engine.variant.name,
        seed=engine.seed,
        faults=engine.profile.name,
        page_cluster=engine.mm.config.page_cluster,
        trace_sha256=engine.trace_sha256(),
        events=engine.steps,
        virtual_s=engine.now,
        usage_bytes=group.res.usage,
        memsw_usage_bytes=group.memsw.usage,
        stale_swapcache_pages=0,
        swap_slots_used=len(slots_in_use(engine.mm)),
        swap_slots_used_after_global_reclaim=-1,
        oom_kills=group.oom_kills,
        vmscan_results=dict(engine.results),
        violations=[*checker.violations, bug],
        world=world,
    )


def _run_kernel(world: World, name: str, path: Any) -> None:
    cpu = SimCpu(world.engine, world.engine.unique_name(name), "workqueue", "workqueue")
    world.engine.start(cpu, path(cpu))
    world.engine.run()


def settle_and_check(world: World, checker: ContinuousChecker) -> SimResult:
    """Quiesce (I/O, work, pagevec drains), check, then one pass of global reclaim."""
    from kernsim.model.vmscan import global_reclaim

    engine = world.engine
    if world.tasks:
        world.kill_all()
    engine.run()

    async def drain(cpu: SimCpu) -> None:
        await cpu.call(lru_add_drain_all)

    _run_kernel(world, "kworker", drain)
    mm, memcg = engine.mm, engine.memcg
    group = memcg.group(world.memcg_id)
    usage, memsw = group.res.usage, group.memsw.usage
    stale = len(stale_swapcache_pages(mm, memcg))
    used = len(slots_in_use(mm))
    violations = checker.violations + quiescent_violations(mm, memcg)
    attach_events(violations, engine.trace)  # the events up to the check, not global reclaim's
    _run_kernel(world, "reclaim", global_reclaim)
    used_after = slots_in_use(mm)
    violations += global_reclaim_violations(mm)
    attach_events(violations, engine.trace)
    return SimResult(
        scenario="",
        variant=engine.variant.name,
        seed=engine.seed,
        faults=engine.profile.name,
        page_cluster=mm.config.page_cluster,
        trace_sha256=engine.trace_sha256(),
        events=engine.steps,
        virtual_s=engine.now,
        usage_bytes=usage,
        memsw_usage_bytes=memsw,
        stale_swapcache_pages=stale,
        swap_slots_used=used,
        swap_slots_used_after_global_reclaim=len(used_after),
        oom_kills=group.oom_kills,
        vmscan_results=dict(engine.results),
        violations=violations,
        world=world,
    )


__all__ = ["PAGE_SIZE", "SimResult", "simulate"]
