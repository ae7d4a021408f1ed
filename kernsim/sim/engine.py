"""The deterministic simulation: every CPU of the model in one process, on a virtual clock.

Theory of operation
-------------------
Each simulated CPU (a task, kswapd, a bio completion, the workqueue worker)
runs one code-path coroutine.  The engine drives the coroutines directly,
without asyncio: a coroutine yields a request (run a primitive, post a code
path to a service, sleep), the engine decides when it happens and sends the
result back.

A primitive call is a message from the CPU's service to the primitive's
owner (``mm`` or ``memcg``).  The fault model gives it a delivery time; the
primitive runs at that instant, atomically, and its reply travels back with
its own delay.  Every pending step (one per runnable CPU) sits in one heap keyed by (time,
tie-break, seq): the strategy draws the tie-break, so steps due at the same
instant run in a seeded random order.  A scripted strategy instead names
which CPU runs next.

Everything random comes from one ``random.Random(seed)``, time is a float
that only the engine advances, and the trace is hashed: same seed, same
trace, bit for bit.

The hash is the trace's *identity* and holds kernel events only: the virtual
time, the CPU, the primitive (named after the kernel function whose critical
section it models), the objects it was called on and its result.  The Python
function that issued the call is kept in the trace for the diagrams but left
out of the identity, so a refactor that renames or moves model code without
changing what the kernel does keeps every trace hash, and every replay file,
valid.  ``TRACE_IDENTITY`` names this scheme; it changes only when the hashed
fields do.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import sys
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from kernsim.faults import FaultModel, Profile
from kernsim.model.memcontrol import MemcgState
from kernsim.model.mm import MmState
from kernsim.model.port import CODE_PATHS, PRIMITIVE_BY_FN, Cpu, PrimitiveInfo, WouldBlock
from kernsim.variants.base import Variant

#: The trace identity scheme: what the trace hash covers (see the module docstring).
TRACE_IDENTITY = "kernel-events/2"

#: Trace lines hashed at once.
HASH_BATCH = 256
#: Primitives that take or return a list (copied for the hash, which is computed later).
LIST_PRIMS: dict[str, bool] = {}


def _takes_lists(info: PrimitiveInfo) -> bool:
    ann = getattr(info.fn, "__annotations__", {})
    return any("list" in str(t) for t in ann.values())


#: Virtual CPU time one critical section takes; keeps busy loops from freezing time.
STEP_COST_S = 1e-6

CALL, POST, SLEEP, BIO = 0, 1, 2, 3
P = ParamSpec("P")
R = TypeVar("R")


class _Req:
    """What a coroutine yields to the engine; ``await req`` returns the engine's answer."""

    __slots__ = ("args", "func", "info", "kind")

    def __init__(self, kind: int, info: Any, args: tuple[Any, ...], func: str) -> None:
        self.kind = kind
        self.info = info
        self.args = args
        self.func = func

    def __await__(self) -> Generator[_Req, Any, Any]:
        return (yield self)


