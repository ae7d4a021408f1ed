"""One TCP connection to a peer, as an asyncio Protocol: frames in, frames out, calls.

Theory of operation
-------------------
Bytes arrive in ``data_received`` and go straight through the frame decoder
to the host's dispatcher: no StreamReader, no reader task, no await per
frame.  Frames written while a batch of input is being handled leave in one
``transport.write`` at the end of the batch; frames written elsewhere leave
one loop turn later, together with whatever else that turn wrote.

Calls in flight belong to the connection's ``RpcSession`` (session.py: msg_id
allocation, the pending map, deadlines), which knows no event loop; this
class only ties its waiters to asyncio futures.  There is no timer per call:
the node sweeps every connection's deadlines a few times a second
(``expire``), so a timeout fires up to ``SWEEP_S`` late.

Back-pressure, so that memory is bounded by configuration, not by peers:

- at most ``max_in_flight`` calls are pending per connection; the next caller
  waits for room (``wait_room``) instead of queueing without bound;
- when the transport's write buffer passes its high-water mark (a peer that
  does not read), callers wait too, and reading from that peer is paused,
  so a peer that floods requests without reading replies is throttled by
  TCP itself;
- at most ``max_handlers`` handler tasks per connection run at once (parked
  primitives, code paths run to completion).  The cap holds frame by frame:
  when it is reached in the middle of a read, the rest of that read's
  frames wait (decoded, in ``_held``, at most one read's worth) and reading
  pauses; each handler that finishes lets the next held frame in;
- the decoder buffers at most one frame (``MAX_FRAME_BYTES``) plus one read.

While reading is paused asyncio does not look at the socket, so a peer that
hangs up then would never be noticed.  The node checks its paused
connections a few times a second (``peer_gone``: the socket reports a hang-up
or a reset) and closes those whose peer is gone.  Closing frees everything a
connection owns: its handler tasks are cancelled, its pending calls failed,
its held frames and unsent output dropped.

A connection knows its node only as a ``Host`` (host.py): the few calls it
makes on it, and the ``ConnectionSettings`` it was given.  It never imports
the node, and the node reads it only through its public methods.
"""

from __future__ import annotations

import asyncio
import select
from collections import deque
from typing import Any, cast

from kernsim.protocol import FrameDecoder, ProtocolError, RequestTimeout, request_wire
from kernsim.services.runtime.host import MAX_HANDLERS, MAX_IN_FLIGHT, ConnectionSettings, Host
from kernsim.services.runtime.session import RpcSession

__all__ = ["MAX_HANDLERS", "MAX_IN_FLIGHT", "Connection", "ConnectionSettings", "Host"]

WRITE_HIGH_BYTES = 1 << 20
#: Poll events that say the peer is gone (POLLRDHUP, Linux: it shut its side down
#: even with unread data before the FIN; POLLHUP/POLLERR: a reset or both sides shut).
_GONE = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR


