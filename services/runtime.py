"""The runtime: the one place that touches sockets.

Theory of operation
-------------------
A ``Node`` is one service's endpoint.  It serves TCP and connects to its
peers; both directions are a ``Connection`` (an asyncio Protocol carrying
length-prefixed msgpack frames, see connection.py).  The connecting side
sends ``hello`` first.  Any number of calls may be in flight on one
connection, up to its bound: each request gets a fresh ``msg_id`` and an
entry in ``Connection.pending``, and a reply is matched by its
``in_reply_to`` alone, never by order, because the fault layer reorders on
purpose.  One sweep timer per node fails the calls whose deadline passed.

A request is validated against the registry, then handed to the handler for
its type.  Registered messages whose envelope and body pass the compiled
checks of fastpath.py skip the generic validation; everything else takes
the strict path, which accepts or rejects exactly as before.  A handler
returns the reply body, or an awaitable of it (a parked ``lock_page``, a
code path run to completion).  ``Node._reply_exception`` is the only place
where a handler's exception becomes an ``error`` reply.

Every frame leaves through ``Node.send_wire``: kernel traffic passes the
fault layer (which may delay, reorder or hold it), control traffic goes
straight out.  Bad input follows PROTOCOL.md section 5: a bad frame poisons
the decoder and closes the connection; a bad envelope or body gets an
``error`` reply and the connection stays up.  Each gets a (rate-limited) log
line.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgpack  # type: ignore[import-untyped]
from kernsim.protocol import (
    MAX_FRAME_BYTES,
    OK_SUFFIX,
    Envelope,
    FrameTooLarge,
    InternalError,
    MalformedMessage,
    NodeNotFound,
    ProtocolError,
    Registry,
    UnknownMessageType,
    accept_hello,
    check_hello_ok,
    make_hello,
    reply_for_exception,
    salvage_request,
)
from kernsim.services.config import Limits
from kernsim.services.connection import MAX_HANDLERS, MAX_IN_FLIGHT, Connection
from kernsim.services.fastpath import FastPath
from kernsim.services.faultlayer import FaultLayer
from kernsim.services.guard import Guard, check_claim
from kernsim.services.plumbing import (
    JsonFormatter,
    RateLimitedLog,
    setup_logging,
    stop_on_signals,
)

log = logging.getLogger("kernsim.services")

Body = dict[str, Any]
Handler = Callable[[Envelope], "Body | Awaitable[Body]"]
#: How often deadlines are checked: a call times out at most this much late.
SWEEP_S = 0.05
#: How often connections whose reading is paused are checked for a peer that hung up.
PAUSED_CHECK_S = 0.25
#: Distinct (src, dest) links counted by name; more go to ("*", "*") so that
#: peers choosing names cannot grow the metrics without bound.
MAX_LINKS = 64
_HEADER = struct.Struct(">I")
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
_packb = msgpack.packb

__all__ = [
    "Body",
    "Connection",
    "Handler",
    "JsonFormatter",
    "Node",
    "setup_logging",
    "stop_on_signals",
]


class Node:
    """A service's endpoint: serves, connects to peers, dispatches, replies."""

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
        self.name = name
        self.registry = registry
        self.fast = FastPath(registry)
        self.handlers: dict[str, Handler] = {}
        self.peers = dict(peers or {})
        self.fault = fault
        self.faultable = faultable
        self.rpc_timeout_s = rpc_timeout_s
        self.token = token
        self.max_frame_bytes = max_frame_bytes
        self.max_in_flight = max_in_flight
        self.max_handlers = max_handlers
        self.loop = asyncio.get_running_loop()
        self.conns: dict[str, Connection] = {}
        self.live: set[Connection] = set()
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._msg_id = 0
        self._sweep: asyncio.TimerHandle | None = None
        self.guard = Guard(self, limits or Limits())
        self._server: asyncio.Server | None = None
        self._bad_log = RateLimitedLog(log)
        self.sent: dict[tuple[str, str], int] = {}
        self.stats: dict[str, int] = dict.fromkeys(_STAT_NAMES, 0)
        self.crash_texts: list[str] = []

    def next_msg_id(self) -> int:
        self._msg_id += 1
        return self._msg_id

    def note_bad(self, text: str) -> None:
        """A log line for bad input, rate-limited (see RateLimitedLog)."""
        self._bad_log.warning(text)

    # --- sending -----------------------------------------------------------------

    def send(self, conn: Connection, env: Envelope, kind: str) -> None:
        """Frame ``env`` and send it (see send_wire)."""
        self.send_wire(conn, env.to_wire(), kind)

    def send_wire(self, conn: Connection, wire: Body, kind: str) -> None:
        """Frame a wire map and send it, through the fault layer when ``kind`` is kernel traffic.

        Links are counted and judged by this node's name and the connection's
        peer, not by the names inside the message, which a peer chooses.
        """
        payload: bytes = _packb(wire)
        if len(payload) > self.max_frame_bytes:
            raise FrameTooLarge(
                f"frame payload of {len(payload)} bytes, limit {self.max_frame_bytes}"
            )
        frame = _HEADER.pack(len(payload)) + payload
        link = conn.link
        sent = self.sent
        if link in sent:
            sent[link] += 1
        else:
            sent[link if len(sent) < MAX_LINKS else ("*", "*")] = sent.get(link, 0) + 1
        if self.fault is not None and kind in self.faultable:
            self.fault.send(conn, self.name, conn.peer, kind, frame)
        else:
            conn.write(frame)

    # --- calling (Connection.call does the rest) ---------------------------------

    def arm_sweep(self) -> None:
        if self._sweep is None:
            self._sweep = self.loop.call_later(SWEEP_S, self._run_sweep)

    def _run_sweep(self) -> None:
        self._sweep = None
        now = self.loop.time()
        busy = False
        for conn in list(self.live):
            if conn.pending:
                self.stats["timeouts"] += conn.expire(now)
                busy = busy or bool(conn.pending)
        if busy:
            self._sweep = self.loop.call_later(SWEEP_S, self._run_sweep)

    # --- serving and connecting ------------------------------------------------------

    async def serve(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); return the port bound."""
        self._server = await self.loop.create_server(self._accepted, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    def _accepted(self) -> Connection:
        conn = Connection(self, "?", accepted=True)
        if not self.guard.admit(conn):
            conn.refuse()  # closed as soon as it is made; never counted as live
            return conn
        self.live.add(conn)
        self.stats["connections"] += 1
        return conn

    def connection_closed(self, conn: Connection) -> None:
        self.live.discard(conn)
        self.guard.forget(conn)
        if self.conns.get(conn.peer) is conn:
            del self.conns[conn.peer]

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
                raise ProtocolError(f"{self.name} has no address for peer {name!r}", code=1)
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
            lambda: Connection(self, peer, greeted=True), host, port
        )
        self.live.add(conn)
        try:
            hello = make_hello(self.name, peer, msg_id=0, service=self.name, token=self.token)
            body = await conn.call("hello", hello.body)
            check_hello_ok(Envelope(peer, self.name, 0, 0, "hello_ok", body))
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

    # --- receiving -----------------------------------------------------------------

    def on_object(self, conn: Connection, obj: Any) -> None:
        """One decoded frame: the fast path for valid registered messages, else the strict one."""
        self.stats["received"] += 1
        if type(obj) is dict:
            if "r" in obj:
                if self.fast.reply(obj):
                    self._on_reply(conn, obj)
                    return
            elif conn.greeted and obj.get("d") == self.name and self.fast.request(obj):
                env = Envelope(obj["s"], obj["d"], obj["i"], None, obj["t"], obj["b"])
                self._dispatch(conn, env)
                return
        self._on_object_strict(conn, obj)

    def _on_object_strict(self, conn: Connection, obj: Any) -> None:
        try:
            env = Envelope.from_wire(obj)
        except MalformedMessage as exc:
            self.stats["malformed"] += 1
            req = salvage_request(obj)
            if req is not None:
                self._reply_exception(conn, req, exc)
            else:
                self.note_bad(f"dropped a malformed message from {conn.peer}: {exc.text}")
            return
        if env.in_reply_to is not None:
            self._on_strict_reply(conn, env)
        elif not conn.greeted:
            self._on_hello(conn, env)
        else:
            try:
                self.registry.validate_request(env)
                if env.dest != self.name:
                    raise NodeNotFound(f"this is {self.name}, not {env.dest!r}")
            except ProtocolError as exc:
                self._reply_exception(conn, env, exc)
                return
            self._dispatch(conn, env)

    def _on_reply(self, conn: Connection, reply: Body) -> None:
        entry = conn.pending.get(reply["r"])
        if entry is None or entry[0].done():
            # Late (timed out), duplicate, or answering nothing: never answer a reply.
            self.stats["dropped_replies"] += 1
            self.note_bad(f"dropped a reply from {conn.peer} to no pending call ({reply['r']})")
            return
        entry[0].set_result(reply)

    def _on_strict_reply(self, conn: Connection, env: Envelope) -> None:
        entry = conn.pending.get(env.in_reply_to)  # type: ignore[arg-type]
        try:
            self.registry.validate_reply(env)
        except ProtocolError as exc:
            # Never answer a reply: fail the call instead, so the caller learns.
            if entry is not None and not entry[0].done():
                entry[0].set_exception(exc)
            self.stats["dropped_replies"] += 1
            self.note_bad(f"bad reply from {conn.peer}: {exc.text}")
            return
        self._on_reply(conn, env.to_wire())

    def _on_hello(self, conn: Connection, env: Envelope) -> None:
        try:
            self.registry.validate_request(env)
            reply = accept_hello(env, service=self.name, token=self.token)
            check_claim(self, conn, env)
        except ProtocolError as exc:
            self.note_bad(f"refused a connection: {exc.text}")
            self._reply_exception(conn, env, exc)
            conn.close()
            return
        conn.greeted = True
        conn.set_peer(env.src)
        self.send(conn, reply, "hello")

    def _dispatch(self, conn: Connection, env: Envelope) -> None:
        """Run the handler of a validated request and reply (now, or when it finishes)."""
        handler = self.handlers.get(env.type)
        try:
            if handler is None:
                raise UnknownMessageType(f"{self.name} does not serve {env.type!r}")
            result = handler(env)
        except Exception as exc:
            self._reply_exception(conn, env, exc)
            return
        if type(result) is not dict and inspect.isawaitable(result):
            conn.handler_started(self.spawn(self._finish(conn, env, result)))
        else:
            self._reply_ok(conn, env, result)

    async def _finish(self, conn: Connection, env: Envelope, pending: Awaitable[Body]) -> None:
        try:
            body = await pending
        except Exception as exc:
            self._reply_exception(conn, env, exc)
            return
        self._reply_ok(conn, env, body)

    def _reply_ok(self, conn: Connection, req: Envelope, body: Body) -> None:
        wire = {
            "s": req.dest,
            "d": req.src,
            "i": 0,
            "r": req.msg_id,
            "t": req.type + OK_SUFFIX,
            "b": body,
        }
        try:
            self.send_wire(conn, wire, req.type)
        except (FrameTooLarge, TypeError, ValueError, OverflowError) as exc:
            # A reply that cannot be framed still owes the caller an answer.
            self._reply_exception(conn, req, exc)

    def _reply_exception(self, conn: Connection, req: Envelope, exc: Exception) -> None:
        """The one place where a handler's exception becomes an ``error`` reply."""
        if isinstance(exc, ProtocolError):
            if isinstance(exc, UnknownMessageType):
                self.stats["unknown_type"] += 1
            elif isinstance(exc, MalformedMessage):
                self.stats["malformed"] += 1
            self.note_bad(f"{req.type} from {conn.peer}: error {exc.code}: {exc.text}")
            err = exc
        else:
            self.stats["crashes"] += 1
            text = f"{req.type}: {type(exc).__name__}: {exc}"
            if len(self.crash_texts) < 20:
                self.crash_texts.append(text)
            # Rate-limited too: a peer can trigger the same crash a million times.
            self._bad_log.error(f"handler crashed: {text}", exc)
            err = InternalError(text)
        self.stats["errors_replied"] += 1
        self.send(conn, reply_for_exception(req, err), req.type)

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
            "in_flight": sum(len(c.pending) for c in self.live),
            "connections_open": len(self.live),
            "handler_tasks": sum(len(c.tasks) for c in self.live),
            "log_lines_suppressed": self._bad_log.suppressed,
            **self.guard.statistics(),
            "crash_texts": list(self.crash_texts),
        }
