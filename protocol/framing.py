"""Length-prefixed msgpack frames, sans-IO.

Theory of operation: a frame is a 4-byte big-endian unsigned payload length
followed by exactly that many bytes holding one msgpack object. The length
counts the payload only, not the header. `encode_frame` builds one frame;
`FrameDecoder.feed` takes whatever bytes the transport delivered, in any
split, and returns the objects of every frame completed so far.

A byte stream has no frame markers other than the length headers, so once a
header or a payload is bad nothing after it can be trusted: the decoder is
*poisoned* by its first error and every later `feed` raises again. The caller
must close the connection. Oversized lengths are rejected as soon as the
header arrives, so a peer cannot make us buffer a payload we would refuse.

Payloads must not contain msgpack extension types. msgpack's C unpacker
decodes the timestamp extension (type -1) itself without calling `ext_hook`,
so those are caught by a cheap byte scan plus, only when the scan hits, a
walk of the decoded object.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, Final

# msgpack ships no type hints; the few calls used here are typed at the call site.
import msgpack  # type: ignore[import-untyped]

from .errors import FrameTooLarge, MalformedFrame, ProtocolError

__all__ = [
    "HEADER_BYTES",
    "MAX_FRAME_BYTES",
    "DecoderStatistics",
    "FrameDecoder",
    "encode_frame",
]

HEADER_BYTES: Final = 4
MAX_FRAME_BYTES: Final = 1 << 20

_HEADER = struct.Struct(">I")
# Byte patterns that can start a timestamp extension (type byte 0xff after an
# ext marker of data length 4, 8 or 12); see the module docstring.
_TIMESTAMP_SHAPE = re.compile(
    rb"[\xd6\xd7]\xff|\xc7[\x04\x08\x0c]\xff|\xc8\x00[\x04\x08\x0c]\xff"
    rb"|\xc9\x00\x00\x00[\x04\x08\x0c]\xff"
)


def encode_frame(obj: Any, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Pack `obj` into one frame; raise FrameTooLarge if its payload exceeds the limit.

    Objects msgpack cannot pack raise msgpack's own TypeError: that is a bug
    in the sender, not a protocol failure to report to a peer.
    """
    # msgpack >= 1.0 defaults: bin type for bytes, no datetime conversion.
    payload: bytes = msgpack.packb(obj)
    if len(payload) > max_frame_bytes:
        raise FrameTooLarge(f"frame payload of {len(payload)} bytes, limit {max_frame_bytes}")
    return _HEADER.pack(len(payload)) + payload


@dataclass(frozen=True, slots=True)
class DecoderStatistics:
    """Counters of one FrameDecoder, for metrics and debugging."""

    frames_decoded: int
    bytes_received: int
    errors: int
    buffered_bytes: int
    max_frame_bytes: int


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


def _contains_timestamp(objects: list[Any]) -> bool:
    # Iterative: payloads may nest as deep as msgpack allows (about 1024),
    # deeper than Python's default recursion limit.
    stack = list(objects)
    while stack:
        item = stack.pop()
        if isinstance(item, msgpack.Timestamp):
            return True
        if type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def _check_no_timestamp(stream: bytes | bytearray, stop: int, objects: list[Any]) -> None:
    """Reject timestamps, which msgpack decodes without calling ext_hook.

    The byte pattern may also match inside strings or across frame headers;
    it only decides whether the exact (and slower) walk of the objects runs.
    """
    if _TIMESTAMP_SHAPE.search(stream, 0, stop) and _contains_timestamp(objects):
        raise MalformedFrame("msgpack extension type -1 (timestamp) is not accepted")


class FrameDecoder:
    """Incremental decoder for a stream of frames.

    `max_frame_bytes` bounds the payload length a header may declare (the
    header itself is not counted).
    """

    __slots__ = (
        "_buffer",
        "_bytes_received",
        "_error",
        "_errors",
        "_frames_decoded",
        "_max_frame_bytes",
    )

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if not 1 <= max_frame_bytes <= 0xFFFFFFFF:
            raise ValueError(f"max_frame_bytes must be in 1..2**32-1, got {max_frame_bytes}")
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._error: ProtocolError | None = None
        self._errors = 0
        self._frames_decoded = 0
        self._bytes_received = 0

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a complete frame (for back-pressure)."""
        return len(self._buffer)

    @property
    def poisoned(self) -> bool:
        """True once a bad frame was seen; the connection must then be closed."""
        return self._error is not None

    def statistics(self) -> DecoderStatistics:
        return DecoderStatistics(
            frames_decoded=self._frames_decoded,
            bytes_received=self._bytes_received,
            errors=self._errors,
            buffered_bytes=len(self._buffer),
            max_frame_bytes=self._max_frame_bytes,
        )

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Take more stream bytes; return the objects of all frames now complete.

        Raises FrameTooLarge or MalformedFrame on a bad frame, and again on
        every later call: frames completed before the bad one in the same
        call are lost with the connection, which must be closed anyway.
        """
        if self._error is not None:
            raise type(self._error)(f"decoder already failed: {self._error.text}")
        self._bytes_received += len(data)
        buffer = self._buffer
        if buffer or type(data) is memoryview:
            buffer += data
            stream: bytes | bytearray = buffer
        else:
            # Fast path: most reads end on a frame boundary, so decode straight
            # from the caller's bytes and buffer only a trailing partial frame.
            stream = data
        objects: list[Any] = []
        try:
            consumed = self._decode_frames(stream, objects)
        except ProtocolError as exc:
            self._error = exc
            self._errors += 1
            raise
        if stream is buffer:
            del buffer[:consumed]
        elif consumed < len(stream):
            buffer += stream[consumed:]
        self._frames_decoded += len(objects)
        return objects

    def _decode_frames(self, stream: bytes | bytearray, objects: list[Any]) -> int:
        """Append the object of each complete frame in `stream`; return bytes used.

        The hot path: one loop with no helper calls per frame, and the
        timestamp scan done once over all the frames of this call.
        """
        end = len(stream)
        pos = 0
        limit = self._max_frame_bytes
        unpackb = msgpack.unpackb
        while end - pos >= HEADER_BYTES:
            (length,) = _HEADER.unpack_from(stream, pos)
            if length > limit:
                raise FrameTooLarge(f"frame header declares {length} bytes, limit {limit}")
            start = pos + HEADER_BYTES
            if start + length > end:
                break
            pos = start + length
            try:
                # unpackb bounds every str/bin/array/map length by the payload's
                # own size (its max_*_len default), which the frame limit caps;
                # passing the limits explicitly would only cost time per frame.
                obj = unpackb(
                    stream[start:pos], raw=False, strict_map_key=True, ext_hook=_reject_ext
                )
            except ValueError as exc:
                # msgpack reports every malformation as a ValueError (FormatError,
                # StackError, ExtraData, UnicodeDecodeError, short input, ...).
                raise MalformedFrame(f"bad msgpack payload: {exc!r}") from exc
            objects.append(obj)
        if objects and stream.find(0xFF, 0, pos) >= 0:
            _check_no_timestamp(stream, pos, objects)
        return pos
