"""The engine pauses the cyclic garbage collector while its loop runs, and only then."""

from __future__ import annotations

import gc

import pytest

from kernsim.check.spec import fault_profile, workload_params
from kernsim.model.mm import KernelBug
from kernsim.sim.engine import Engine
from kernsim.sim.run import build_world, simulate
from kernsim.sim.scenarios import get_scenario
from tests.support.unitkit import break_unlock_page


def test_the_collector_is_paused_during_steps_and_back_after_the_run() -> None:
    assert gc.isenabled()
    profile = fault_profile("race", None)
    world = build_world("race", "none", 1, profile)
    seen: list[bool] = []
    world.engine.observers.append(lambda engine, info: seen.append(gc.isenabled()))
    get_scenario("race").run(world, workload_params("race", profile, ()))
    assert seen and not any(seen)
    assert gc.isenabled()


def test_a_run_with_the_collector_off_leaves_it_off() -> None:
    gc.disable()
    try:
        simulate("type-1", "none", 1, keep_trace=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_is_back_after_a_primitive_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    break_unlock_page(monkeypatch)
    raised: list[Engine] = []
    real_run = Engine.run

    def run(engine: Engine, until_s: float | None = None) -> None:
        try:
            real_run(engine, until_s)
        except KernelBug:
            raised.append(engine)
            raise

    monkeypatch.setattr(Engine, "run", run)
    r = simulate("type-1", "none", 1)
    assert raised and r.violations[-1].kind == "kernel_bug"
    assert gc.isenabled()


def test_a_step_makes_no_reference_cycle() -> None:
    """What makes the pause safe: a whole run leaves no cyclic garbage behind its steps
    (its world, kept by the result, is still alive)."""
    simulate("race", "v5", 5, keep_trace=False)  # imports and caches filled first
    gc.collect()
    gc.disable()
    try:
        r = simulate("race", "v5", 5, keep_trace=False)
        assert r.events > 1000
        assert gc.collect() == 0
    finally:
        gc.enable()
