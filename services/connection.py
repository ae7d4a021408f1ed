"""One TCP connection to a peer, as an asyncio Protocol: frames in, frames out, calls.

Theory of operation
-------------------
Bytes arrive in ``data_received`` and go straight through the frame decoder
to the node's dispatcher: no StreamReader, no reader task, no await per
frame.  Frames written while a batch of input is being handled leave in one
``transport.write`` at the end of the batch; frames written elsewhere leave
one loop turn later, together with whatever else that turn wrote.

Calls in flight live in ``pending`` (msg_id -> future, deadline, type).  There
is no timer per call: the node sweeps every connection's deadlines a few
times a second (``Node._sweep``), so a timeout fires up to ``SWEEP_S`` late.

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
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections import deque
from typing import TYPE_CHECKING, Any

from kernsim.protocol import (
    ERROR_TYPE,
    Envelope,
    FrameDecoder,
    ProtocolError,
    RequestTimeout,
    error_from_reply,
)

if TYPE_CHECKING:
    from kernsim.services.runtime import Node

log = logging.getLogger("kernsim.services")

# Pending: msg_id -> (future of the reply's wire map, deadline on the loop clock, type).
Pending = tuple["asyncio.Future[dict[str, Any]]", float, str]

MAX_IN_FLIGHT = 1024
MAX_HANDLERS = 4096
WRITE_HIGH_BYTES = 1 << 20
#: Poll events that say the peer is gone (POLLRDHUP, Linux: it shut its side down
#: even with unread data before the FIN; POLLHUP/POLLERR: a reset or both sides shut).
_GONE = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR


class Connection(asyncio.Protocol):
    """One TCP connection to a peer."""

    def __init__(
        self, node: Node, peer: str, *, greeted: bool = False, accepted: bool = False
    ) -> None:
        self.node = node
        self.peer = peer
        self.link = (node.name, peer)
        self.greeted = greeted
        self.pending: dict[int, Pending] = {}
        self.decoder = FrameDecoder(node.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.max_in_flight = node.max_in_flight
        self._closed = False
        self._buf: list[bytes] = []
        self._batch = False
        self._flush_armed = False
        self._write_paused = False
        self._read_paused = False
        #: Decoded frames waiting for handler room (the rest of a read past the cap).
        self._held: deque[Any] = deque()
        self._room: deque[asyncio.Future[None]] = deque()
        self.opened: asyncio.Future[None] = node.loop.create_future()
        #: Accepted from a peer (bounded by the node's Guard), not opened by this node.
        self.accepted = accepted
        self._refused = False
        now = node.loop.time()
        self.opened_at = now
        self.last_frame_at = now
        #: When the frame now in the decoder's buffer began arriving (None: no partial frame).
        self.partial_since: float | None = None

    def set_peer(self, peer: str) -> None:
        self.peer = peer
        self.link = (self.node.name, peer)

    @property
    def closed(self) -> bool:
        return self._closed

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_BYTES)
        if self._refused:
            transport.abort()
            return
        if not self.opened.done():
            self.opened.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            objects = self.decoder.feed(data)
        except ProtocolError as exc:
            # PROTOCOL.md 5: nothing after a bad frame can be placed; close.
            self.node.stats["frame_errors"] += 1
            self.node.note_bad(f"bad frame from {self.peer}, closing: {exc.text}")
            self.close()
            return
        now = self.node.loop.time()
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
        cap = self.node.max_handlers
        self._batch = True
        try:
            on_object = self.node.on_object
            while held and not self._closed and len(self.tasks) < cap:
                on_object(self, held.popleft())
        finally:
            self._batch = False
            self._flush()
        if self.accepted and not self.greeted and not self._closed:
            limit = self.node.guard.limits.prehello_max_bytes
            if self.decoder.buffered_bytes > limit:
                self.node.note_bad(f"{limit} bytes buffered before a hello; closing")
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
            len(self.pending) == 1
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
            self.node.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_armed = False
        buf = self._buf
        if buf and not self._closed and self.transport is not None:
            self._buf = []
            self.transport.write(b"".join(buf) if len(buf) > 1 else buf[0])

    # --- flow control ----------------------------------------------------------------

    def handler_started(self, task: asyncio.Task[Any]) -> None:
        """Count a handler task of this connection; past ``max_handlers``, stop reading."""
        self.tasks.add(task)
        task.add_done_callback(self._handler_done)
        if len(self.tasks) >= self.node.max_handlers:
            self._update_reading()

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
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
        pause = self._write_paused or bool(self._held) or len(self.tasks) >= self.node.max_handlers
        if pause and not self._read_paused:
            self._read_paused = True
            self.node.stats["read_pauses"] += 1
            transport.pause_reading()
            self.node.guard.watch_paused(self)
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
            and not self.pending
            and not self.tasks
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
        return len(self.pending) < self.max_in_flight and not self._write_paused

    async def wait_room(self) -> None:
        """Wait until a call may be sent: fewer than max_in_flight pending, peer reading."""
        loop = self.node.loop
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
        free = 0 if self._write_paused else self.max_in_flight - len(self.pending)
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
        if self._room or len(self.pending) >= self.max_in_flight or self._write_paused:
            await self.wait_room()
        node = self.node
        node._msg_id += 1
        msg_id = node._msg_id
        loop = node.loop
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        due = loop.time() + (node.rpc_timeout_s if timeout_s is None else timeout_s)
        self.pending[msg_id] = (fut, due, type_)
        node.arm_sweep()
        try:
            wire = {"s": node.name, "d": self.peer, "i": msg_id, "t": type_, "b": body}
            node.send_wire(self, wire, type_)
            reply = await fut
        finally:
            self.pending.pop(msg_id, None)
            if self._room:
                self._wake_room()
        if reply["t"] == ERROR_TYPE:
            raise error_from_reply(Envelope.from_wire(reply))
        result: dict[str, Any] = reply["b"]
        return result

    def expire(self, now: float) -> int:
        """Fail every call whose deadline has passed; return how many."""
        expired = [k for k, (_f, due, _t) in self.pending.items() if due <= now]
        for msg_id in expired:
            fut, _due, type_ = self.pending.pop(msg_id)
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
        for fut, _due, _type in self.pending.values():
            if not fut.done():
                # Indefinite: the peer may have applied the request before the link went.
                fut.set_exception(RequestTimeout(f"connection to {self.peer} lost"))
        self.pending.clear()
        self._held.clear()
        self._buf = []
        # Its handlers can no longer answer anyone: a parked primitive is dropped
        # (the owner skips cancelled waiters), as a request from a vanished CPU would be.
        for task in list(self.tasks):
            task.cancel()
        self._wake_room()
        self.node.connection_closed(self)
