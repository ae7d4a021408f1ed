"""Settle a machine and check it: the end of every run, in the simulation and on the cluster.

Once the load is over: kill every task and let I/O, work and the pagevec drains
finish, read the state and check the invariants at quiescence, then one pass of
global reclaim and check what even it left.  :func:`settle_and_check` says this
once, over :class:`Settleable`, which the simulation's ``World`` implements on
its virtual clock (none of its awaits ever suspends; see :func:`run_now`) and
the cluster's ``Cluster`` over RPC to the live services.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kernsim.check.invariants import (
    Violation,
    global_reclaim_violations,
    quiescent_violations,
    slots_in_use,
    stale_swapcache_pages,
)
from kernsim.model.memcontrol import MemCgroup, MemcgState
from kernsim.model.mm import MmState

T = TypeVar("T")
#: The cgroup the scenarios' tasks run in, whose counters a result reports.
GROUP = "/A"


@dataclass(slots=True)
class State:
    """The model's state as the checks read it, and what the continuous checks found."""

    mm: MmState
    memcg: MemcgState
    violations: list[Violation]

    def group(self, name: str = GROUP) -> MemCgroup:
        return self.memcg.groups[self.memcg.by_name[name]]


class Settleable(Protocol):
    """A machine whose load is over, as settle_and_check drives it."""

    async def quiesce(self) -> None:
        """Kill every task; return once no task, I/O or deferred work is left."""

    async def drain(self) -> None:
        """lru_add_drain_all(): every CPU's pagevecs onto the LRU."""

    async def state(self) -> State:
        """The mm and memcg state now, and the continuous checks' violations so far."""

    async def global_reclaim(self) -> None:
        """Global reclaim until a pass frees nothing more (kswapd's view: every zone, no memcg)."""

    def explain(self, violations: list[Violation]) -> None:
        """Name, where the machine can, the events that led to each violation."""


@dataclass(slots=True)
class Findings:
    """What settle_and_check found: /A's counters at quiescence, the slots left, and
    every violation (the continuous ones first), and the page_cluster it ran with."""

    page_cluster: int
    usage_bytes: int
    memsw_usage_bytes: int
    stale_swapcache_pages: int
    swap_slots_used: int
    swap_slots_used_after_global_reclaim: int
    oom_kills: int
    violations: list[Violation]


async def settle_and_check(m: Settleable, say: Callable[[str], None] | None = None) -> Findings:
    """Quiesce (kill all, I/O, work, pagevec drains), check, then global reclaim.

    ``say``, when given, hears each phase as it begins (a long run's progress lines)."""
    say = say or _quiet
    await m.quiesce()
    say("draining pagevecs, checking the invariants")
    await m.drain()
    st = await m.state()
    group = st.group()
    usage, memsw = group.res.usage, group.memsw.usage
    stale = len(stale_swapcache_pages(st.mm, st.memcg))
    used = len(slots_in_use(st.mm))
    violations = st.violations + quiescent_violations(st.mm, st.memcg)
    m.explain(violations)  # the events up to the check, not global reclaim's
    say("global reclaim (until a pass frees nothing more)")
    await m.global_reclaim()
    after = await m.state()
    used_after = len(slots_in_use(after.mm))
    violations += global_reclaim_violations(after.mm)
    m.explain(violations)
    oom_kills = after.group().oom_kills
    cluster = st.mm.config.page_cluster
    return Findings(cluster, usage, memsw, stale, used, used_after, oom_kills, violations)


def _quiet(text: str) -> None:
    """The default ``say``: nothing to tell."""


def crashed(st: State, bug: Violation) -> Findings:
    """The findings of a run a kernel BUG_ON stopped: the counters as they were, no
    quiescence checks (nothing settled), no global reclaim (-1)."""
    group = st.group()
    return Findings(
        page_cluster=st.mm.config.page_cluster,
        usage_bytes=group.res.usage,
        memsw_usage_bytes=group.memsw.usage,
        stale_swapcache_pages=0,
        swap_slots_used=len(slots_in_use(st.mm)),
        swap_slots_used_after_global_reclaim=-1,
        oom_kills=group.oom_kills,
        violations=[*st.violations, bug],
    )


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end at once: for a Settleable that never suspends (the
    simulation's World runs its engine inside each call)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("run_now: the coroutine suspended; it needs an event loop")
