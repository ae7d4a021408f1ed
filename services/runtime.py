"""The runtime: the one place that touches sockets.

Theory of operation
-------------------
A ``Node`` is one service's endpoint.  It serves TCP on asyncio streams and
connects to its peers; both directions are a ``Connection`` carrying
length-prefixed msgpack frames (``kernsim.protocol``).  The connecting side
sends ``hello`` first.  Any number of calls may be in flight on one
connection: each request gets a fresh ``msg_id`` and a future in
``Connection.pending``, and a reply is matched by its ``in_reply_to`` alone,
never by order, because the fault layer reorders on purpose.

A request is validated against the registry, then handed to the handler for
its type.  A handler returns the reply body, or an awaitable of it (a parked
``lock_page``, a code path run to completion).  ``Node._reply_exception`` is
the only place where a handler's exception becomes an ``error`` reply.

Every frame leaves through ``Node.send``: kernel traffic passes the fault
layer (which may delay, reorder or hold it), control traffic goes straight
out.  Bad input follows PROTOCOL.md section 5: a bad frame poisons the
decoder and closes the connection; a bad envelope or body gets an ``error``
reply and the connection stays up.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kernsim.protocol import (
    ERROR_TYPE,
    MAX_FRAME_BYTES,
    Envelope,
    FrameDecoder,
    InternalError,
    MalformedMessage,
    ProtocolError,
    Registry,
    RequestTimeout,
    UnknownMessageType,
    accept_hello,
    check_hello_ok,
    encode_frame,
    error_from_reply,
    make_hello,
    reply_for_exception,
    reply_ok,
    salvage_request,
)
from kernsim.services.faultlayer import FaultLayer

log = logging.getLogger("kernsim.services")

Body = dict[str, Any]
Handler = Callable[[Envelope], "Body | Awaitable[Body]"]
READ_CHUNK = 1 << 16


class Connection:
    """One TCP connection to a peer: framing in, frames out, calls in flight."""

    __slots__ = ("_buf", "_closed", "greeted", "node", "peer", "pending", "reader", "writer")

    def __init__(
        self, node: Node, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        self.node = node
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.greeted = False
        self.pending: dict[int, asyncio.Future[Envelope]] = {}
        self._closed = False
        self._buf: list[bytes] = []

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, frame: bytes) -> None:
        # Frames written in one loop turn leave in one send(): with many calls in
        # flight that saves a system call per message.
        if self._closed:
            return
        if not self._buf:
            self.node.loop.call_soon(self._flush)
        self._buf.append(frame)

    def _flush_now(self) -> None:
        if self._buf and not self._closed:
            self._flush()

    def _flush(self) -> None:
        buf, self._buf = self._buf, []
        if buf and not self._closed:
            self.writer.write(b"".join(buf) if len(buf) > 1 else buf[0])

    async def call(self, type_: str, body: Body, timeout_s: float | None = None) -> Body:
        """Send a request and wait for its reply; an ``error`` reply is raised."""
        node = self.node
        if self._closed:
            raise RequestTimeout(f"connection to {self.peer} is closed")
        msg_id = node.next_msg_id()
        fut: asyncio.Future[Envelope] = node.loop.create_future()
        self.pending[msg_id] = fut
        timer = node.loop.call_later(
            node.rpc_timeout_s if timeout_s is None else timeout_s, _expire, fut, type_, self.peer
        )
        try:
            node.send(self, Envelope(node.name, self.peer, msg_id, None, type_, body), type_)
            reply = await fut
        finally:
            timer.cancel()
            self.pending.pop(msg_id, None)
        if reply.type == ERROR_TYPE:
            raise error_from_reply(reply)
        return reply.body

    def close(self) -> None:
        if self._closed:
            return
        self._flush_now()
        self._closed = True
        self.writer.close()
        for fut in self.pending.values():
            if not fut.done():
                # Indefinite: the peer may have applied the request before the link went.
                fut.set_exception(RequestTimeout(f"connection to {self.peer} lost"))
        self.pending.clear()


def _expire(fut: asyncio.Future[Envelope], type_: str, peer: str) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout(f"{type_} to {peer}: no reply in time"))


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
    ) -> None:
        self.name = name
        self.registry = registry
        self.handlers: dict[str, Handler] = {}
        self.peers = dict(peers or {})
        self.fault = fault
        self.faultable = faultable
        self.rpc_timeout_s = rpc_timeout_s
        self.token = token
        self.max_frame_bytes = max_frame_bytes
        self.loop = asyncio.get_running_loop()
        self.conns: dict[str, Connection] = {}
        self._accepted: set[Connection] = set()
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._msg_id = 0
        self._server: asyncio.Server | None = None
        self.sent: dict[tuple[str, str], int] = {}
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "received",
                "frame_errors",
                "malformed",
                "unknown_type",
                "errors_replied",
                "crashes",
                "dropped_replies",
                "connections",
            ),
            0,
        )
        self.crash_texts: list[str] = []

    def next_msg_id(self) -> int:
        self._msg_id += 1
        return self._msg_id

    # --- sending -----------------------------------------------------------------

    def send(self, conn: Connection, env: Envelope, kind: str) -> None:
        """Frame ``env`` and send it, through the fault layer when ``kind`` is kernel traffic."""
        frame = encode_frame(env.to_wire(), max_frame_bytes=self.max_frame_bytes)
        link = (env.src, env.dest)
        self.sent[link] = self.sent.get(link, 0) + 1
        if self.fault is not None and kind in self.faultable:
            self.fault.send(conn, env.src, env.dest, kind, frame)
        else:
            conn.write(frame)

    # --- serving and connecting ------------------------------------------------------

    async def serve(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); return the port bound."""
        self._server = await asyncio.start_server(self._accept, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer, "?")
        self._accepted.add(conn)
        self.stats["connections"] += 1
        try:
            await self._read_loop(conn)
        finally:
            self._accepted.discard(conn)

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
        reader, writer = await asyncio.open_connection(host, port)
        conn = Connection(self, reader, writer, peer)
        conn.greeted = True
        self.spawn(self._read_loop(conn))
        hello = make_hello(self.name, peer, msg_id=0, service=self.name, token=self.token)
        body = await conn.call("hello", hello.body)
        check_hello_ok(Envelope(peer, self.name, 0, 0, "hello_ok", body))
        return conn

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the node keeps (and cancels on close)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- receiving -----------------------------------------------------------------

    async def _read_loop(self, conn: Connection) -> None:
        decoder = FrameDecoder(self.max_frame_bytes)
        try:
            while data := await conn.reader.read(READ_CHUNK):
                try:
                    objects = decoder.feed(data)
                except ProtocolError as exc:
                    # PROTOCOL.md 5: nothing after a bad frame can be placed; close.
                    self.stats["frame_errors"] += 1
                    log.warning("bad frame from %s, closing: %s", conn.peer, exc.text)
                    return
                for obj in objects:
                    self._on_object(conn, obj)
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()

    def _on_object(self, conn: Connection, obj: Any) -> None:
        self.stats["received"] += 1
        try:
            env = Envelope.from_wire(obj)
        except MalformedMessage as exc:
            self.stats["malformed"] += 1
            req = salvage_request(obj)
            if req is not None:
                self._reply_exception(conn, req, exc)
            else:
                log.warning("dropped a malformed message from %s: %s", conn.peer, exc.text)
            return
        if env.in_reply_to is not None:
            self._on_reply(conn, env)
        elif not conn.greeted:
            self._on_hello(conn, env)
        else:
            self._dispatch(conn, env)

    def _on_reply(self, conn: Connection, env: Envelope) -> None:
        fut = conn.pending.get(env.in_reply_to)  # type: ignore[arg-type]
        try:
            self.registry.validate_reply(env)
        except ProtocolError as exc:
            # Never answer a reply: fail the call instead, so the caller learns.
            if fut is not None and not fut.done():
                fut.set_exception(exc)
            self.stats["dropped_replies"] += 1
            return
        if fut is None or fut.done():
            self.stats["dropped_replies"] += 1
            return
        fut.set_result(env)

    def _on_hello(self, conn: Connection, env: Envelope) -> None:
        try:
            self.registry.validate_request(env)
            reply = accept_hello(env, service=self.name, token=self.token)
        except ProtocolError as exc:
            self._reply_exception(conn, env, exc)
            conn.close()
            return
        conn.greeted = True
        conn.peer = env.src
        self.send(conn, reply, "hello")

    def _dispatch(self, conn: Connection, env: Envelope) -> None:
        try:
            self.registry.validate_request(env)
            handler = self.handlers.get(env.type)
            if handler is None:
                raise UnknownMessageType(f"{self.name} does not serve {env.type!r}")
            result = handler(env)
        except Exception as exc:
            self._reply_exception(conn, env, exc)
            return
        if inspect.isawaitable(result):
            self.spawn(self._finish(conn, env, result))
        else:
            self.send(conn, reply_ok(env, result), env.type)

    async def _finish(self, conn: Connection, env: Envelope, pending: Awaitable[Body]) -> None:
        try:
            body = await pending
        except Exception as exc:
            self._reply_exception(conn, env, exc)
            return
        self.send(conn, reply_ok(env, body), env.type)

    def _reply_exception(self, conn: Connection, req: Envelope, exc: Exception) -> None:
        """The one place where a handler's exception becomes an ``error`` reply."""
        if isinstance(exc, ProtocolError):
            if isinstance(exc, UnknownMessageType):
                self.stats["unknown_type"] += 1
            elif isinstance(exc, MalformedMessage):
                self.stats["malformed"] += 1
            err = exc
        else:
            self.stats["crashes"] += 1
            text = f"{req.type}: {type(exc).__name__}: {exc}"
            if len(self.crash_texts) < 20:
                self.crash_texts.append(text)
            log.error("handler crashed: %s", text, exc_info=exc)
            err = InternalError(text)
        self.stats["errors_replied"] += 1
        self.send(conn, reply_for_exception(req, err), req.type)

    # --- shutdown and introspection ----------------------------------------------------

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in [*self.conns.values(), *self._accepted]:
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def statistics(self) -> dict[str, Any]:
        return {
            **self.stats,
            "messages_sent": sum(self.sent.values()),
            "in_flight": sum(len(c.pending) for c in self.conns.values()),
            "crash_texts": list(self.crash_texts),
        }


# --- process plumbing -------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: easy to grep, easy to ship."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "level": record.levelname.lower(),
            "service": self.service,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask for a graceful stop instead of killing mid-reply."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
