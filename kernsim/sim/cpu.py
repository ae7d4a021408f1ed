"""A CPU of the simulation and the requests its code path makes of the engine.

A code path awaits ``cpu.call(primitive, *args)`` (or ``post``, ``submit_bio``,
``sleep``); each returns a ``Request`` that the coroutine yields up to the
engine (kernsim.sim.engine), which decides when it happens and sends the
answer back into the coroutine.  ``func``, the Python function that made the
request, is kept for the diagrams; it is not part of the trace's identity.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from kernsim.model.port import PRIMITIVE_BY_FN, Cpu

if TYPE_CHECKING:
    from kernsim.sim.engine import Engine

#: Request kinds: run a primitive, post a code path to a service, sleep, submit a bio.
CALL, POST, SLEEP, BIO = 0, 1, 2, 3
P = ParamSpec("P")
R = TypeVar("R")


class Request:
    """What a coroutine yields to the engine; ``await req`` returns the engine's answer."""

    __slots__ = ("args", "func", "info", "kind")

    def __init__(self, kind: int, info: Any, args: tuple[Any, ...], func: str) -> None:
        self.kind = kind
        self.info = info
        self.args = args
        self.func = func

    def __await__(self) -> Generator[Request, Any, Any]:
        return (yield self)


class SimCpu(Cpu):
    """A CPU of the simulation: one coroutine, its pending request, its task state."""

    __slots__ = (
        "coro",
        "engine",
        "killed",
        "name",
        "pending",
        "pvec",
        "service",
        "task",
        "value",
        "waiting",
    )

    def __init__(
        self, engine: Engine, name: str, service: str, pvec: str, memcg: int = 0, task: int = 0
    ) -> None:
        self.engine = engine
        self._init_cpu(name, service, pvec, engine.variant, memcg, task)
        self.coro: Coroutine[Any, Any, Any] | None = None
        self.pending: Request | None = None
        self.value: Any = None
        self.waiting = False

    if TYPE_CHECKING:

        def call(
            self, fn: Callable[Concatenate[Any, P], R], *args: P.args, **kwargs: P.kwargs
        ) -> Awaitable[R]: ...

    else:
        # Positional arguments only, and no ``**kwargs`` at run time: it made an empty
        # dict at every call (about 220 of a step's 48,000 instructions).
        def call(self, fn, *args):
            return Request(CALL, PRIMITIVE_BY_FN[fn], args, sys._getframe(1).f_code.co_name)

    def post(self, service: str, path: str, *args: int, delay_s: float = 0.0) -> Awaitable[None]:
        return Request(POST, (service, path, delay_s), args, sys._getframe(1).f_code.co_name)

    def submit_bio(self, rw: str, pfn: int) -> Awaitable[None]:
        return Request(BIO, rw, (pfn,), sys._getframe(1).f_code.co_name)

    def sleep(self, delay_s: float) -> Awaitable[None]:
        return Request(SLEEP, delay_s, (), "")

    def fatal_signal_pending(self) -> bool:
        return self.killed

    def note_result(self, label: str) -> None:
        r = self.engine.results
        r[label] = r.get(label, 0) + 1
