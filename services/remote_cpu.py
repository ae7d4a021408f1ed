"""RemoteCpu: the kernel model's Cpu port over the network.

``call(primitive, *args)`` is one RPC to the primitive's owner (``mm`` or
``memcg``), whose message type is the primitive's name (see catalog).
``post`` and ``submit_bio`` are requests that the receiving service
acknowledges once queued: the code path itself runs later on a CPU of that
service, so the caller goes on at once, as the kernel's caller would after
submit_bio() or schedule_delayed_work().  ``sleep`` is real time.

``CpuHost`` is the part of a service that runs code paths on RemoteCpus:
it names the CPUs, starts posted paths after their delay, and counts what is
queued or running so the launcher can tell when the cluster is quiescent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from errno import EINVAL
from typing import Any, Concatenate, ParamSpec, TypeVar

from kernsim.protocol import (
    Envelope,
    HandshakeRefused,
    InvalidArgument,
    NodeNotFound,
    RequestTimeout,
    TemporarilyUnavailable,
)
from kernsim.services.catalog import CODEC_BY_NAME
from kernsim.services.runtime import Body, Node
from kernsim.services.runtime.metrics import Metrics

from kernsim.model.port import CODE_PATHS, PRIMITIVE_BY_FN, PRIMITIVES, Cpu, PrimitiveInfo
from kernsim.variants import Variant

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("kernsim.services")
#: The longest delay a ``post`` may ask for (the kernel's longest is HZ-scale work).
MAX_POST_DELAY_S = 3600.0
#: What makes a code path stop half-way without the kernel failing: its RPC got no reply
#: in time, the link was lost, the owner was unreachable or busy.
ABANDONED = (RequestTimeout, TemporarilyUnavailable, NodeNotFound, HandshakeRefused, OSError)


class RemoteCpu(Cpu):
    """One CPU of a service, running one kernel code path at a time."""

    def __init__(self, host: CpuHost, name: str, pvec: str, memcg: int = 0, task: int = 0) -> None:
        self.host = host
        self._init_cpu(name, host.node.name, pvec, host.variant, memcg, task)
        self._sleep: asyncio.Future[None] | None = None

    def call(
        self, fn: Callable[Concatenate[Any, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[R]:
        if kwargs:
            raise TypeError("primitives take positional arguments only")
        return self.host.call_primitive(PRIMITIVE_BY_FN[fn], args)

    def post(self, service: str, path: str, *args: int, delay_s: float = 0.0) -> Awaitable[None]:
        return self.host.post(self.name, service, path, list(args), delay_s)

    def submit_bio(self, rw: str, pfn: int) -> Awaitable[None]:
        return self.host.submit_bio(rw, pfn)

    async def sleep(self, delay_s: float) -> None:
        # Interruptible, as a task's sleep is: SIGKILL ends it early (kill()).
        if self.killed:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._sleep = fut
        timer = loop.call_later(delay_s, _wake, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._sleep = None

    def kill(self, memdie: bool = False) -> None:
        """SIGKILL: the task exits at its next return to user space."""
        self.killed = True
        self.memdie = memdie
        if self._sleep is not None:
            _wake(self._sleep)

    def fatal_signal_pending(self) -> bool:
        return self.killed

    def note_result(self, label: str) -> None:
        r = self.host.vmscan_results
        r[label] = r.get(label, 0) + 1


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class CpuHost:
    """Runs code paths on RemoteCpus of one service and reaches the state owners."""

    def __init__(self, node: Node, metrics: Metrics, variant: Variant) -> None:
        self.node = node
        self.variant = variant
        self.metrics = metrics
        self.ops = 0
        self.busy = 0
        self.started = 0
        self.vmscan_results: dict[str, int] = {}
        self.work_items: dict[str, int] = {}
        self.crash_texts: list[str] = []
        self.abandoned_texts: list[str] = []
        self.local: dict[str, Callable[..., None]] = {}  # post targets that are not kernel code
        self._names: dict[str, int] = {}
        self._hist = {c.type: metrics.rpc_latency.labels(op=c.type) for c in CODEC_BY_NAME.values()}

    async def call_primitive(self, info: PrimitiveInfo, args: tuple[Any, ...]) -> Any:
        codec = CODEC_BY_NAME[info.name]
        conn = self.node.conns.get(info.owner)
        if conn is None or conn.closed:
            conn = await self.node.peer(info.owner)
        t0 = time.perf_counter()
        body = await conn.call(codec.type, codec.encode_args(args))
        self._hist[codec.type].observe(time.perf_counter() - t0)
        self.ops += 1
        return codec.decode_result(body)

    async def post(
        self, cpu: str, service: str, path: str, args: list[int], delay_s: float
    ) -> None:
        conn = await self.node.peer(service)
        await conn.call("post", {"path": path, "args": args, "delay_s": delay_s, "cpu": cpu})

    async def submit_bio(self, rw: str, pfn: int) -> None:
        conn = await self.node.peer("blockdev")
        await conn.call("submit_bio", {"rw": rw, "pfn": pfn})

    def new_cpu(self, base: str, memcg: int = 0, task: int = 0, unique: bool = False) -> RemoteCpu:
        """A CPU named ``base``, ``base1``, ``base2`` ... in the order they are made.

        A ``unique`` name (a task's pid) is taken as given and not counted: a counter per
        unique name would keep one entry for every task the service ever ran.
        """
        if unique:
            return RemoteCpu(self, base, self.node.name, memcg, task)
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        name = base if n == 0 else f"{base}{n}"
        return RemoteCpu(self, name, self.node.name, memcg, task)

    # --- running code paths ------------------------------------------------------------

    def schedule(self, base: str, path: str, args: list[int], delay_s: float) -> None:
        """Run ``path`` on a new CPU after ``delay_s``; counted busy from now."""
        if path not in CODE_PATHS and path not in self.local:
            raise InvalidArgument(f"{self.node.name} has no code path {path!r}", errno=EINVAL)
        self.busy += 1
        self.started += 1
        self.work_items[path] = self.work_items.get(path, 0) + 1
        self.node.loop.call_later(max(0.0, delay_s), self._start, base, path, args)

    def _start(self, base: str, path: str, args: list[int]) -> None:
        if path in self.local:
            try:
                self.local[path](*args)
            finally:
                self.busy -= 1
            return
        cpu = self.new_cpu(base)
        self.node.spawn(self._run(cpu, CODE_PATHS[path](cpu, *args), path))

    async def _run(self, cpu: RemoteCpu, coro: Coroutine[Any, Any, Any], what: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.note_failure(f"{cpu.name} {what}: {type(exc).__name__}: {exc}", exc)
        finally:
            self.busy -= 1

    def note_failure(self, text: str, exc: BaseException) -> None:
        """A code path that raised: a kernel crash, or abandoned half-way when its RPC
        failed (no reply in time, a lost link).  The owner may still run an abandoned
        call's primitive, so the model is left half-way and no verdict can be drawn from
        it: the run reports those apart from the kernel's crashes."""
        abandoned = isinstance(exc, ABANDONED)
        texts = self.abandoned_texts if abandoned else self.crash_texts
        if len(texts) < 20:
            texts.append(text)
        what = "code path abandoned half-way" if abandoned else "code path failed"
        log.error("%s: %s", what, text, exc_info=exc)

    async def run_path(self, base: str, path: str) -> None:
        """Run a code path, or a primitive that takes no argument, to completion."""
        cpu = self.new_cpu(base)
        self.busy += 1
        self.started += 1
        try:
            if path in CODE_PATHS:
                await CODE_PATHS[path](cpu)
            elif path in PRIMITIVES:
                await cpu.call(PRIMITIVES[path].fn)
            else:
                raise InvalidArgument(f"no code path or primitive {path!r}", errno=EINVAL)
        finally:
            self.busy -= 1

    # --- handlers -------------------------------------------------------------------------

    def install(self, base: Callable[[str], str]) -> None:
        """Serve post / run_path / activity; ``base(path)`` names the CPUs."""
        handlers = self.node.handlers

        def post(env: Envelope) -> Body:
            b = env.body
            delay_s = float(b["delay_s"])
            # inf or 1e300 would park a busy CPU forever (no quiescence); NaN has no order.
            if not 0.0 <= delay_s <= MAX_POST_DELAY_S:
                raise InvalidArgument(
                    f"delay_s {delay_s} outside 0..{MAX_POST_DELAY_S}", errno=EINVAL
                )
            self.schedule(base(b["path"]), b["path"], b["args"], delay_s)
            return {}

        async def run_path(env: Envelope) -> Body:
            path = env.body["path"]
            await self.run_path(base(path), path)
            return {}

        handlers["post"] = post
        handlers["run_path"] = run_path
        handlers["activity"] = lambda env: {"busy": self.busy, "started": self.started}

    def statistics(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "busy": self.busy,
            "started": self.started,
            "vmscan_results": dict(sorted(self.vmscan_results.items())),
            "work_items": dict(sorted(self.work_items.items())),
            "crash_texts": list(self.crash_texts),
            "abandoned_texts": list(self.abandoned_texts),
        }
