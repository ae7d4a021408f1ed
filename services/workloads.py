"""The scenarios' workloads on the cluster: kernsim.workloads, fitted to a duration.

The programs and controllers are the simulation's own (kernsim.workloads),
driving the tasks service's Machine in real time.  ``duration_s`` sets how
long the load runs: kamezawa keeps its round count at least and shortens its
period to fit; nishimura stops starting tasks at the deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kernsim.workloads import CONTROLLERS as SHARED_CONTROLLERS
from kernsim.workloads import Machine, Program, ThreadProgram, malloc_and_touch, touch


def fit_to_duration(scenario: str, p: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """The scenario's parameters for a run of ``duration_s`` seconds."""
    if scenario == "kamezawa":
        period_s = min(p["period_s"], duration_s / p["rounds"])
        return {**p, "period_s": period_s, "rounds": max(p["rounds"], int(duration_s // period_s))}
    if scenario == "nishimura":
        return {**p, "duration_s": duration_s}
    return p


def _fitted(
    scenario: str,
) -> Callable[[Machine, dict[str, Any], float], Awaitable[None]]:
    controller = SHARED_CONTROLLERS[scenario]
    return lambda m, p, duration_s: controller(m, fit_to_duration(scenario, p, duration_s))


CONTROLLERS: dict[str, Callable[[Machine, dict[str, Any], float], Awaitable[None]]] = {
    name: _fitted(name) for name in SHARED_CONTROLLERS
}

__all__ = [
    "CONTROLLERS",
    "Machine",
    "Program",
    "ThreadProgram",
    "fit_to_duration",
    "malloc_and_touch",
    "touch",
]
