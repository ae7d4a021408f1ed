"""The envelope every message travels in, and its wire form.

On the wire an envelope is a msgpack map with one-letter keys (`WIRE_KEYS`):
they are part of the contract in PROTOCOL.md and must never be renamed
without a protocol version bump. `Envelope.from_wire` trusts nothing: it is
the first code to touch bytes a peer chose, so every field is type- and
range-checked and every failure is a `MalformedMessage` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from .errors import ErrorCode, MalformedMessage, ProtocolError, error_from_code, is_definite

__all__ = [
    "ERROR_TYPE",
    "KEY_BODY",
    "KEY_DEST",
    "KEY_IN_REPLY_TO",
    "KEY_MSG_ID",
    "KEY_SRC",
    "KEY_TYPE",
    "MAX_ERROR_TEXT_CHARS",
    "MAX_MSG_ID",
    "MAX_NAME_CHARS",
    "MAX_TYPE_CHARS",
    "OK_SUFFIX",
    "WIRE_KEYS",
    "Envelope",
    "error_from_reply",
    "reply_error",
    "reply_for_exception",
    "reply_ok",
    "salvage_request",
]

# Limits keep a hostile or buggy peer from making us hold or log huge names.
MAX_NAME_CHARS = 64
MAX_TYPE_CHARS = 64
MAX_ERROR_TEXT_CHARS = 1024
# Signed 64-bit, so that peers in languages without unsigned ints can hold it.
MAX_MSG_ID = 2**63 - 1

OK_SUFFIX = "_ok"
ERROR_TYPE = "error"

# The one-letter wire keys of PROTOCOL.md section 2, spelt here and nowhere else:
# the runtime builds and reads wire maps through these names (and wire.py).
KEY_SRC: Final = "s"
KEY_DEST: Final = "d"
KEY_MSG_ID: Final = "i"
KEY_IN_REPLY_TO: Final = "r"
KEY_TYPE: Final = "t"
KEY_BODY: Final = "b"

WIRE_KEYS: Mapping[str, str] = {
    "src": KEY_SRC,
    "dest": KEY_DEST,
    "msg_id": KEY_MSG_ID,
    "in_reply_to": KEY_IN_REPLY_TO,
    "type": KEY_TYPE,
    "body": KEY_BODY,
}
_REQUIRED_KEYS = frozenset({KEY_SRC, KEY_DEST, KEY_MSG_ID, KEY_TYPE, KEY_BODY})
_ALLOWED_KEYS = _REQUIRED_KEYS | {KEY_IN_REPLY_TO}


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message: who sends it, to whom, its id, what it answers, its type and body.

    `body` is a plain dict for cheap construction from the wire; treat it as
    read-only once the envelope is built.
    """

    src: str
    dest: str
    msg_id: int
    in_reply_to: int | None
    type: str
    body: dict[str, Any]

    @property
    def is_reply(self) -> bool:
        return self.in_reply_to is not None

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map; `r` is left out of requests to save bytes."""
        wire: dict[str, Any] = {
            KEY_SRC: self.src,
            KEY_DEST: self.dest,
            KEY_MSG_ID: self.msg_id,
            KEY_TYPE: self.type,
            KEY_BODY: self.body,
        }
        if self.in_reply_to is not None:
            wire[KEY_IN_REPLY_TO] = self.in_reply_to
        return wire

    @classmethod
    def from_wire(cls, obj: object) -> Envelope:
        """Validate a decoded frame and build the envelope, or raise MalformedMessage."""
        if type(obj) is not dict or obj.keys() not in _KEY_SETS:
            _raise_bad_shape(obj)
        src, dest, msg_id = obj[KEY_SRC], obj[KEY_DEST], obj[KEY_MSG_ID]
        type_, body, reply_to = obj[KEY_TYPE], obj[KEY_BODY], obj.get(KEY_IN_REPLY_TO)
        # One combined test for the valid case, which is the hot path; the
        # per-field helpers run only to find what is wrong and say so.
        # `type() is` on purpose: bool is an int subclass, and True is no id.
        if not (
            header_ok(src, dest, type_, msg_id)
            and (reply_to is None or (type(reply_to) is int and 0 <= reply_to <= MAX_MSG_ID))
            and type(body) is dict
        ):
            _raise_bad_field(obj)
        for key in body:
            # The decoder's strict_map_key still lets bin keys through.
            if type(key) is not str:
                raise MalformedMessage(f"body keys must be strings, got {_kind(key)}")
        return cls(src, dest, msg_id, reply_to, type_, body)


_KEY_SETS = (_REQUIRED_KEYS, _ALLOWED_KEYS)


def header_ok(src: object, dest: object, type_: object, msg_id: object) -> bool:
    """The envelope's header fields are valid: names of 1..64 characters, a msg_id in
    0..2**63-1.  The one test the strict path (Envelope.from_wire) and the fast path
    (protocol/fastpath.py) share, so neither can be looser than the other."""
    return (
        type(src) is str
        and 0 < len(src) <= MAX_NAME_CHARS
        and type(dest) is str
        and 0 < len(dest) <= MAX_NAME_CHARS
        and type(type_) is str
        and 0 < len(type_) <= MAX_TYPE_CHARS
        and type(msg_id) is int
        and 0 <= msg_id <= MAX_MSG_ID
    )


def _raise_bad_shape(obj: object) -> NoReturn:
    if type(obj) is not dict:
        raise MalformedMessage(f"envelope must be a map, got {_kind(obj)}")
    missing = sorted(_REQUIRED_KEYS - obj.keys())
    if missing:
        raise MalformedMessage(f"envelope is missing key(s) {missing}")
    extra = sorted(repr(k) for k in obj.keys() - _ALLOWED_KEYS)
    raise MalformedMessage(f"envelope has unknown key(s) {', '.join(extra)}")


def _raise_bad_field(obj: dict[str, Any]) -> NoReturn:
    _name(obj[KEY_SRC], "src", MAX_NAME_CHARS)
    _name(obj[KEY_DEST], "dest", MAX_NAME_CHARS)
    _msg_id(obj[KEY_MSG_ID], "msg_id")
    if obj.get(KEY_IN_REPLY_TO) is not None:
        _msg_id(obj[KEY_IN_REPLY_TO], "in_reply_to")
    _name(obj[KEY_TYPE], "type", MAX_TYPE_CHARS)
    raise MalformedMessage(f"body must be a map, got {_kind(obj[KEY_BODY])}")


def _kind(value: object) -> str:
    """Name a wire value's type for an error text, without echoing the value."""
    return type(value).__name__


