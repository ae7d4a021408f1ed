"""What a node does with one decoded frame: validate, dispatch, reply.

Theory of operation
-------------------
A frame is a request, a reply, or garbage.  Registered messages whose
envelope and body pass the compiled checks of ``kernsim.protocol.FastPath``
skip the generic validation; everything else takes the strict path
(``Envelope.from_wire`` plus the ``Registry``), which accepts or rejects
exactly as PROTOCOL.md section 5 says.  The fast path never accepts what the
strict one rejects (tests/protocol/test_protocol_fastpath.py).

- A reply resolves the call it answers on its connection (``in_reply_to``
  alone); a reply to no pending call is counted and dropped, and a bad reply
  fails its call: a reply is never answered.
- The first request on an accepted connection must be ``hello``.
- A request is handed to the handler for its type.  A handler returns the
  reply body, or an awaitable of it (a parked ``lock_page``, a code path run
  to completion), which runs as a task of the connection.
- ``Dispatcher.reply_exception`` is the only place where a handler's
  exception becomes an ``error`` reply.

Nothing here touches a socket, a clock or a wire key: frames leave through
the ``send`` callable the node gives, and replies are built by
``kernsim.protocol``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from kernsim.protocol import (
    ERROR_TYPE,
    KEY_IN_REPLY_TO,
    Envelope,
    FastPath,
    FrameTooLarge,
    InternalError,
    MalformedMessage,
    NodeNotFound,
    ProtocolError,
    Registry,
    UnknownMessageType,
    Wire,
    accept_hello,
    error_from_reply,
    ok_reply_wire,
    reply_for_exception,
    salvage_request,
)
from kernsim.services.runtime.connection import Connection
from kernsim.services.runtime.plumbing import RateLimitedLog

__all__ = ["Body", "Dispatcher", "Handler"]

Body = dict[str, Any]
Handler = Callable[[Envelope], "Body | Awaitable[Body]"]
#: Crash texts kept for statistics (the log has them all, rate-limited).
MAX_CRASH_TEXTS = 20


class Dispatcher:
    """The handler table of one node, and the validation in front of it."""

    def __init__(
        self,
        name: str,
        registry: Registry,
        *,
        token: str | None,
        send: Callable[[Connection, Wire, str], None],
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        claim: Callable[[Connection, Envelope], None],
        stats: dict[str, int],
        bad_log: RateLimitedLog,
    ) -> None:
        self.name = name
        self.registry = registry
        self.fast = FastPath(registry)
        self.handlers: dict[str, Handler] = {}
        self.token = token
        self.stats = stats
        self.crash_texts: list[str] = []
        self._send = send
        self._spawn = spawn
        self._claim = claim
        self._bad_log = bad_log

    def note_bad(self, text: str) -> None:
        """A log line for bad input, rate-limited (see RateLimitedLog)."""
        self._bad_log.warning(text)

    # --- receiving -------------------------------------------------------------------

    def on_object(self, conn: Connection, obj: Any) -> None:
        """One decoded frame: the fast path for valid registered messages, else the strict one."""
        self.stats["received"] += 1
        if type(obj) is dict:
            if KEY_IN_REPLY_TO in obj:
                reply = self.fast.reply(obj)
                if reply is not None:
                    self._resolve(conn, reply[0], reply[1])
                    return
            elif conn.greeted:
                env = self.fast.request(obj, self.name)
                if env is not None:
                    self.dispatch(conn, env)
                    return
        self._on_object_strict(conn, obj)

    def _on_object_strict(self, conn: Connection, obj: Any) -> None:
        try:
            env = Envelope.from_wire(obj)
        except MalformedMessage as exc:
            self.stats["malformed"] += 1
            req = salvage_request(obj)
            if req is not None:
                self.reply_exception(conn, req, exc)
            else:
                self.note_bad(f"dropped a malformed message from {conn.peer}: {exc.text}")
            return
        if env.in_reply_to is not None:
            self._on_strict_reply(conn, env, env.in_reply_to)
        elif not conn.greeted:
            self._on_hello(conn, env)
        else:
            try:
                self.registry.validate_request(env)
                if env.dest != self.name:
                    raise NodeNotFound(f"this is {self.name}, not {env.dest!r}")
            except ProtocolError as exc:
                self.reply_exception(conn, env, exc)
                return
            self.dispatch(conn, env)

    def _resolve(self, conn: Connection, in_reply_to: int, body: Body) -> None:
        if not conn.resolve(in_reply_to, body):
            self._drop_reply(conn, in_reply_to)

    def _drop_reply(self, conn: Connection, in_reply_to: int) -> None:
        # Late (timed out), duplicate, or answering nothing: never answer a reply.
        self.stats["dropped_replies"] += 1
        self.note_bad(f"dropped a reply from {conn.peer} to no pending call ({in_reply_to})")

    def _on_strict_reply(self, conn: Connection, env: Envelope, in_reply_to: int) -> None:
        try:
            self.registry.validate_reply(env)
        except ProtocolError as exc:
            # Never answer a reply: fail the call instead, so the caller learns.
            conn.reject(in_reply_to, exc)
            self.stats["dropped_replies"] += 1
            self.note_bad(f"bad reply from {conn.peer}: {exc.text}")
            return
        if env.type == ERROR_TYPE:
            if not conn.reject(in_reply_to, error_from_reply(env)):
                self._drop_reply(conn, in_reply_to)
        else:
            self._resolve(conn, in_reply_to, env.body)

    def _on_hello(self, conn: Connection, env: Envelope) -> None:
        try:
            self.registry.validate_request(env)
            reply = accept_hello(env, service=self.name, token=self.token)
            self._claim(conn, env)
        except ProtocolError as exc:
            self.note_bad(f"refused a connection: {exc.text}")
            self.reply_exception(conn, env, exc)
            conn.close()
            return
        conn.greet(env.src)
        self._send(conn, reply.to_wire(), "hello")

    # --- handling and replying -------------------------------------------------------

    def dispatch(self, conn: Connection, env: Envelope) -> None:
        """Run the handler of a validated request and reply (now, or when it finishes)."""
        handler = self.handlers.get(env.type)
        try:
            if handler is None:
                raise UnknownMessageType(f"{self.name} does not serve {env.type!r}")
            result = handler(env)
        except Exception as exc:
            self.reply_exception(conn, env, exc)
            return
        if type(result) is not dict and inspect.isawaitable(result):
            conn.handler_started(self._spawn(self._finish(conn, env, result)))
        else:
            self._reply_ok(conn, env, result)

    async def _finish(self, conn: Connection, env: Envelope, pending: Awaitable[Body]) -> None:
        try:
            body = await pending
        except Exception as exc:
            self.reply_exception(conn, env, exc)
            return
        self._reply_ok(conn, env, body)

    def _reply_ok(self, conn: Connection, req: Envelope, body: Body) -> None:
        try:
            self._send(conn, ok_reply_wire(req, body), req.type)
        except (FrameTooLarge, TypeError, ValueError, OverflowError) as exc:
            # A reply that cannot be framed still owes the caller an answer.
            self.reply_exception(conn, req, exc)

    def reply_exception(self, conn: Connection, req: Envelope, exc: Exception) -> None:
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
            if len(self.crash_texts) < MAX_CRASH_TEXTS:
                self.crash_texts.append(text)
            # Rate-limited too: a peer can trigger the same crash a million times.
            self._bad_log.error(f"handler crashed: {text}", exc)
            err = InternalError(text)
        self.stats["errors_replied"] += 1
        self._send(conn, reply_for_exception(req, err).to_wire(), req.type)
