"""The simulation's side of the checks: a continuous checker and trace events.

The invariants themselves are kernsim.check.invariants (pure functions over the
model's state, shared with the cluster).  Here: :class:`ContinuousChecker`, an
engine observer that runs the cheap ones as the primitives run --
memsw.usage >= usage after every memcg primitive, and every
``CONSISTENCY_EVERY`` steps swap_map[e] at least the swap ptes pointing at e
plus the swap cache's reference -- and :func:`attach_events`, which names for
each violation the last trace events that touched its pages and slots.
"""

from __future__ import annotations

from kernsim.check.invariants import Violation, memsw_below_usage, swap_map_problems
from kernsim.model.port import PRIMITIVES, PrimitiveInfo
from kernsim.sim.engine import Engine, TraceEvent
from kernsim.sim.words import call

CONSISTENCY_EVERY = 1024
EVENTS_PER_OBJECT = 12


class ContinuousChecker:
    """An engine observer: checks cheap invariants as the primitives run."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self._seen: set[str] = set()

    def __call__(self, engine: Engine, info: PrimitiveInfo) -> None:
        if info.owner == "memcg":
            for msg in memsw_below_usage(engine.memcg):
                self._report(engine, "memsw_below_usage", msg)
        elif engine.steps % CONSISTENCY_EVERY == 0:
            for entry, msg in swap_map_problems(engine.mm, exact=False):
                self._report(engine, "swap_map_below_refs", msg, slots=[entry])

    def _report(self, engine: Engine, kind: str, msg: str, slots: list[int] | None = None) -> None:
        if kind in self._seen:  # the first occurrence names the moment; later ones add nothing
            return
        self._seen.add(kind)
        self.violations.append(Violation(kind, msg, slots=slots or [], at_s=engine.now))


def attach_events(violations: list[Violation], trace: list[TraceEvent]) -> None:
    """Name, for each violation, the last trace events that touched its pages and slots."""
    for v in violations:
        if v.events or not (v.pages or v.slots):
            continue
        pages, slots = set(v.pages), set(v.slots)
        hits: list[str] = []
        for ev in reversed(trace):
            if _touches(ev, pages, slots):
                hits.append(format_event(ev))
                if len(hits) >= EVENTS_PER_OBJECT:
                    break
        v.events = hits[::-1]


def _touches(ev: TraceEvent, pages: set[int], slots: set[int]) -> bool:
    obj = PRIMITIVES[ev.prim].obj
    if ev.args:
        first = ev.args[0]
        if (obj == "page" and first in pages) or (obj == "swp" and first in slots):
            return True
    return isinstance(ev.result, int) and ev.prim in ("find_get_page",) and ev.result in pages


def format_event(ev: TraceEvent) -> str:
    return f"{ev.t * 1e3:10.4f}ms {ev.cpu:>8} {ev.func}: {call(ev.prim, ev.args, ev.result)}"