def _name(value: object, field: str, limit: int) -> str:
    if type(value) is not str:
        raise MalformedMessage(f"{field} must be a string, got {_kind(value)}")
    if not value:
        raise MalformedMessage(f"{field} must not be empty")
    if len(value) > limit:
        raise MalformedMessage(f"{field} is {len(value)} chars long, limit {limit}")
    return value


def _msg_id(value: object, field: str) -> int:
    if type(value) is not int:
        raise MalformedMessage(f"{field} must be an integer, got {_kind(value)}")
    if not 0 <= value <= MAX_MSG_ID:
        raise MalformedMessage(f"{field} {value} is outside 0..{MAX_MSG_ID}")
    return value


def reply_ok(req: Envelope, body: dict[str, Any], *, msg_id: int = 0) -> Envelope:
    """The success reply to `req`: type `<type>_ok`, addressed back to its sender.

    Replies are matched by `in_reply_to` alone, so their own `msg_id` only
    serves traces: pass the sender's next id when it numbers replies too.
    """
    return Envelope(
        src=req.dest,
        dest=req.src,
        msg_id=msg_id,
        in_reply_to=req.msg_id,
        type=req.type + OK_SUFFIX,
        body=body,
    )


def reply_error(
    req: Envelope, code: int, text: str, *, msg_id: int = 0, errno: int | None = None
) -> Envelope:
    """The `error` reply to `req`; `definite` is taken from the error table."""
    body: dict[str, Any] = {
        "code": int(code),
        "text": text[:MAX_ERROR_TEXT_CHARS],
        "definite": is_definite(code),
    }
    if errno is not None:
        body["errno"] = errno
    return Envelope(
        src=req.dest,
        dest=req.src,
        msg_id=msg_id,
        in_reply_to=req.msg_id,
        type=ERROR_TYPE,
        body=body,
    )


def reply_for_exception(req: Envelope, exc: ProtocolError, *, msg_id: int = 0) -> Envelope:
    """The `error` reply that reports `exc` back to the sender of `req`."""
    errno = getattr(exc, "errno", None)
    return reply_error(req, exc.code, exc.text, msg_id=msg_id, errno=errno)


def error_from_reply(reply: Envelope) -> ProtocolError:
    """Turn a validated `error` reply back into the exception it reports."""
    body = reply.body
    code = body.get("code", ErrorCode.CRASH)
    return error_from_code(code, str(body.get("text", "")), errno=body.get("errno"))


def salvage_request(obj: object) -> Envelope | None:
    """After from_wire failed: the request to address an error reply to, if any.

    Returns None when the sender or msg_id cannot be read (the receiver can
    only close and log) and when the message claims to be a reply, because
    answering a bad reply with an error could start an endless exchange.
    """
    if type(obj) is not dict or obj.get(KEY_IN_REPLY_TO) is not None:
        return None
    try:
        src = _name(obj.get(KEY_SRC), "src", MAX_NAME_CHARS)
        dest = _name(obj.get(KEY_DEST), "dest", MAX_NAME_CHARS)
        msg_id = _msg_id(obj.get(KEY_MSG_ID), "msg_id")
    except MalformedMessage:
        return None
    kind = obj.get(KEY_TYPE)
    if not (isinstance(kind, str) and 0 < len(kind) <= MAX_TYPE_CHARS):
        kind = "unknown"
    return Envelope(src, dest, msg_id, None, kind, {})
