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

The hash is the trace's *identity* and holds kernel events only, never the
Python function that issued a call: a refactor that renames or moves model
code keeps every trace hash and every replay file valid (kernsim.sim.trace).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import random
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kernsim.faults import FaultModel, Profile
from kernsim.model.memcontrol import MemcgState
from kernsim.model.mm import MmState
from kernsim.model.port import CODE_PATHS, PrimitiveInfo, WouldBlock
from kernsim.sim.cpu import CALL, POST, SLEEP, Request, SimCpu
from kernsim.sim.strategy import STEP_COST_S, SimulationError, Strategy
from kernsim.sim.trace import (
    HASH_BATCH,
    LISTS,
    NEVER,
    TRACE_IDENTITY,
    TraceEvent,
    TraceHash,
    copies_lists,
    copy_lists,
    copy_value,
)
from kernsim.variants.base import Variant

__all__ = [
    "STEP_COST_S",
    "TRACE_IDENTITY",
    "Engine",
    "SimulationError",
    "Strategy",
    "TraceEvent",
]

_new = tuple.__new__


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (unless it is off already).

    A step makes no reference cycle (a run's cycles, World to engine to CPUs, are
    made when it is built), yet the objects steps allocate would start a
    collection every 700, and the older generations' ones walk the whole trace
    again and again.  A schedule's cycles are collected after it, at once."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
    _count: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waitq: dict[tuple[str, int], list[SimCpu]] = field(default_factory=dict)
    _hash: TraceHash = field(default_factory=TraceHash)
    _events: list[TraceEvent] = field(init=False)  # the trace, or events not hashed yet
    _hash_at: int = field(init=False)  # the length of _events that triggers a hash
    _names: dict[str, int] = field(default_factory=dict)
    _owners: dict[str, Any] = field(init=False)
    _net: bool = field(init=False)
    # The strategy's hooks, looked up once per run() (the hot loop calls them every
    # step; a scenario may swap the strategy between runs).
    _key: Callable[[SimCpu], float] = field(init=False)
    _fixed_key: float | None = field(init=False)
    _cost: float = field(init=False)
    _on_step: Callable[[SimCpu], None] | None = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.fault = FaultModel(self.profile, self.rng)
        self.strategy = self.strategy_factory(self.rng)
        self._owners = {"mm": self.mm, "memcg": self.memcg}
        self._events = self.trace if self.keep_trace else []
        self._hash_at = NEVER if self.keep_trace else HASH_BATCH
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
        self._fixed_key = strategy.fixed_key
        self._cost = strategy.step_cost_s
        overridden = type(strategy).on_step is not Strategy.on_step
        self._on_step = strategy.on_step if overridden else None

    def _push(self, cpu: SimCpu, at_s: float) -> None:
        heapq.heappush(self._heap, (at_s, self.strategy.key(cpu), next(self._count), cpu))

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

        The cyclic garbage collector pauses meanwhile (collector_paused())."""
        with collector_paused():
            self._run(until_s)

    def _run(self, until_s: float | None) -> None:
        """The hot loop: a step is picked; a primitive runs, its event is recorded and
        its result sent into the coroutine, all inline (else ``_resume``); what the
        coroutine asks next is pushed as the CPU's one pending entry."""
        heap = self._heap
        strategy = self.strategy
        self._bind(strategy)
        scripted = strategy.scripted
        choose = strategy.choose
        key, fixed_key, cost = self._key, self._fixed_key, self._cost
        heappop, heappush, heapify = heapq.heappop, heapq.heappush, heapq.heapify
        owners, observers, waitq = self._owners, self.observers, self._waitq
        on_step, net, count = self._on_step, self._net, self._count
        max_steps = self.max_steps
        events = self._events
        record = events.append
        event, lists = TraceEvent, LISTS
        while heap:
            if scripted:
                # The strategy indexes into the heap's list: its order, as heapify()
                # leaves it, is what a random walk draws from (every seed's schedule
                # depends on it).  With a handful of runnable CPUs heapify() is cheap.
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
            now = entry[0]
            if now > self.now:
                self.now = now
            else:
                now = self.now
            cpu = entry[3]
            req = cpu.pending
            if req is None or req.kind != CALL:
                self._resume(cpu, None, now)  # not started yet, or a sleep or post finished
                continue
            # One primitive, atomically, at ``now``.
            info: PrimitiveInfo = req.info
            steps = self.steps = self.steps + 1
            if steps > max_steps:
                raise SimulationError(f"step budget of {max_steps} exhausted at t={now:.6f}s")
            owner = owners[info.owner]
            args = req.args
            result = info.fn(owner, *args)
            name = info.name
            # The event, as it stands now: a list argument or result is copied.
            copies = lists.get(name)
            if copies is None:
                copies = copies_lists(info)
            if copies:
                args = copy_lists(args)
                record(_new(event, (now, cpu.name, req.func, name, args, copy_value(result))))
            else:
                record(_new(event, (now, cpu.name, req.func, name, args, result)))
            if len(events) >= self._hash_at:
                self._flush_hash()
            woken = owner.woken
            if woken:
                for k in woken:
                    for waiter in waitq.pop(k, ()):
                        waiter.waiting = False
                        heappush(heap, (now + cost, key(waiter), next(count), waiter))
                woken.clear()
            for observe in observers:
                observe(self, info)
            if on_step is not None:
                on_step(cpu)
            if type(result) is WouldBlock:
                cpu.waiting = True
                waitq.setdefault(result.key, []).append(cpu)
                continue
            if net:
                reply_at = self.fault.on_send(info.owner, cpu.service, name, now).deliver_at_s
                if reply_at > now:
                    now = reply_at
            now += cost
            # _resume(), inlined for a coroutine that goes on to its next primitive.
            try:
                req = cpu.coro.send(result)  # type: ignore[union-attr]
            except StopIteration:
                cpu.pending = None
                self.cpus.pop(cpu.name, None)
                continue
            cpu.pending = req
            if req.kind == CALL and not net:
                k = fixed_key if fixed_key is not None else key(cpu)
                heappush(heap, (now, k, next(count), cpu))
            else:
                self._schedule(cpu, req, now)
        if until_s is not None and until_s > self.now:
            self.now = until_s

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
        self._schedule(cpu, req, now)

    def _schedule(self, cpu: SimCpu, req: Request, now: float) -> None:
        """Push the step ``cpu`` asks for (``req``, its pending request) from ``now``."""
        kind = req.kind
        if kind == CALL:
            if self._net:
                verdict = self.fault.on_send(cpu.service, req.info.owner, req.info.name, now)
                if verdict.deliver_at_s > now:
                    now = verdict.deliver_at_s
            self._push(cpu, now)
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
        self._hash_at = self._hash.update(self._events, keep=self.keep_trace)

    def trace_sha256(self) -> str:
        self._flush_hash()
        return self._hash.hexdigest()
