"""Prevalidated checks for the messages a node knows, compiled once per registry.

The strict path (``Envelope.from_wire`` then ``Registry.validate_*``) builds a
frozen dataclass and walks generic checks for every message; at tens of
thousands of calls per second that is most of a call's cost.  The checks here
answer one question cheaply: "is this decoded frame certainly valid?".  They
accept only objects the strict path accepts too; anything they do not accept
goes to the strict path, which then rejects it with the precise error or
accepts it (an optional field, say).  So validation is cheaper, never looser.
"""

from __future__ import annotations

from typing import Any

from kernsim.protocol import MAX_MSG_ID, MAX_NAME_CHARS, MAX_TYPE_CHARS, Field, Kind, Registry

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
    src, dest, type_, msg_id = obj.get("s"), obj.get("d"), obj.get("t"), obj.get("i")
    return (
        type(src) is str
        and 0 < len(src) <= MAX_NAME_CHARS
        and type(dest) is str
        and 0 < len(dest) <= MAX_NAME_CHARS
        and type(type_) is str
        and 0 < len(type_) <= MAX_TYPE_CHARS
        and type(msg_id) is int
        and 0 <= msg_id <= MAX_MSG_ID
        and type(obj.get("b")) is dict
    )


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

    def request(self, obj: dict[str, Any]) -> bool:
        """A valid request of a registered type, body included."""
        if not envelope_ok(obj, 5):
            return False
        check = self.requests.get(obj["t"])
        return check is not None and body_ok(obj["b"], check)

    def reply(self, obj: dict[str, Any]) -> bool:
        """A valid ``_ok`` reply of a registered type (``error`` replies take the strict path)."""
        reply_to = obj.get("r")
        if type(reply_to) is not int or not 0 <= reply_to <= MAX_MSG_ID:
            return False
        if not envelope_ok(obj, 6):
            return False
        check = self.replies.get(obj["t"])
        return check is not None and body_ok(obj["b"], check)
