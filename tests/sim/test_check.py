"""kernsim.check: one settle_and_check for every machine, one set-up for every run."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from kernsim.check.invariants import Violation
from kernsim.check.result import RunResult
from kernsim.check.settle import GROUP, State, run_now, settle_and_check
from kernsim.check.spec import mm_config, workload_params
from kernsim.explore.job import Job, job_params
from kernsim.faults import load_profile
from kernsim.model.memcontrol import MemcgState
from kernsim.model.mm import MmState
from kernsim.model.mm_types import PAGE_SIZE


class Leaky:
    """A Settleable whose /A holds one page of memsw more than usage, and says what
    settle_and_check asked of it, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.mm = MmState(mm_config("race", "none"))
        self.memcg = MemcgState()
        group = self.memcg.group(self.memcg.create(GROUP))
        group.res.usage, group.memsw.usage = PAGE_SIZE, 2 * PAGE_SIZE

    async def quiesce(self) -> None:
        self.calls.append("quiesce")

    async def drain(self) -> None:
        self.calls.append("drain")

    async def state(self) -> State:
        self.calls.append("state")
        return State(self.mm, self.memcg, [Violation("memsw_below_usage", "seen while running")])

    async def global_reclaim(self) -> None:
        self.calls.append("global_reclaim")
        self.memcg.group(self.memcg.by_name[GROUP]).res.usage = 0  # read too late to count

    def explain(self, violations: list[Violation]) -> None:
        self.calls.append(f"explain {len(violations)}")


def test_settle_and_check_settles_checks_then_reclaims_in_that_order() -> None:
    m = Leaky()
    said: list[str] = []
    found = run_now(settle_and_check(m, said.append))
    assert m.calls == [
        "quiesce", "drain", "state", "explain 3", "global_reclaim", "state", "explain 3",
    ]  # fmt: skip
    assert said == [
        "draining pagevecs, checking the invariants",
        "global reclaim (until a pass frees nothing more)",
    ]
    # The continuous checks' finds first, then the quiescence table's, in its order.
    assert [v.kind for v in found.violations] == [
        "memsw_below_usage", "memsw_leak", "memsw_accounting",
    ]  # fmt: skip
    assert (found.usage_bytes, found.memsw_usage_bytes) == (PAGE_SIZE, 2 * PAGE_SIZE)
    assert found.page_cluster == m.mm.config.page_cluster


def test_a_result_is_built_from_the_findings_and_the_run() -> None:
    found = run_now(settle_and_check(Leaky()))
    r = RunResult.build(
        found, scenario="race", variant="none", seed=3, faults="none", events=7,
        virtual_s=0.5, vmscan_results={},
    )  # fmt: skip
    d = r.to_dict()
    assert (d["scenario"], d["seed"], d["memsw_leak_bytes"], d["verdict"]) == (
        "race", 3, PAGE_SIZE, "LEAK",
    )  # fmt: skip


def test_run_now_refuses_a_coroutine_that_suspends() -> None:
    class Suspend:
        def __await__(self) -> Generator[None, None, None]:
            yield

    async def waits() -> None:
        await Suspend()

    with pytest.raises(RuntimeError, match="suspended"):
        run_now(waits())


def test_the_explorer_scales_a_job_s_workload_as_simulate_does() -> None:
    lan = load_profile("lan")
    assert lan.workload_time_scale > 1
    scaled: dict[str, Any] = workload_params("race", lan)
    assert job_params(Job("race", "none", 1, faults="lan")) == scaled
    assert scaled["kill_min_s"] == pytest.approx(0.0005 * lan.workload_time_scale)
    # A job's own values stay as given: a shrunk kill time is not stretched again.
    assert job_params(Job("race", "none", 1, faults="lan", params=(("kill_min_s", 0.001),)))[
        "kill_min_s"
    ] == pytest.approx(0.001)


def test_the_cluster_is_fitted_to_its_duration_and_not_stretched() -> None:
    p = workload_params("kamezawa", duration_s=9.0)
    assert (p["period_s"], p["rounds"]) == (3.0, 3)
    assert p["think_s"] == 0.25


def test_the_machine_follows_the_variant_and_the_page_cluster_knob() -> None:
    assert mm_config("race", "none").swap_has_cache is False
    assert mm_config("race", "upstream", page_cluster=0).swap_has_cache is True
    assert mm_config("race", "upstream", page_cluster=0).page_cluster == 0