@dataclass(slots=True)
class TraceEvent:
    t: float
    cpu: str
    func: str
    prim: str
    args: tuple[Any, ...]
    result: Any


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
        "steps",
        "task",
        "value",
        "waiting",
    )

    def __init__(
        self, engine: Engine, name: str, service: str, pvec: str, memcg: int = 0, task: int = 0
    ) -> None:
        self.engine = engine
        self.name = name
        self.service = service
        self.pvec = pvec
        self.variant = engine.variant
        self.memcg = memcg
        self.memdie = False
        self.task = task
        self.killed = False
        self.coro: Coroutine[Any, Any, Any] | None = None
        self.pending: _Req | None = None
        self.value: Any = None
        self.waiting = False
        self.steps = 0

    def call(
        self, fn: Callable[Concatenate[Any, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[R]:
        if kwargs:
            raise TypeError("primitives take positional arguments only")
        return _Req(CALL, PRIMITIVE_BY_FN[fn], args, sys._getframe(1).f_code.co_name)

    def post(self, service: str, path: str, *args: int, delay_s: float = 0.0) -> Awaitable[None]:
        return _Req(POST, (service, path, delay_s), args, sys._getframe(1).f_code.co_name)

    def submit_bio(self, rw: str, pfn: int) -> Awaitable[None]:
        return _Req(BIO, rw, (pfn,), sys._getframe(1).f_code.co_name)

    def sleep(self, delay_s: float) -> Awaitable[None]:
        return _Req(SLEEP, delay_s, (), "")

    def fatal_signal_pending(self) -> bool:
        return self.killed

    def note_result(self, label: str) -> None:
        r = self.engine.results
        r[label] = r.get(label, 0) + 1


class Strategy:
    """Orders steps that are due at the same instant.  The default: a seeded random order."""

    scripted = False
    #: Virtual time a critical section takes under this strategy.  PCT and other
    #: schedule searches set 0.0: only then are all runnable CPUs due at the same
    #: instant, so the strategy (not the clock) decides every interleaving.
    step_cost_s: float = STEP_COST_S

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def key(self, cpu: SimCpu) -> float:
        return self.rng.random()

    def choose(self, engine: Engine, ready: list[tuple[float, float, int, SimCpu]]) -> int:
        raise NotImplementedError

    def on_step(self, cpu: SimCpu) -> None:
        """Called after each primitive (PCT uses it for its change points)."""


class SimulationError(RuntimeError):
    """The simulation could not go on (a livelock, a step budget exhausted)."""


@dataclass(slots=True)
class Engine:
    mm: MmState
    memcg: MemcgState
    variant: Variant
    profile: Profile
    seed: int
    strategy_factory: Callable[[random.Random], Strategy] = Strategy
    max_steps: int = 5_000_000
    keep_trace: bool = True
    rng: random.Random = field(init=False)
    fault: FaultModel = field(init=False)
    strategy: Strategy = field(init=False)
    now: float = 0.0
    steps: int = 0
    trace: list[TraceEvent] = field(default_factory=list)
    results: dict[str, int] = field(default_factory=dict)
    cpus: dict[str, SimCpu] = field(default_factory=dict)
    observers: list[Callable[[Engine, PrimitiveInfo], None]] = field(default_factory=list)
    on_post: dict[str, Callable[..., None]] = field(default_factory=dict)
    _heap: list[tuple[float, float, int, SimCpu]] = field(default_factory=list)
    _seq: int = 0
    _waitq: dict[tuple[str, int], list[SimCpu]] = field(default_factory=dict)
    _hash: Any = field(default_factory=hashlib.sha256)
    _lines: list[tuple[float, str, str, tuple[Any, ...], Any]] = field(
        default_factory=list
    )  # trace lines not hashed yet
    _names: dict[str, int] = field(default_factory=dict)
    _owners: dict[str, Any] = field(init=False)
    _net: bool = field(init=False)
    # The strategy's hooks, looked up once per run() (the hot loop calls them every
    # step; a scenario may swap the strategy between runs).
    _key: Callable[[SimCpu], float] = field(init=False)
    _cost: float = field(init=False)
    _on_step: Callable[[SimCpu], None] | None = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.fault = FaultModel(self.profile, self.rng)
        self.strategy = self.strategy_factory(self.rng)
        self._owners = {"mm": self.mm, "memcg": self.memcg}
        # Without link rules every message is delivered at once: skip the fault model.
        self._net = bool(self.profile.rules)
        self._bind(self.strategy)

    # --- starting CPUs ---------------------------------------------------

    def unique_name(self, base: str) -> str:
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return base if n == 0 and base not in self.cpus else f"{base}{n}"

    def start(
        self, cpu: SimCpu, coro: Coroutine[Any, Any, Any], at_s: float | None = None
    ) -> SimCpu:
        """Run ``coro`` on ``cpu`` from ``at_s`` (default: now)."""
        cpu.coro = coro
        self.cpus[cpu.name] = cpu
        self._push(cpu, self.now if at_s is None else at_s)
        return cpu

    def spawn(self, service: str, path: str, args: tuple[int, ...], at_s: float) -> SimCpu | None:
        """A service runs code path ``path`` on a new CPU of its own.

        Requests that are not kernel code (the tasks service's ``oom_kill``) go to
        the handler registered in ``on_post`` at once.
        """
        if path in self.on_post:
            self.on_post[path](*args)
            return None
        base = {"blockdev": "irq", "workqueue": "kworker", "vmscan": path}.get(service, service)
        cpu = SimCpu(self, self.unique_name(base), service, service)
        return self.start(cpu, CODE_PATHS[path](cpu, *args), at_s)

    def _bind(self, strategy: Strategy) -> None:
        self._key = strategy.key
        self._cost = strategy.step_cost_s
        overridden = type(strategy).on_step is not Strategy.on_step
        self._on_step = strategy.on_step if overridden else None

    def _push(self, cpu: SimCpu, at_s: float) -> None:
        seq = self._seq = self._seq + 1
        heapq.heappush(self._heap, (at_s, self.strategy.key(cpu), seq, cpu))

    def wake(self, cpu: SimCpu) -> None:
        """Make a sleeping CPU run now (a SIGKILL wakes an interruptible sleep)."""
        for i, entry in enumerate(self._heap):
            if entry[3] is cpu and cpu.pending is not None and cpu.pending.kind == SLEEP:
                self._heap[i] = (self.now, entry[1], entry[2], cpu)
                heapq.heapify(self._heap)
                return

    # --- the loop ----------------------------------------------------------

    def run(self, until_s: float | None = None) -> None:
        """Run until nothing is pending (or the clock would pass ``until_s``).

        The hot loop: a step is picked, then a primitive runs (``_execute``) or a
        sleep or post finishes (``_resume``); both push the CPU's next step.
        """
        heap = self._heap
        strategy = self.strategy
        self._bind(strategy)
        scripted = strategy.scripted
        choose = strategy.choose
        heappop, heapify = heapq.heappop, heapq.heapify
        execute, resume = self._execute, self._resume
        while heap:
            if scripted:
                # The strategy indexes into the heap's list: the order of its entries
                # is what a random walk draws from, so it stays exactly as heapify()
                # leaves it (every seed's schedule and the documented seeds depend on
                # it).  With a handful of runnable CPUs heapify() is cheap.
                i = choose(self, heap)
                entry = heap[i]
                last = heap.pop()
                if i < len(heap):
                    heap[i] = last
                    heapify(heap)
            else:
                if until_s is not None and heap[0][0] > until_s:
                    self.now = until_s
                    return
                entry = heappop(heap)
            at = entry[0]
            if at > self.now:
                self.now = at
            cpu = entry[3]
            req = cpu.pending
            if req is not None and req.kind == CALL:
                execute(cpu, req)
            else:  # not started yet, or a sleep or post finished: carry on
                resume(cpu, None, self.now)
        if until_s is not None and until_s > self.now:
            self.now = until_s

    def _execute(self, cpu: SimCpu, req: _Req) -> None:
        info: PrimitiveInfo = req.info
        steps = self.steps = self.steps + 1
        if steps > self.max_steps:
            raise SimulationError(f"step budget of {self.max_steps} exhausted at t={self.now:.6f}s")
        owner = self._owners[info.owner]
        args = req.args
        result = info.fn(owner, *args)
        now = self.now
        name = info.name
        # The identity: kernel events only, never the Python call site (req.func).
        # Formatted and hashed in batches (the digest of the concatenation is the
        # same); a list argument or result is copied, as it stands now.
        takes_lists = LIST_PRIMS.get(name)
        if takes_lists is None:
            takes_lists = LIST_PRIMS[name] = _takes_lists(info)
        lines = self._lines
        if takes_lists:
            lines.append(
                (
                    now,
                    cpu.name,
                    name,
                    tuple(a[:] if type(a) is list else a for a in args),
                    result[:] if type(result) is list else result,
                )
            )
        else:
            lines.append((now, cpu.name, name, args, result))
        if len(lines) >= HASH_BATCH:
            self._flush_hash()
        if self.keep_trace:
            self.trace.append(TraceEvent(now, cpu.name, req.func, name, args, result))
        cost = self._cost
        woken = owner.woken
        if woken:
            for key in woken:
                for waiter in self._waitq.pop(key, ()):
                    waiter.waiting = False
                    self._push(waiter, now + cost)
            woken.clear()
        for observe in self.observers:
            observe(self, info)
        if self._on_step is not None:
            self._on_step(cpu)
        if type(result) is WouldBlock:
            cpu.waiting = True
            self._waitq.setdefault(result.key, []).append(cpu)
            return
        if self._net:
            reply_at = self.fault.on_send(info.owner, cpu.service, name, now).deliver_at_s
            if reply_at > now:
                now = reply_at
        self._resume(cpu, result, now + cost)

    def _resume(self, cpu: SimCpu, value: Any, now: float) -> None:
        """Send ``value`` into the coroutine and schedule, from ``now``, what it asks next."""
        assert cpu.coro is not None
        try:
            req = cpu.coro.send(value)
        except StopIteration:
            cpu.pending = None
            self.cpus.pop(cpu.name, None)
            return
        cpu.pending = req
        kind = req.kind
        if kind == CALL:
            if self._net:
                verdict = self.fault.on_send(cpu.service, req.info.owner, req.info.name, now)
                if verdict.deliver_at_s > now:
                    now = verdict.deliver_at_s
            # _push(), inlined: this is every primitive's path.
            seq = self._seq = self._seq + 1
            heapq.heappush(self._heap, (now, self._key(cpu), seq, cpu))
        elif kind == SLEEP:
            self._push(cpu, now + req.info)
        elif kind == POST:
            service, path, delay_s = req.info
            at = self.fault.on_send(cpu.service, service, path, now).deliver_at_s
            self.spawn(service, path, req.args, max(at, now) + delay_s)
            self._push(cpu, now)
        else:  # BIO
            path = "end_swap_bio_read" if req.info == "read" else "end_swap_bio_write"
            self.spawn("blockdev", path, req.args, self.fault.bio_complete_at_s(req.info, now))
            self._push(cpu, now)

    # --- results -------------------------------------------------------------

    def close(self) -> None:
        """Abandon every unfinished code path (after a crash): close its coroutine."""
        cpus = {e[3] for e in self._heap} | {c for q in self._waitq.values() for c in q}
        for cpu in cpus:
            if cpu.coro is not None:
                cpu.coro.close()
        self._heap.clear()
        self._waitq.clear()

    @property
    def idle(self) -> bool:
        return not self._heap

    def blocked_cpus(self) -> list[str]:
        return sorted(c.name for q in self._waitq.values() for c in q)

    def _flush_hash(self) -> None:
        lines = self._lines
        out: list[str] = []
        add = out.append
        # tuple.__repr__: a NamedTuple's own repr is slow Python and says the same.
        trepr = tuple.__repr__
        # The clock stands still for most steps of a search (its step cost is zero):
        # the same time object is formatted once (identity, not equality: -0.0 == 0.0).
        last: object = None
        when = ""
        for now, cpu, prim, args, res in lines:
            if now is not last:
                last = now
                when = repr(now)
            shown = trepr(res) if isinstance(res, tuple) else repr(res)
            add(f"{when}|{cpu}|{prim}|{args!r}|{shown}\n")
        self._hash.update("".join(out).encode())
        lines.clear()

    def trace_sha256(self) -> str:
        if self._lines:
            self._flush_hash()
        return str(self._hash.hexdigest())
