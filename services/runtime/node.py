"""A service's endpoint: the one place that touches sockets.

Theory of operation
-------------------
A ``Node`` serves TCP and connects to its peers; both directions are a
``Connection`` (connection.py: an asyncio Protocol carrying length-prefixed
msgpack frames).  The connecting side sends ``hello`` first.  Each
connection owns an ``RpcSession`` (session.py) for its calls in flight; the
node keeps one sweep timer that fails the calls whose deadline passed, on
every connection.

What arrives goes to the node's ``Dispatcher`` (dispatch.py: fast or strict
validation, the handler table, replies and error replies).  Everything that
leaves goes through ``Node.send``: framed by ``kernsim.protocol.encode_frame``,
counted per link, and, for kernel traffic, passed through the fault layer
(which may delay, reorder or hold it); control traffic goes straight out.
Bad input follows PROTOCOL.md section 5: a bad frame poisons the decoder and
closes the connection; a bad envelope or body gets an ``error`` reply and
the connection stays up.  Each gets a (rate-limited) log line.

The node is the connections' ``Host``: they call it back only through that
interface, and it reads them only through their public methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from kernsim.protocol import (
    MAX_FRAME_BYTES,
    Envelope,
    NodeNotFound,
    Registry,
    Wire,
    check_hello_ok,
    encode_frame,
    make_hello,
)
from kernsim.services.runtime.config import Limits
from kernsim.services.runtime.connection import (
    MAX_HANDLERS,
    MAX_IN_FLIGHT,
    Connection,
    ConnectionSettings,
)
from kernsim.services.runtime.dispatch import Dispatcher, Handler
from kernsim.services.runtime.faultlayer import FaultLayer
from kernsim.services.runtime.guard import Guard, check_claim
from kernsim.services.runtime.plumbing import RateLimitedLog

log = logging.getLogger("kernsim.services")

#: How often deadlines are checked: a call times out at most this much late.
SWEEP_S = 0.05
#: Distinct (src, dest) links counted by name; more go to ("*", "*") so that
#: peers choosing names cannot grow the metrics without bound.
MAX_LINKS = 64
_STAT_NAMES = [
    "received",
    "frame_errors",
    "malformed",
    "unknown_type",
    "errors_replied",
    "crashes",
    "dropped_replies",
    "connections",
    "timeouts",
    "read_pauses",
]


class Node:
    """A service's endpoint: serves, connects to peers, sends, sweeps deadlines."""

    def __init__(
        self,
        name: str,
        registry: Registry,
        *,
        peers: Mapping[str, tuple[str, int]] | None = None,
        fault: FaultLayer | None = None,
        faultable: frozenset[str] = frozenset(),
        rpc_timeout_s: float = 30.0,
        token: str | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_handlers: int = MAX_HANDLERS,
        limits: Limits | None = None,
    ) -> None:
        self._name = name
        self.peers = dict(peers or {})
        self.fault = fault
        self.faultable = faultable
        self.token = token
        self.max_frame_bytes = max_frame_bytes
        self.loop = asyncio.get_running_loop()
        limits = limits or Limits()
        self.settings = ConnectionSettings(
            max_frame_bytes=max_frame_bytes,
            max_in_flight=max_in_flight,
            max_handlers=max_handlers,
            rpc_timeout_s=rpc_timeout_s,
            prehello_max_bytes=limits.prehello_max_bytes,
        )
        self.conns: dict[str, Connection] = {}
        self.live: set[Connection] = set()
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._bad_log = RateLimitedLog(log)
        self.guard = Guard(limits, self.note_bad)
        self._server: asyncio.Server | None = None
        self.sent: dict[tuple[str, str], int] = {}
        self.stats: dict[str, int] = dict.fromkeys(_STAT_NAMES, 0)
        self.dispatcher = Dispatcher(
            name,
            registry,
            token=token,
            send=self.send,
            spawn=self.spawn,
            claim=lambda conn, env: check_claim(self._name, self.peers, conn, env),
            stats=self.stats,
            bad_log=self._bad_log,
        )
        #: The connections' entry for each decoded frame (Host.on_object).
        self.on_object = self.dispatcher.on_object

    @property
    def name(self) -> str:
        return self._name

    @property
    def handlers(self) -> dict[str, Handler]:
        """Request type -> handler; a service fills this before serving."""
        return self.dispatcher.handlers

    @property
    def crash_texts(self) -> list[str]:
        return self.dispatcher.crash_texts

    # --- the connections' Host --------------------------------------------------------

    def note_bad(self, text: str) -> None:
        """A log line for bad input, rate-limited (see RateLimitedLog)."""
        self._bad_log.warning(text)

    def count(self, stat: str) -> None:
        self.stats[stat] += 1

    def watch_paused(self, conn: Connection) -> None:
        self.guard.watch_paused(conn)

    def send(self, conn: Connection, wire: Wire, kind: str) -> None:
        """Frame a wire map and send it, through the fault layer when ``kind`` is kernel traffic.

        Links are counted and judged by this node's name and the connection's
        peer, not by the names inside the message, which a peer chooses.
        """
        frame = encode_frame(wire, max_frame_bytes=self.max_frame_bytes)
        link = conn.link
        sent = self.sent
        if link in sent:
            sent[link] += 1
        else:
            sent[link if len(sent) < MAX_LINKS else ("*", "*")] = sent.get(link, 0) + 1
        if self.fault is not None and kind in self.faultable:
            self.fault.send(conn, self._name, conn.peer, kind, frame)
        else:
            conn.write(frame)

    def call_started(self) -> None:
        if self._sweep is None:
            self._sweep = self.loop.call_later(SWEEP_S, self._run_sweep)

    def _run_sweep(self) -> None:
        self._sweep = None
        now = self.loop.time()
        busy = False
        for conn in list(self.live):
            if conn.in_flight:
                self.stats["timeouts"] += conn.expire(now)
                busy = busy or bool(conn.in_flight)
        if busy:
            self._sweep = self.loop.call_later(SWEEP_S, self._run_sweep)

    def connection_closed(self, conn: Connection) -> None:
        self.live.discard(conn)
        self.guard.forget(conn)
        if self.conns.get(conn.peer) is conn:
            del self.conns[conn.peer]

    # --- serving and connecting ------------------------------------------------------

    async def serve(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); return the port bound."""
        self._server = await self.loop.create_server(self._accepted, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    def _accepted(self) -> Connection:
        conn = Connection(self, self.settings, "?", accepted=True)
        if not self.guard.admit(conn):
            conn.refuse()  # closed as soon as it is made; never counted as live
            return conn
        self.live.add(conn)
        self.stats["connections"] += 1
        return conn

    async def peer(self, name: str) -> Connection:
        """The connection to peer ``name``, connecting (once, shared) if needed."""
        conn = self.conns.get(name)
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting.get(name)
        if pending is None:
            pending = self.loop.create_future()
            self._connecting[name] = pending
            task = self.spawn(self._connect_peer(name, pending))
            task.add_done_callback(lambda _t: self._connecting.pop(name, None))
        return await asyncio.shield(pending)

    async def _connect_peer(self, name: str, out: asyncio.Future[Connection]) -> None:
        try:
            if name not in self.peers:
                raise NodeNotFound(f"{self._name} has no address for peer {name!r}")
            host, port = self.peers[name]
            conn = await self.connect(host, port, name)
            self.conns[name] = conn
            out.set_result(conn)
        except BaseException as exc:  # every waiter must learn why, even on cancellation
            out.set_exception(exc)
            out.exception()  # the waiters re-raise it; mark it retrieved for the loop
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def connect(self, host: str, port: int, peer: str) -> Connection:
        """Open a connection to ``host:port`` and say hello; the peer must answer as ``peer``."""
        _transport, conn = await self.loop.create_connection(
            lambda: Connection(self, self.settings, peer, greeted=True), host, port
        )
        self.live.add(conn)
        try:
            hello = make_hello(self._name, peer, msg_id=0, service=self._name, token=self.token)
            body = await conn.call("hello", hello.body)
            check_hello_ok(Envelope(peer, self._name, 0, 0, "hello_ok", body))
        except BaseException:
            conn.close()
            raise
        return conn

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the node keeps (and cancels on close)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- shutdown and introspection ----------------------------------------------------

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self.guard.close()
        for conn in list(self.live):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def statistics(self) -> dict[str, Any]:
        return {
            **self.stats,
            "messages_sent": sum(self.sent.values()),
            "in_flight": sum(c.in_flight for c in self.live),
            "connections_open": len(self.live),
            "handler_tasks": sum(c.handler_count for c in self.live),
            "log_lines_suppressed": self._bad_log.suppressed,
            **self.guard.statistics(),
            "crash_texts": list(self.crash_texts),
        }
