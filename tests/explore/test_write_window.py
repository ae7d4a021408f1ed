"""v5's write window: reachable in the model (a scripted schedule), and found by search.

v5 checks a page at the end of a swap write, before end_page_writeback(): while
the exiting task's pte still holds the slot, swap_map reads 2 and the page looks
in use.  If the task's zap then runs its whole swap_lock section before the
write completes, free_swap_and_cache() finds PG_writeback and keeps the page in
the swap cache, and nothing checks it again.
"""

from __future__ import annotations

import random

from kernsim.explore.classify import classify_run
from kernsim.explore.job import Job, Run, run_schedule
from kernsim.explore.search import SearchConfig, explore
from kernsim.explore.strategies import Chooser
from kernsim.sim.run import check
from kernsim.sim.scripting import Run as Step
from kernsim.sim.scripting import Script, call


def _write_window(variant: str) -> Run:
    """kswapd writes A's page out and keeps it (PG_writeback); the write completion's
    v5 check runs; A exits through free_swap_and_cache()'s page_flags(); then
    end_page_writeback()."""
    s = Script.create(variant)
    s.world.check_continuously()
    a, kswapd = s.task("A"), s.kthread()
    pfn = s.fault(a, 0)
    s.race(
        [
            Step("kswapd", through=call("putback_lru_page", a0=pfn)),
            Step("irq", through=call("mem_cgroup_staleswap_hint", a0=pfn)),
            Step("A", through=call("page_flags", a0=pfn)),
        ],
        [(kswapd, s.reclaim(kswapd, [pfn], drain=True, age=True)), (a, s.exit(a))],
    )
    s.exit_all()
    result = check(s.world, "write-window")
    return Run(Job("write-window", variant, 1), result, Chooser(random.Random(0)))


def test_v5_write_window_is_reachable_with_the_locks_held_across_steps() -> None:
    run = _write_window("v5")
    assert run.result is not None and run.result.world is not None
    trace = run.result.world.engine.trace
    steps = [(e.cpu, e.prim) for e in trace if e.cpu in ("A", "irq")]
    # The zap's swap_lock section and its PG_writeback test lie between v5's check and
    # end_page_writeback(): nothing in the model keeps them apart.
    hint = steps.index(("irq", "mem_cgroup_staleswap_hint"))
    end = steps.index(("irq", "end_page_writeback"))
    between = [p for c, p in steps[hint:end] if c == "A"]
    section = ["spin_lock_swap_lock", "swap_entry_free_locked", "find_get_page", "trylock_page",
               "spin_unlock_swap_lock", "page_flags"]  # fmt: skip
    at = between.index("spin_lock_swap_lock")
    assert between[at : at + len(section)] == section
    assert {v.kind for v in run.result.violations} == {"swap_slot_in_use"}
    assert classify_run(run) == ["v5-write-window"]


def test_the_delay_strategy_finds_the_write_window_unaided() -> None:
    cfg = SearchConfig("race", "v5", "delay", schedules=100, jobs=1, window_s=0.001,
                       shrink_budget=30)  # fmt: skip
    s = explore(cfg)
    found = [r for r in s["races"] if "v5-write-window" in r["class"].split("+")]
    assert found, [r["class"] for r in s["races"]]
    assert found[0]["kinds"] == ["swap_slot_in_use"]


def test_delay_replays_bit_for_bit() -> None:
    o = run_schedule(Job("race", "v5", 58, "delay", window_s=0.001))
    assert o.failed and o.classes == ("v5-write-window",)
    replayed = run_schedule(Job("race", "v5", 58, "replay", window_s=0.001, switches=o.switches))
    assert replayed.trace_sha256 == o.trace_sha256
