"""A kernel code path whose RPC failed is abandoned half-way, not a kernel finding.

The owner may still run the primitive whose reply nobody waits for, so the model is
left half-way (a page reference taken and never dropped): a run that saw one ends with
no verdict (a ServiceFailure, exit 3), never with a leak the kernel did not make.
"""

from __future__ import annotations

from typing import Any

import pytest
from kernsim.protocol import RequestTimeout
from kernsim.services.launch.cluster import ServiceFailure
from kernsim.services.launch.experiment import _crashes
from kernsim.services.remote_cpu import CpuHost
from kernsim.services.runtime.metrics import Metrics

from kernsim.variants import get_variant


class _Node:
    name = "tasks"


def _host() -> CpuHost:
    return CpuHost(_Node(), Metrics(), get_variant("none"))  # type: ignore[arg-type]


async def _timed_out() -> None:
    raise RequestTimeout("page_referenced to mm: no reply in time")


async def _bug() -> None:
    raise AssertionError("BUG_ON(!PageLocked(page))")


async def test_an_rpc_failure_abandons_the_path_and_a_kernel_bug_is_a_crash() -> None:
    host = _host()
    for coro in (_timed_out(), _bug()):
        host.busy += 1
        await host._run(host.new_cpu("task"), coro, "shrink_page_list")
    stats = host.statistics()
    assert stats["abandoned_texts"] == [
        "task shrink_page_list: RequestTimeout: page_referenced to mm: no reply in time"
    ]
    assert stats["crash_texts"] == [
        "task1 shrink_page_list: AssertionError: BUG_ON(!PageLocked(page))"
    ]
    assert host.busy == 0


def _stats(**tasks: Any) -> dict[str, Any]:
    node = {"crash_texts": []}
    return {"mm": {"node": node}, "tasks": {"node": node, "crash_texts": [], **tasks}}


def test_a_run_with_an_abandoned_path_has_no_verdict() -> None:
    stats = _stats(abandoned_texts=["task2 do_swap_page: RequestTimeout: no reply in time"])
    with pytest.raises(ServiceFailure, match="abandoned half-way, no verdict: task2 do_swap_page"):
        _crashes(stats)


def test_a_kernel_crash_is_a_violation_of_the_run() -> None:
    stats = _stats(abandoned_texts=[], crash_texts=["task1 exit: AssertionError: BUG"])
    [v] = _crashes(stats)
    assert v.kind == "service_error" and "tasks: task1 exit: AssertionError: BUG" in v.message
