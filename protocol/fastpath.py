"""Prevalidated checks for the messages a node knows, compiled once per registry.

The strict path (``Envelope.from_wire`` then ``Registry.validate_*``) builds a
frozen dataclass and walks generic checks for every message; at tens of
thousands of calls per second that is most of a call's cost.  The checks here
answer one question cheaply: "is this decoded frame certainly valid?".  They
accept only objects the strict path accepts too; anything they do not accept
goes to the strict path, which then rejects it with the precise error or
accepts it (an optional field, say).  So validation is cheaper, never looser.

That promise is checked, not just stated:
``tests/protocol/test_protocol_fastpath.py`` generates valid, mutated and
random frames for every registered type and asserts that whatever these
checks accept, the strict path accepts too, as the very same envelope.  Both
validators live in this package and read the same `MessageSchema`s.
"""

from __future__ import annotations

from typing import Any

from .envelope import (
    KEY_BODY,
    KEY_DEST,
    KEY_IN_REPLY_TO,
    KEY_MSG_ID,
    KEY_SRC,
    KEY_TYPE,
    MAX_MSG_ID,
    Envelope,
    header_ok,
)
from .messages import Field, Kind, Registry

__all__ = ["FastPath"]

# A compiled body: (number of fields, ((name, kind code), ...)).
_INT, _STR, _BOOL, _FLOAT, _LIST_INT, _MAP = range(6)
_CODES = {
    Kind.INT: _INT,
    Kind.STR: _STR,
    Kind.BOOL: _BOOL,
    Kind.FLOAT: _FLOAT,
    Kind.LIST_INT: _LIST_INT,
    Kind.MAP: _MAP,
}
BodyCheck = tuple[int, tuple[tuple[str, int], ...]]


def _compile(fields: tuple[Field, ...]) -> BodyCheck | None:
    # Optional fields may be absent or nil: rare, so the strict path handles them.
    if any(f.optional for f in fields):
        return None
    return len(fields), tuple((f.name, _CODES[f.kind]) for f in fields)


def body_ok(body: dict[str, Any], check: BodyCheck) -> bool:
    """True when ``body`` has exactly the compiled fields, each of its exact kind.

    Equal counts plus every name present means no unknown (or non-string) key.
    """
    count, fields = check
    if len(body) != count:
        return False
    for name, code in fields:
        value = body.get(name)
        tp = type(value)
        if code == _INT:
            if tp is not int:
                return False
        elif code == _BOOL:
            if tp is not bool:
                return False
        elif code == _STR:
            if tp is not str:
                return False
        elif code == _FLOAT:
            if tp is not float and tp is not int:
                return False
        elif code == _LIST_INT:
            if tp is not list or not all(type(x) is int for x in value):  # type: ignore[union-attr]
                return False
        elif tp is not dict or not all(type(k) is str for k in value):  # type: ignore[union-attr]
            return False
    return True


def envelope_ok(obj: dict[str, Any], size: int) -> bool:
    """True when ``obj`` (a dict) is a valid envelope with exactly ``size`` keys.

    Requests have 5 keys (no ``r``), replies 6; a nil ``r`` and every other
    shape take the strict path.
    """
    if len(obj) != size:
        return False
    src, dest, type_ = obj.get(KEY_SRC), obj.get(KEY_DEST), obj.get(KEY_TYPE)
    msg_id = obj.get(KEY_MSG_ID)
    return header_ok(src, dest, type_, msg_id) and type(obj.get(KEY_BODY)) is dict


class FastPath:
    """Compiled request and reply checks of one registry's message types."""

    __slots__ = ("replies", "requests")

    def __init__(self, registry: Registry) -> None:
        self.requests: dict[str, BodyCheck] = {}
        self.replies: dict[str, BodyCheck] = {}
        for schema in registry:
            req = _compile(schema.fields)
            if req is not None:
                self.requests[schema.type] = req
            rep = _compile(schema.reply_fields)
            if rep is not None:
                self.replies[schema.reply_type] = rep

    def request(self, obj: dict[Any, Any], dest: str) -> Envelope | None:
        """The envelope of a valid request to ``dest`` of a registered type, or None.

        None means "not certainly valid": the strict path decides.
        """
        if obj.get(KEY_DEST) != dest or not envelope_ok(obj, 5):
            return None
        type_ = obj[KEY_TYPE]
        check = self.requests.get(type_)
        if check is None or not body_ok(obj[KEY_BODY], check):
            return None
        return Envelope(obj[KEY_SRC], dest, obj[KEY_MSG_ID], None, type_, obj[KEY_BODY])

    def reply(self, obj: dict[Any, Any]) -> tuple[int, dict[str, Any]] | None:
        """``(in_reply_to, body)`` of a valid ``_ok`` reply of a registered type, or None.

        ``error`` replies, and every reply these checks are not sure of, take the strict path.
        """
        reply_to = obj.get(KEY_IN_REPLY_TO)
        if type(reply_to) is not int or not 0 <= reply_to <= MAX_MSG_ID:
            return None
        if not envelope_ok(obj, 6):
            return None
        check = self.replies.get(obj[KEY_TYPE])
        body = obj[KEY_BODY]
        if check is None or not body_ok(body, check):
            return None
        return reply_to, body
