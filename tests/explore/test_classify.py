"""Classes beyond the catalogue: zap during swap-out writeback, and v5's hole."""

from __future__ import annotations

import random

import pytest

from kernsim.explore.classify import V5_HOLE, classify_matches, classify_run
from kernsim.explore.diagram import draw_all
from kernsim.explore.job import Job, Run, execute, run_schedule
from kernsim.explore.strategies import Chooser
from kernsim.faults import load_profile
from kernsim.model.mm import MmConfig
from kernsim.sim import catalogue as cat
from kernsim.sim.checker import ContinuousChecker
from kernsim.sim.run import settle_and_check
from kernsim.sim.scripted import Run as Step
from kernsim.sim.scripted import call
from kernsim.sim.world import World
from kernsim.variants import get_variant


def zap_during_writeback(world: World) -> None:
    """kswapd writes A's page out (set_page_writeback, unlock); A exits before the
    write completes: free_swap_and_cache() gets the lock but finds PG_writeback."""
    a = cat._task(world, "A")
    pfn = cat._fault(world, a, 0)
    kswapd = cat._kswapd(world)
    cat._race(
        world,
        [Step("kswapd", through=call("set_page_writeback_unlock", a0=pfn)), Step("A")],
        [
            (kswapd, cat._reclaim(kswapd, [pfn], drain=True, age=True)),
            (a, cat._exit(world, a)),
        ],
    )
    cat._exit_all(world)


def _scripted_run(variant: str) -> Run:
    var = get_variant(variant)
    mm = MmConfig(total_pages=1024, swap_pages=16, swap_has_cache=var.swap_has_cache)
    world = World.create(var, 1, load_profile("none"), mm)
    checker = ContinuousChecker()
    world.engine.observers.append(checker)
    zap_during_writeback(world)
    result = settle_and_check(world, checker)
    return Run(Job("zap-during-writeback", variant, 1), result, Chooser(random.Random(0)))


@pytest.mark.parametrize("variant", ["none", "upstream"])
def test_zap_during_writeback_is_its_own_class(variant: str) -> None:
    run = _scripted_run(variant)
    assert run.result is not None
    assert {v.kind for v in run.result.violations} >= {"swap_slot_in_use"}
    assert classify_run(run) == ["writeback"]
    diagram = draw_all(run)[0][1]
    assert "writeback" in diagram.splitlines()[0]
    assert "set_page_writeback_unlock" in diagram and "free_swap_and_cache" in diagram


def test_v5_frees_the_page_at_end_of_writeback() -> None:
    run = _scripted_run("v5")
    assert run.result is not None and run.result.violations == []


def test_v5_hole_has_a_stable_detail() -> None:
    # Found by: kernsim explore --scenario race --variant v5 --strategy random
    #   --window-us 1000 --schedules 400 (seed 48 is one of its failures).
    job = Job("race", "v5", 48, "random", window_s=0.001)
    o = run_schedule(job)
    assert o.failed and "memsw_leak" in o.kinds
    matches = classify_matches(execute(job))
    assert V5_HOLE in {m.detail for m in matches}
    hole = next(m for m in matches if m.detail == V5_HOLE)
    assert hole.cls == "NEW" and hole.also and hole.also[0] != hole.page
