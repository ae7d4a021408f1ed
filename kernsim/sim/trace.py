"""The trace of a simulation and its identity, the SHA-256 of its kernel events.

Each step of the engine is one ``TraceEvent``: the virtual time, the CPU, the
Python function that issued the call (``func``), the primitive (named after the
kernel function whose critical section it models), the objects it was called
on and its result.  The identity covers every field but ``func``, kept for the
diagrams: a refactor that renames or moves model code without changing what
the kernel does keeps every trace hash, and every replay file, valid.  One line
per event, ``repr(t)|cpu|prim|repr(args)|repr(result)``, a tuple result (a
NamedTuple included) shown as a plain tuple, the lines hashed in order.
``TRACE_IDENTITY`` names this scheme; it changes only when the hashed bytes do.

An event is a tuple, so that the engine's hot loop builds it with one C call;
the hash formats events in batches (a trace that is not kept) or when it is
asked for (a kept one), and the same record serves the trace and the hash.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from kernsim.model.port import PrimitiveInfo

#: The trace identity scheme: what the trace hash covers (see the module docstring).
TRACE_IDENTITY = "kernel-events/2"

#: Events hashed at once when the trace is not kept (bounds the text formatted in
#: one go).  A kept trace is hashed when its hash is asked for: a search keeps
#: every schedule's trace and hashes only those it reports.
HASH_BATCH = 512
#: "Never": the hash point of a kept trace.
NEVER = sys.maxsize


class TraceEvent(NamedTuple):
    t: float
    cpu: str
    func: str
    prim: str
    args: tuple[Any, ...]
    result: Any


#: Primitive name -> whether it takes or returns a list (see copies_lists()).
LISTS: dict[str, bool] = {}


def copies_lists(info: PrimitiveInfo) -> bool:
    """Whether a call of ``info`` must have its list arguments and result copied into the
    trace: the list may change after the call, and the event shows it as it was."""
    known = LISTS.get(info.name)
    if known is None:
        ann = getattr(info.fn, "__annotations__", {})
        known = LISTS[info.name] = any("list" in str(t) for t in ann.values())
    return known


def copy_lists(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a[:] if type(a) is list else a for a in args)


def copy_value(value: Any) -> Any:
    return value[:] if type(value) is list else value


class TraceHash:
    """The running SHA-256 of the identity lines of a growing list of events."""

    __slots__ = ("_done", "_sha")

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._done = 0  # events of the list hashed so far

    def update(self, events: list[TraceEvent], keep: bool) -> int:
        """Hash the events not hashed yet; unless ``keep``, drop them from the list.
        Returns the length of ``events`` at which the engine calls again: a batch
        later when they are dropped, never when they are kept (see HASH_BATCH)."""
        self._lines(events[self._done :] if self._done else events)
        if keep:
            self._done = len(events)
            return NEVER
        events.clear()
        return HASH_BATCH

    def _lines(self, events: Sequence[TraceEvent]) -> None:
        out: list[str] = []
        add = out.append
        # tuple.__repr__: a NamedTuple's own repr is slow Python and says the same.
        trepr = tuple.__repr__
        # The clock stands still for most steps of a search (its step cost is zero):
        # the same time object is formatted once (identity, not equality: -0.0 == 0.0).
        last: object = None
        when = ""
        for now, cpu, _func, prim, args, res in events:
            if now is not last:
                last = now
                when = repr(now)
            shown = trepr(res) if isinstance(res, tuple) else repr(res)
            add(f"{when}|{cpu}|{prim}|{args!r}|{shown}\n")
        self._sha.update("".join(out).encode())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
