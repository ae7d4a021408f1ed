"""Racing pairs: the ordered pairs of steps of different CPUs on the same object.

A trace's racing pairs are what a schedule search covers and what a race is
made of.  For every step B on a kernel object (a page, a swap slot, a memcg,
a task's page tables) the step A that touched the object last before it, on
another CPU, forms the pair ``(kind, A, B)``: B saw the object as A left it.
``A`` and ``B`` are primitive names, qualified by an outcome where the outcome
decides the race (``free_swap_and_cache_locked/nopage``: the zap found no
cache page; ``trylock_page/fail``; see ``OUTCOME``).

Coverage is the number of distinct pairs a search has seen: a search that
stops finding new pairs has stopped exploring new interleavings of the races
this model can have (``--stop-after-no-new-pairs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kernsim.explore.footprint import BY_RESULT, EXTRA, KIND, Obj
from kernsim.model.port import PRIMITIVES
from kernsim.sim.engine import TraceEvent

Pair = tuple[str, str, str]  # (object kind, step A, step B)

#: Steps that are not primitives of the model but sums of several (a critical
#: section the model splits at its lock): the kind of their first argument.
FOLDED = {"free_swap_and_cache_locked": "slot"}

#: Object kinds whose pairs count: the global ones (LRU, zone, counters) race
#: with everything and tell nothing apart.
RACING_KINDS = frozenset({"page", "slot", "memcg", "mm"})


def _fsac(r: Any) -> str:
    if r.page == 0:
        return "nopage"
    return "locked" if r.locked else "busy"


#: Outcomes that decide a race: primitive name -> label of its result (and args).
OUTCOME: dict[str, Callable[[Any, tuple[Any, ...]], str]] = {
    "free_swap_and_cache_locked": lambda r, a: _fsac(r),
    "trylock_page": lambda r, a: "ok" if r else "fail",
    "remove_mapping_freeze": lambda r, a: "ok" if r[0] else "fail",
    "add_to_swap_cache": lambda r, a: ("read" if a[2] else "reclaim") + ("" if r == 0 else "-fail"),
    "reuse_swap_page_check": lambda r, a: "reuse" if r else "keep",
    "mem_cgroup_staleswap_hint": lambda r, a: "stable" if r else "stale",
    "page_flags": lambda r, a: "writeback" if r.writeback else "idle",
    "mem_cgroup_uncharge_page": lambda r, a: "ok" if r else "skip",
    "mem_cgroup_uncharge_swapcache": lambda r, a: "ok" if r else "skip",
    "pte_same": lambda r, a: "same" if r else "changed",
    "free_swap_cache_trylock": lambda r, a: "ok" if r else "fail",
}


def step_name(ev: TraceEvent) -> str:
    label = OUTCOME.get(ev.prim)
    return ev.prim if label is None else f"{ev.prim}/{label(ev.result, ev.args)}"


def objects_of(ev: TraceEvent) -> list[Obj]:
    """The racing objects (kernsim.explore.footprint's kinds) step ``ev`` touched."""
    return _objects(ev, _plan_of(ev[3]))


#: name -> (the (argument index, kind) of each object argument, look at the result)
Plan = tuple[tuple[tuple[int, str], ...], bool]
_PLANS: dict[str, Plan] = {}


def _plan_of(name: str) -> Plan:
    plan = _PLANS.get(name)
    if plan is None:
        plan = _PLANS[name] = _plan(name)
    return plan


def _plan(name: str) -> Plan:
    info = PRIMITIVES.get(name)
    if info is None:  # a step kernsim.explore.classify sums up from several
        kind = FOLDED.get(name)
        return ((0, kind),) if kind is not None else (), kind is not None and name in BY_RESULT
    kind = KIND.get(info.obj)
    first = ((0, kind),) if kind in RACING_KINDS else ()
    extra = tuple((i, k) for i, k in EXTRA.get(name, ()) if k in RACING_KINDS)
    return first + extra, name in BY_RESULT


def _objects(ev: TraceEvent, plan: Plan) -> list[Obj]:
    """The objects of ``ev`` in a fixed order: its arguments', then its result's."""
    slots, by_result = plan
    args = ev[4]
    n = len(args)
    out: list[Obj] = []
    for i, k in slots:
        if i < n and type(args[i]) is int:
            out.append((k, args[i]))
    if by_result:
        r = ev[5]
        page = getattr(r, "page", None)
        if type(page) is int and page:
            out.append(("page", page))
        elif ev[3] == "zap_pte" and r[1]:  # the page or slot it unmapped
            out.append((("page" if _present(ev) else "slot"), r[1]))
    return out


def _present(ev: TraceEvent) -> bool:
    from kernsim.model.memory import PTE_PRESENT

    return bool(ev.result[0] == PTE_PRESENT)


def racing_steps(
    trace: Iterable[TraceEvent], keep: Callable[[Obj], bool] | None = None
) -> list[tuple[Obj, int, int]]:
    """(object, index of A, index of B) for every racing pair of ``trace``.

    Every search schedule's trace goes through here (its coverage): the steps
    that touch no racing object (LRU, zone, counters) are skipped on their plan,
    before any object is built."""
    last: dict[Obj, int] = {}
    events = trace if isinstance(trace, list) else list(trace)
    out: list[tuple[Obj, int, int]] = []
    plans = _PLANS
    for i, ev in enumerate(events):
        plan = plans.get(ev[3])
        if plan is None:
            plan = _plan_of(ev[3])
        if not plan[0] and not plan[1]:
            continue
        cpu = ev[1]
        for o in _objects(ev, plan):
            if keep is not None and not keep(o):
                continue
            j = last.get(o)
            if j is not None and events[j][1] != cpu:
                out.append((o, j, i))
            last[o] = i
    return out


def racing_pairs(trace: list[TraceEvent]) -> frozenset[Pair]:
    return frozenset(
        (o[0], step_name(trace[a]), step_name(trace[b])) for o, a, b in racing_steps(trace)
    )


class Coverage:
    """The distinct racing pairs seen so far, and how their number grew."""

    def __init__(self) -> None:
        self.pairs: set[Pair] = set()
        self.curve: list[tuple[int, int]] = []
        self.since_new = 0

    def add(self, n: int, pairs: Iterable[Pair]) -> int:
        before = len(self.pairs)
        self.pairs.update(pairs)
        new = len(self.pairs) - before
        if new:
            self.curve.append((n, len(self.pairs)))
            self.since_new = 0
        else:
            self.since_new += 1
        return new


def plot_coverage(path: Path, curve: list[tuple[int, int]], total: int, title: str) -> bool:
    """Distinct racing pairs over schedules run; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    xs = [0] + [n for n, _ in curve] + [max(total, 1)]
    ys = [0] + [c for _, c in curve] + [curve[-1][1] if curve else 0]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.step(xs, ys, where="post")
    ax.set_xlabel("schedules run")
    ax.set_ylabel("distinct racing pairs")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
