"""The fast path is never looser than the strict one, and gives the same replies.

``FastPath`` (protocol/fastpath.py) re-checks envelopes and bodies with
compiled per-type checks so that valid traffic skips the generic validation.
Its one promise: whatever it accepts, the strict path (``Envelope.from_wire``
plus the ``Registry``, and the receiver's name) accepts too, as the very same
envelope.  These properties check that over frames built from every
registered schema, valid and mutated field by field, plus random maps; and
that a node's dispatcher answers every frame exactly as it does with the fast
path switched off.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernsim.protocol import (
    ERROR_TYPE,
    KEY_BODY,
    KEY_DEST,
    KEY_IN_REPLY_TO,
    KEY_MSG_ID,
    KEY_SRC,
    KEY_TYPE,
    MAX_MSG_ID,
    MAX_NAME_CHARS,
    Envelope,
    FastPath,
    Field,
    Kind,
    MessageSchema,
    ProtocolError,
    Registry,
    parse_fields,
)
from kernsim.services.catalog import registry
from kernsim.services.runtime.dispatch import Dispatcher
from kernsim.services.runtime.plumbing import RateLimitedLog

#: Every kind in one schema (the catalog has no map or optional field in a request).
ALL_KINDS = MessageSchema(
    "all_kinds",
    parse_fields("a:int", "b:str", "c:bool", "d:float", "e:list_int", "f:map"),
    parse_fields("a:int", "f:map", "g:str?"),
)


def _registry() -> Registry:
    reg = registry()
    reg.register(ALL_KINDS)
    return reg


REGISTRY = _registry()
FAST = FastPath(REGISTRY)
SCHEMAS = sorted(REGISTRY, key=lambda s: s.type)
ME = "mm"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.binary(max_size=4),
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(scalars, inner, max_size=3),
    max_leaves=8,
)
VALID: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.INT: st.integers(-(2**63), 2**64 - 1),
    Kind.STR: st.text(max_size=8),
    Kind.BOOL: st.booleans(),
    Kind.FLOAT: st.floats(allow_nan=False) | st.integers(-10, 10),
    Kind.LIST_INT: st.lists(st.integers(-5, 5), max_size=3),
    Kind.MAP: st.dictionaries(st.text(max_size=4), anything, max_size=3),
}
#: Values a field of each kind must refuse (besides anything of another kind).
NEAR_MISS_VALUES: dict[Kind, list[Any]] = {
    Kind.INT: [True, False, 1.0, "1", None, [1]],
    Kind.STR: [b"x", 1, None, ["x"]],
    Kind.BOOL: [0, 1, None, "true", 1.0],
    Kind.FLOAT: [True, False, "1.0", None, [1.0]],
    Kind.LIST_INT: [[True], [1.0], [1, "2"], [None], (1,), {}, 1],
    Kind.MAP: [{1: 1}, {b"k": 1}, {"k": 1, 2: 2}, [], None, "m"],
}
NEAR_MISS = {kind: st.sampled_from(values) for kind, values in NEAR_MISS_VALUES.items()}
#: One valid value of each kind.
SAMPLES: dict[Kind, Any] = {
    Kind.INT: 3,
    Kind.STR: "s",
    Kind.BOOL: True,
    Kind.FLOAT: 0.5,
    Kind.LIST_INT: [1, 2],
    Kind.MAP: {"k": [1]},
}
names = st.one_of(
    st.sampled_from([ME, "tasks", "memcg"]),
    st.sampled_from(["", "x" * MAX_NAME_CHARS, "x" * (MAX_NAME_CHARS + 1), 7, None, b"mm"]),
    st.text(max_size=3),
)
msg_ids = st.one_of(
    st.integers(0, 5),
    st.sampled_from([MAX_MSG_ID, MAX_MSG_ID + 1, -1, True, 1.0, None, "1"]),
)


TYPES = [s.type for s in SCHEMAS] + [s.reply_type for s in SCHEMAS] + [ERROR_TYPE, "x_ok"]


def _valid_body(draw: st.DrawFn, fields: tuple[Field, ...]) -> dict[Any, Any]:
    body: dict[Any, Any] = {}
    for f in fields:
        choice = draw(st.integers(0, 2)) if f.optional else 0
        if choice == 0:
            body[f.name] = draw(VALID[f.kind])
        elif choice == 1:
            body[f.name] = None  # an optional field may be nil, or absent (choice 2)
    return body


def _mutate(draw: st.DrawFn, obj: dict[Any, Any], fields: tuple[Field, ...]) -> None:
    """One step away from valid: a bad envelope field, a bad body field, a key too many or few."""
    body = obj.get(KEY_BODY)
    what = draw(st.sampled_from(["name", "id", "type", "field", "drop", "extra", "reply", "body"]))
    if what == "name":
        obj[draw(st.sampled_from([KEY_SRC, KEY_DEST]))] = draw(names)
    elif what == "id":
        obj[draw(st.sampled_from([KEY_MSG_ID, KEY_IN_REPLY_TO]))] = draw(msg_ids)
    elif what == "type":
        obj[KEY_TYPE] = draw(st.sampled_from(TYPES) | names)
    elif what == "field" and fields and type(body) is dict:
        f = draw(st.sampled_from(fields))
        body[f.name] = draw(NEAR_MISS[f.kind] | anything)
    elif what == "drop":
        target = body if type(body) is dict and body and draw(st.booleans()) else obj
        target.pop(draw(st.sampled_from(sorted(target, key=repr))))
    elif what == "extra":
        target = body if type(body) is dict and draw(st.booleans()) else obj
        target[
            draw(st.sampled_from(["zz", "S", "x", 1, b"a", *[f.name + "x" for f in fields]]))
        ] = 0
    elif what == "reply":
        if KEY_IN_REPLY_TO in obj and draw(st.booleans()):
            del obj[KEY_IN_REPLY_TO]
        else:
            obj[KEY_IN_REPLY_TO] = draw(st.none() | msg_ids)
    elif what == "body":
        obj[KEY_BODY] = draw(anything)


@st.composite
def frames(draw: st.DrawFn) -> Any:
    """A decoded frame as a peer may send it: a valid request or reply, up to two steps off."""
    schema = draw(st.sampled_from(SCHEMAS))
    reply = draw(st.booleans())
    fields = schema.reply_fields if reply else schema.fields
    obj: dict[Any, Any] = {
        KEY_SRC: draw(st.sampled_from(["tasks", "memcg", "x" * MAX_NAME_CHARS])),
        KEY_DEST: ME,
        KEY_MSG_ID: draw(st.integers(0, MAX_MSG_ID)),
        KEY_TYPE: schema.reply_type if reply else schema.type,
        KEY_BODY: _valid_body(draw, fields),
    }
    if reply:
        obj[KEY_IN_REPLY_TO] = draw(st.integers(0, 6) | st.just(MAX_MSG_ID))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2]))):
        _mutate(draw, obj, fields)
    return obj


frames_or_garbage = st.one_of(frames(), frames(), frames(), anything)


def _judged_alike(obj: Any) -> None:
    """Whatever the fast path accepts, the strict path accepts as the same message."""
    if type(obj) is not dict:
        return  # the runtime hands only maps to the fast path
    env = FAST.request(obj, ME)
    if env is not None:
        strict = Envelope.from_wire(obj)
        REGISTRY.validate_request(strict)
        assert strict.dest == ME
        assert strict == env
    reply = FAST.reply(obj)
    if reply is not None:
        strict = Envelope.from_wire(obj)
        assert REGISTRY.validate_reply(strict) is not None  # an _ok reply, never an error
        assert strict.type != ERROR_TYPE
        assert (strict.in_reply_to, strict.body) == reply


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=frames_or_garbage)
def test_what_the_fast_path_accepts_the_strict_path_accepts_as_the_same_message(
    obj: Any,
) -> None:
    _judged_alike(obj)


#: Envelope values one step off (or just inside) the limits of PROTOCOL.md section 2.
EDGE_NAMES = ["", "x" * MAX_NAME_CHARS, "x" * (MAX_NAME_CHARS + 1), 7, None, b"mm", "memcg"]
EDGE_IDS = [0, MAX_MSG_ID, MAX_MSG_ID + 1, -1, True, False, 1.0, None, "1"]


def _valid(schema: MessageSchema, reply: bool) -> dict[Any, Any]:
    fields = schema.reply_fields if reply else schema.fields
    body = {f.name: SAMPLES[f.kind] for f in fields}
    obj: dict[Any, Any] = {KEY_SRC: "tasks", KEY_DEST: ME, KEY_MSG_ID: 4, KEY_BODY: body}
    obj[KEY_TYPE] = schema.reply_type if reply else schema.type
    if reply:
        obj[KEY_IN_REPLY_TO] = 9
    return obj


def _one_step(obj: dict[Any, Any], fields: tuple[Field, ...]) -> list[dict[Any, Any]]:
    """Every frame one change away from ``obj``: each key dropped, each edge value, each field."""
    out = []
    for key in [*obj, "x", 1]:
        if key in obj:
            out.append({k: v for k, v in obj.items() if k != key})
        values = EDGE_NAMES if key in (KEY_SRC, KEY_DEST, KEY_TYPE) else EDGE_IDS
        out += [obj | {key: v} for v in values]
    out += [obj | {KEY_TYPE: t} for t in TYPES]
    body = obj[KEY_BODY]
    for f in fields:
        wrong = [*NEAR_MISS_VALUES[f.kind], *SAMPLES.values()]
        out += [obj | {KEY_BODY: body | {f.name: v}} for v in wrong]
        out.append(obj | {KEY_BODY: {k: v for k, v in body.items() if k != f.name}})
    out += [obj | {KEY_BODY: body | {k: 0}} for k in ("zz", 1, b"a")]
    return out


def test_every_frame_one_step_from_a_valid_one_is_judged_alike() -> None:
    """Exhaustive near misses of every registered message, request and reply."""
    checked = 0
    for schema in SCHEMAS:
        for reply in (False, True):
            fields = schema.reply_fields if reply else schema.fields
            for obj in _one_step(_valid(schema, reply), fields):
                _judged_alike(obj)
                checked += 1
    assert checked > 100 * len(SCHEMAS)


def test_the_fast_path_accepts_every_valid_message_without_optional_fields() -> None:
    """Not vacuous: valid traffic of every such type really takes the fast path."""
    checked = 0
    for schema in SCHEMAS:
        for reply in (False, True):
            fields = schema.reply_fields if reply else schema.fields
            if any(f.optional for f in fields):
                continue
            obj = _valid(schema, reply)
            if reply:
                assert FAST.reply(obj) == (9, obj[KEY_BODY]), schema.type
            else:
                want = Envelope("tasks", ME, 4, None, schema.type, obj[KEY_BODY])
                assert FAST.request(obj, ME) == want, schema.type
            checked += 1
    assert checked >= len(SCHEMAS)


# --- the same replies, with and without the fast path ------------------------------------


class _StrictOnly:
    """A FastPath stand-in that is never sure: every frame takes the strict path."""

    def request(self, obj: Any, dest: str) -> None:
        return None

    def reply(self, obj: Any) -> None:
        return None


class _Conn:
    """The part of a Connection a dispatcher uses, recording what happens to it."""

    peer = "tasks"

    def __init__(self, greeted: bool) -> None:
        self.greeted = greeted
        self.pending = {0, 1, 2, 3, 4, 5}
        self.events: list[tuple[Any, ...]] = []

    def resolve(self, in_reply_to: int, body: dict[str, Any]) -> bool:
        ok = in_reply_to in self.pending
        self.pending.discard(in_reply_to)
        self.events.append(("resolve", in_reply_to, body, ok))
        return ok

    def reject(self, in_reply_to: int, exc: ProtocolError) -> bool:
        ok = in_reply_to in self.pending
        self.pending.discard(in_reply_to)
        self.events.append(("reject", in_reply_to, type(exc), exc.text, ok))
        return ok

    def greet(self, peer: str) -> None:
        self.greeted = True
        self.events.append(("greet", peer))

    def close(self) -> None:
        self.events.append(("close",))


def _answer(env: Envelope) -> dict[str, Any]:
    """A handler for every type: a reply depending on the request, or a refusal."""
    if env.msg_id == 3:
        raise ProtocolError("refused", code=20)
    if env.msg_id == 4:
        raise KeyError("crash")
    return {"echo": [env.src, env.msg_id, env.type, sorted(env.body)]}


def _dispatcher(fast: bool) -> tuple[Dispatcher, list[tuple[Any, ...]], dict[str, int]]:
    sent: list[tuple[Any, ...]] = []
    stats = dict.fromkeys(
        ["received", "malformed", "unknown_type", "errors_replied", "crashes", "dropped_replies"],
        0,
    )
    d = Dispatcher(
        ME,
        REGISTRY,
        token=None,
        send=lambda conn, wire, kind: sent.append((wire, kind)),
        spawn=lambda coro: pytest.fail("every handler here answers at once"),
        claim=lambda conn, env: None,
        stats=stats,
        bad_log=RateLimitedLog(logging.getLogger("test.fastpath"), per_s=0),
    )
    for schema in REGISTRY:
        d.handlers[schema.type] = _answer
    if not fast:
        d.fast = _StrictOnly()  # type: ignore[assignment]
    return d, sent, stats


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objs=st.lists(frames_or_garbage, min_size=1, max_size=4), greeted=st.booleans())
def test_a_node_answers_every_frame_the_same_with_or_without_the_fast_path(
    objs: list[Any], greeted: bool
) -> None:
    runs = []
    for fast in (True, False):
        dispatcher, sent, stats = _dispatcher(fast)
        conn = _Conn(greeted)
        for obj in objs:
            dispatcher.on_object(conn, obj)  # type: ignore[arg-type]
        runs.append((sent, conn.events, stats, dispatcher.crash_texts))
    assert runs[0] == runs[1]
