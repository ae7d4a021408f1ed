"""The protocol's error table and its exception hierarchy.

An `error` reply carries a numeric code from the table below. Each code says
whether the failure is *definite* (the receiver certainly did not perform the
operation, so the caller may retry it or report it as not done) or
*indefinite* (the operation may or may not have happened). The split follows
Maelstrom's error table: a checker that treats an indefinite failure as
"did not happen" would report false anomalies, and a kernel-model primitive
that half-ran is exactly the kind of state we are hunting.

Codes 0-19 are protocol and transport failures, 20 and up are failures of
the operation itself. Unknown codes are treated as indefinite: a caller that
cannot interpret a failure must not assume the operation did not happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType

__all__ = [
    "ERROR_TABLE",
    "ErrorCode",
    "ErrorInfo",
    "FrameTooLarge",
    "HandshakeRefused",
    "InternalError",
    "InvalidArgument",
    "MalformedFrame",
    "MalformedMessage",
    "NodeNotFound",
    "ProtocolError",
    "RequestTimeout",
    "TemporarilyUnavailable",
    "UnknownMessageType",
    "error_from_code",
    "is_definite",
]


class ErrorCode(IntEnum):
    """Numeric error codes carried in the `code` field of an `error` reply."""

    TIMEOUT = 0
    NODE_NOT_FOUND = 1
    NOT_SUPPORTED = 10
    TEMPORARILY_UNAVAILABLE = 11
    MALFORMED_REQUEST = 12
    CRASH = 13
    FRAME_TOO_LARGE = 14
    HANDSHAKE_REFUSED = 15
    INVALID_ARGUMENT = 20


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One row of the error table."""

    code: int
    name: str
    definite: bool
    doc: str


def _table(*rows: ErrorInfo) -> Mapping[int, ErrorInfo]:
    return MappingProxyType({row.code: row for row in rows})


ERROR_TABLE: Mapping[int, ErrorInfo] = _table(
    ErrorInfo(0, "timeout", False, "No reply in time; the request may still be applied."),
    ErrorInfo(1, "node_not_found", True, "The destination service is unknown to the receiver."),
    ErrorInfo(10, "not_supported", True, "The message type is not known to the receiver."),
    ErrorInfo(11, "temporarily_unavailable", True, "Refused for now (paused, shutting down)."),
    ErrorInfo(12, "malformed_request", True, "The envelope or the body does not fit its schema."),
    ErrorInfo(13, "crash", False, "The handler failed midway; its effects are unknown."),
    ErrorInfo(14, "frame_too_large", True, "A frame exceeded the receiver's size limit."),
    ErrorInfo(15, "handshake_refused", True, "Wrong protocol version, bad token or no hello."),
    ErrorInfo(20, "invalid_argument", True, "The operation refused its arguments (see errno)."),
)


def is_definite(code: int) -> bool:
    """Whether `code` guarantees the operation did not happen (unknown codes: no)."""
    info = ERROR_TABLE.get(code)
    return info.definite if info is not None else False


class ProtocolError(Exception):
    """Base of every failure the protocol reports; `code` is its row in the table.

    Subclasses fix `code`. A bare `ProtocolError` is what `error_from_code`
    returns for a code this version does not know, so that a newer peer's
    error still reaches the caller with its number intact.
    """

    code: int = ErrorCode.CRASH

    def __init__(self, text: str = "", *, code: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        if code is not None:
            self.code = int(code)

    @property
    def definite(self) -> bool:
        return is_definite(self.code)

    @property
    def name(self) -> str:
        info = ERROR_TABLE.get(self.code)
        return info.name if info is not None else f"unknown_{self.code}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, text={self.text!r})"


class RequestTimeout(ProtocolError):
    code = ErrorCode.TIMEOUT


class NodeNotFound(ProtocolError):
    code = ErrorCode.NODE_NOT_FOUND


class UnknownMessageType(ProtocolError):
    code = ErrorCode.NOT_SUPPORTED


class TemporarilyUnavailable(ProtocolError):
    code = ErrorCode.TEMPORARILY_UNAVAILABLE


class MalformedMessage(ProtocolError):
    """A frame decoded to an object, but not to a valid envelope or body.

    The stream is still in sync, so the receiver can answer with an error.
    """

    code = ErrorCode.MALFORMED_REQUEST


class MalformedFrame(ProtocolError):
    """A frame's payload is not exactly one acceptable msgpack object.

    Not a subclass of MalformedMessage on purpose: the two share a code but
    call for different actions (this one ends the connection).
    """

    code = ErrorCode.MALFORMED_REQUEST


class InternalError(ProtocolError):
    code = ErrorCode.CRASH


class FrameTooLarge(ProtocolError):
    code = ErrorCode.FRAME_TOO_LARGE


class HandshakeRefused(ProtocolError):
    code = ErrorCode.HANDSHAKE_REFUSED


class InvalidArgument(ProtocolError):
    """The operation refused its arguments; `errno` is the kernel-style reason."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, text: str = "", *, errno: int | None = None) -> None:
        super().__init__(text)
        self.errno = errno

    def __repr__(self) -> str:
        return f"InvalidArgument(text={self.text!r}, errno={self.errno})"


_CLASS_BY_CODE: Mapping[int, type[ProtocolError]] = MappingProxyType(
    {
        cls.code: cls
        for cls in (
            RequestTimeout,
            NodeNotFound,
            UnknownMessageType,
            TemporarilyUnavailable,
            MalformedMessage,
            InternalError,
            FrameTooLarge,
            HandshakeRefused,
            InvalidArgument,
        )
    }
)


def error_from_code(code: int, text: str, *, errno: int | None = None) -> ProtocolError:
    """Build the exception for an error reply's code (a bare ProtocolError if unknown)."""
    cls = _CLASS_BY_CODE.get(code)
    if cls is None:
        return ProtocolError(text, code=code)
    if cls is InvalidArgument:
        return InvalidArgument(text, errno=errno)
    return cls(text)