class Connection(asyncio.Protocol):
    """One TCP connection to a peer."""

    def __init__(
        self,
        host: Host,
        settings: ConnectionSettings,
        peer: str,
        *,
        greeted: bool = False,
        accepted: bool = False,
    ) -> None:
        self._host = host
        self._loop = asyncio.get_running_loop()
        self.settings = settings
        self.peer = peer
        self.link = (host.name, peer)
        self.greeted = greeted
        self.session: RpcSession[asyncio.Future[dict[str, Any]]] = RpcSession(
            timeout_s=settings.rpc_timeout_s, max_in_flight=settings.max_in_flight
        )
        self.decoder = FrameDecoder(settings.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._max_handlers = settings.max_handlers
        self._closed = False
        self._buf: list[bytes] = []
        self._batch = False
        self._flush_armed = False
        self._write_paused = False
        self._read_paused = False
        #: Decoded frames waiting for handler room (the rest of a read past the cap).
        self._held: deque[Any] = deque()
        self._room: deque[asyncio.Future[None]] = deque()
        self.opened: asyncio.Future[None] = self._loop.create_future()
        #: Accepted from a peer (bounded by the node's Guard), not opened by this node.
        self.accepted = accepted
        self._refused = False
        now = self._loop.time()
        self.opened_at = now
        self.last_frame_at = now
        #: When the frame now in the decoder's buffer began arriving (None: no partial frame).
        self.partial_since: float | None = None

    def greet(self, peer: str) -> None:
        """The peer's hello was accepted: it is ``peer`` from now on."""
        self.greeted = True
        self.peer = peer
        self.link = (self._host.name, peer)

    @property
    def in_flight(self) -> int:
        """Calls sent on this connection and not yet answered."""
        return self.session.in_flight

    @property
    def handler_count(self) -> int:
        """Handler tasks of this connection's requests still running."""
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport: asyncio's, or uvloop's (the same methods, no common base class).
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_BYTES)
        if self._refused:
            self.transport.abort()
            return
        if not self.opened.done():
            self.opened.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            objects = self.decoder.feed(data)
        except ProtocolError as exc:
            # PROTOCOL.md 5: nothing after a bad frame can be placed; close.
            self._host.count("frame_errors")
            self._host.note_bad(f"bad frame from {self.peer}, closing: {exc.text}")
            self.close()
            return
        now = self._loop.time()
        if objects:
            self.last_frame_at = now
        if not self.decoder.buffered_bytes:
            self.partial_since = None
        elif objects or self.partial_since is None:
            self.partial_since = now  # a new frame began in this read
        if self._held:
            self._held.extend(objects)  # behind the frames already waiting, in order
        else:
            self._held = deque(objects)
        self._dispatch_held()

    def _dispatch_held(self) -> None:
        """Hand waiting frames to the node while this connection has handler room."""
        held = self._held
        cap = self._max_handlers
        tasks = self._tasks
        self._batch = True
        try:
            on_object = self._host.on_object
            while held and not self._closed and len(tasks) < cap:
                on_object(self, held.popleft())
        finally:
            self._batch = False
            self._flush()
        if self.accepted and not self.greeted and not self._closed:
            limit = self.settings.prehello_max_bytes
            if self.decoder.buffered_bytes > limit:
                self._host.note_bad(f"{limit} bytes buffered before a hello; closing")
                self.close()
                return
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:
        # The peer is not reading: stop reading its requests, and hold our callers.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        self._wake_room()

    # --- writing ---------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        if self._closed:
            return
        if (
            self.session.in_flight == 1
            and not self._batch
            and not self._flush_armed
            and self.transport is not None
        ):
            # A lone call (the caller waits on nothing else here): waiting a loop
            # turn to coalesce would only add latency.
            self.transport.write(frame)
            return
        self._buf.append(frame)
        if not self._batch and not self._flush_armed:
            self._flush_armed = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_armed = False
        buf = self._buf
        if buf and not self._closed and self.transport is not None:
            self._buf = []
            self.transport.write(b"".join(buf) if len(buf) > 1 else buf[0])

    # --- flow control ----------------------------------------------------------------

    def handler_started(self, task: asyncio.Task[Any]) -> None:
        """Count a handler task of this connection; past ``max_handlers``, stop reading."""
        self._tasks.add(task)
        task.add_done_callback(self._handler_done)
        if len(self._tasks) >= self._max_handlers:
            self._update_reading()

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._closed:
            return
        if self._held:
            self._dispatch_held()
        elif self._read_paused:
            self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self._closed:
            return
        pause = self._write_paused or bool(self._held) or len(self._tasks) >= self._max_handlers
        if pause and not self._read_paused:
            self._read_paused = True
            self._host.count("read_pauses")
            transport.pause_reading()
            self._host.watch_paused(self)
        elif not pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()

    def remote_host(self) -> str | None:
        """The peer's IP address as a string, when the transport knows it."""
        addr = None if self.transport is None else self.transport.get_extra_info("peername")
        return str(addr[0]) if isinstance(addr, tuple) and addr else None

    def refuse(self) -> None:
        """Close this connection as soon as it is made (the service is full)."""
        self._refused = True
        self._closed = True

    def idle(self) -> bool:
        """Greeted, with nothing in flight, running or waiting on this connection."""
        return (
            self.greeted
            and not self.session.in_flight
            and not self._tasks
            and not self._held
            and self.partial_since is None
        )

    @property
    def read_paused(self) -> bool:
        return self._read_paused

    def peer_gone(self) -> bool:
        """Has the peer hung up or reset?  Asked only while reading is paused."""
        transport = self.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is None:
            return self._closed
        poller = select.poll()
        try:
            poller.register(sock.fileno(), _GONE)
            return any(ev & _GONE for _fd, ev in poller.poll(0))
        except (OSError, ValueError):  # closed underneath us
            return True

    def has_room(self) -> bool:
        return self.session.room() > 0 and not self._write_paused

    async def wait_room(self) -> None:
        """Wait until a call may be sent: fewer than max_in_flight pending, peer reading."""
        loop = self._loop
        while not self.has_room():
            if self._closed:
                raise RequestTimeout(f"connection to {self.peer} is closed")
            fut: asyncio.Future[None] = loop.create_future()
            self._room.append(fut)
            try:
                await fut
            finally:
                if not fut.done():
                    fut.cancel()

    def _wake_room(self) -> None:
        room = self._room
        if self._closed:
            while room:
                fut = room.popleft()
                if not fut.done():
                    fut.set_result(None)  # wait_room then raises: the connection is gone
            return
        free = 0 if self._write_paused else self.session.room()
        while room and free > 0:
            fut = room.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    # --- calls -------------------------------------------------------------------------

    async def call(
        self, type_: str, body: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a request and wait for its reply body; an ``error`` reply is raised."""
        if self._closed:
            raise RequestTimeout(f"connection to {self.peer} is closed")
        session = self.session
        if self._room or not session.room() or self._write_paused:
            await self.wait_room()
        loop = self._loop
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        msg_id = session.start(type_, fut, loop.time(), timeout_s)
        host = self._host
        host.call_started()
        try:
            host.send(self, request_wire(host.name, self.peer, msg_id, type_, body), type_)
            return await fut
        finally:
            session.finish(msg_id)
            if self._room:
                self._wake_room()

    def resolve(self, in_reply_to: int, body: dict[str, Any]) -> bool:
        """An ``_ok`` reply's body for the call it answers; False when no call waits for it."""
        fut = self.session.match(in_reply_to)
        if fut is None or fut.done():
            return False
        fut.set_result(body)
        return True

    def reject(self, in_reply_to: int, exc: ProtocolError) -> bool:
        """Fail the call a reply answers (an ``error`` reply, or a bad one); False if none waits."""
        fut = self.session.match(in_reply_to)
        if fut is None or fut.done():
            return False
        fut.set_exception(exc)
        return True

    def expire(self, now: float) -> int:
        """Fail every call whose deadline has passed; return how many."""
        expired = self.session.expire(now)
        for fut, type_ in expired:
            if not fut.done():
                fut.set_exception(RequestTimeout(f"{type_} to {self.peer}: no reply in time"))
        if expired and self._room:
            self._wake_room()
        return len(expired)

    def close(self) -> None:
        if self._closed:
            return
        self._flush()
        self._closed = True
        if self.transport is not None:
            self.transport.close()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection to {self.peer} lost"))
            self.opened.exception()
        for fut in self.session.fail_all():
            if not fut.done():
                # Indefinite: the peer may have applied the request before the link went.
                fut.set_exception(RequestTimeout(f"connection to {self.peer} lost"))
        self._held.clear()
        self._buf = []
        # Its handlers can no longer answer anyone: a parked primitive is dropped
        # (the owner skips cancelled waiters), as a request from a vanished CPU would be.
        for task in list(self._tasks):
            task.cancel()
        self._wake_room()
        self._host.connection_closed(self)
