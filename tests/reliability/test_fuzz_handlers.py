"""Property-based fuzzing of every service's handlers over real TCP (hypothesis).

Each example sends one hostile input to one service: a random or mutated
envelope, a body of wrong kinds, an unknown type, a reply to nothing (or a
duplicate or late one), random bytes, a truncated frame, a huge declared
length.  Then it checks the contract of PROTOCOL.md section 5:

- a frame that decodes to an invalid request gets an ``error`` reply (when
  the sender can be named) and the connection stays up;
- a bad frame closes the connection;
- replies are never answered;
- the service answers a ping afterwards, and its bookkeeping stays bounded.

``KERNSIM_FUZZ_EXAMPLES`` sets the number of examples (CI: 300).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernsim.protocol import (
    MAX_FRAME_BYTES,
    Envelope,
    FrameDecoder,
    Kind,
    ProtocolError,
    encode_frame,
    salvage_request,
)
from kernsim.services.catalog import registry
from kernsim.services.launch.cluster import HOST
from kernsim.services.runtime import MAX_LINKS
from kernsim.services.runtime.config import SERVICES

from kernsim.model.port import CODE_PATHS
from tests.support.inprocess import InProcessCluster

EXAMPLES = int(os.environ.get("KERNSIM_FUZZ_EXAMPLES", "300"))
REGISTRY = registry()
TYPES = sorted(s.type for s in REGISTRY)
# Types that start real work; fuzzing them with valid bodies would turn the
# test into a load test (or, for start_workload, a ten-minute one).
SLOW = {"start_workload", "run_path"}
PING_ID = 2**62

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
names = st.one_of(st.sampled_from(["tasks", "mm", "x"]), st.text(max_size=70), values)
ids = st.one_of(st.integers(0, 2**20), st.integers(-(2**63), 2**64 - 1), values)


@st.composite
def schema_body(draw: st.DrawFn, type_: str) -> dict[str, Any]:
    """A body with the schema's field names, each value of a random (often wrong) kind."""
    schema = REGISTRY.schema(type_)
    body = {f.name: draw(values) for f in schema.fields if draw(st.booleans()) or not f.optional}
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(max_size=8))] = draw(values)
    return body


edge_ints = st.one_of(
    st.integers(-2, 70000), st.sampled_from([-(2**63), 2**63 - 1, 2**32, -1]), st.integers()
).filter(lambda v: -(2**63) <= v < 2**64)
BY_KIND: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.INT: edge_ints,
    Kind.STR: st.one_of(st.sampled_from([*sorted(CODE_PATHS), "read", "write", "/A"]), st.text()),
    Kind.BOOL: st.booleans(),
    Kind.FLOAT: st.one_of(st.floats(), st.sampled_from([0.0, 1e300])),
    Kind.LIST_INT: st.lists(edge_ints, max_size=4),
    Kind.MAP: st.dictionaries(st.text(max_size=8), values, max_size=3),
}


@st.composite
def typed_body(draw: st.DrawFn, type_: str) -> dict[str, Any]:
    """A body that passes validation: hostile values of the right kinds reach the handler."""
    schema = REGISTRY.schema(type_)
    return {f.name: draw(BY_KIND[f.kind]) for f in schema.fields if not f.optional}


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """A map shaped like an envelope, each part valid or not."""
    type_ = draw(st.one_of(st.sampled_from(TYPES), st.sampled_from(["error", "ping_ok"]), names))
    if isinstance(type_, str) and type_ in TYPES and type_ not in SLOW:
        body: Any = draw(st.one_of(schema_body(type_), typed_body(type_)))
    else:
        body = draw(st.one_of(st.dictionaries(st.text(max_size=8), values, max_size=4), values))
    env: dict[Any, Any] = {
        "s": draw(names),
        "d": draw(names),
        "i": draw(ids),
        "t": type_,
        "b": body,
    }
    if draw(st.booleans()):
        env["r"] = draw(st.one_of(ids, st.just(PING_ID)))  # a reply: to nothing, or a duplicate
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()) and env:
            env.pop(draw(st.sampled_from(sorted(env, key=repr))))
        else:
            env[draw(st.one_of(st.text(max_size=3), st.integers()))] = draw(values)
    if isinstance(env.get("t"), str) and env["t"] in SLOW:
        env["t"] = env["t"] + "_x"
    return env


@st.composite
def typed_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request of a registered type with hostile values: the handlers' own checks."""
    type_ = draw(st.sampled_from([t for t in TYPES if t not in SLOW]))
    msg_id = draw(st.integers(1, 2**40))
    return {"s": "fuzz", "d": "x", "i": msg_id, "t": type_, "b": draw(typed_body(type_))}


def _frame(obj: Any) -> bytes:
    try:
        return encode_frame(obj)
    except (TypeError, ValueError, OverflowError, ProtocolError):
        return encode_frame({"unpackable": True})


inputs = st.one_of(
    st.tuples(st.just("object"), typed_requests()),
    st.tuples(st.just("object"), st.one_of(envelopes(), values)),
    st.tuples(st.just("bytes"), st.binary(max_size=200)),
    st.tuples(st.just("truncated"), envelopes()),
    st.tuples(st.just("huge"), st.integers(MAX_FRAME_BYTES + 1, 2**32 - 1)),
)


class Client:
    def __init__(self, cluster: InProcessCluster, service: str) -> None:
        self.cluster, self.service = cluster, service
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.decoder = FrameDecoder()

    async def open(self) -> None:
        port = self.cluster.ports[self.service][0]
        self.reader, self.writer = await asyncio.open_connection(HOST, port)
        self.decoder = FrameDecoder()
        hello = {"service": "fuzz", "version": 1}
        self.writer.write(
            encode_frame({"s": "fuzz", "d": self.service, "i": 0, "t": "hello", "b": hello})
        )
        replies, closed = await self.read_until(0)
        assert not closed and replies[-1]["t"] == "hello_ok"

    async def read_until(self, reply_to: int) -> tuple[list[Any], bool]:
        """Frames until the reply to ``reply_to``; (frames, closed before it came)."""
        assert self.reader is not None
        got: list[Any] = []
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            if not data:
                return got, True
            got.extend(self.decoder.feed(data))
            if any(type(m) is dict and m.get("r") == reply_to for m in got):
                return got, False

    async def exchange(self, kind: str, payload: Any) -> tuple[list[Any], bool]:
        if self.writer is None or self.writer.is_closing():
            await self.open()
        assert self.writer is not None
        if kind == "object":
            data = _frame(payload)
        elif kind == "bytes":
            data = struct.pack(">I", len(payload)) + payload
        elif kind == "truncated":
            whole = _frame(payload)
            data = whole[: max(1, len(whole) // 2)]
        else:
            data = struct.pack(">I", payload)
        self.writer.write(data)
        if kind == "truncated":  # the rest never comes: the peer hangs up mid-frame
            self.writer.close()
            return [], True
        ping = {"s": "fuzz", "d": self.service, "i": PING_ID, "t": "ping", "b": {}}
        self.writer.write(encode_frame(ping))
        got, closed = await self.read_until(PING_ID)
        if closed:
            self.writer.close()
        return got, closed


def _decodes(obj: Any) -> bool:
    try:
        FrameDecoder().feed(_frame(obj))
    except ProtocolError:
        return False
    return True


def _expected_error(obj: Any) -> bool:
    """Does PROTOCOL.md 5 promise an ``error`` reply to this decoded object?"""
    try:
        env = Envelope.from_wire(obj)
    except ProtocolError:
        return salvage_request(obj) is not None
    if env.in_reply_to is not None:
        return False
    try:
        REGISTRY.validate_request(env)
    except ProtocolError:
        return True
    return False


TALLY: dict[str, int] = {}


def _tally(kind: str, got: list[Any], closed: bool) -> None:
    TALLY["cases"] = TALLY.get("cases", 0) + 1
    TALLY[f"cases_{kind}"] = TALLY.get(f"cases_{kind}", 0) + 1
    outcome = "closed" if closed else "answered"
    for m in got:
        if type(m) is dict and m.get("r") != PING_ID and m.get("t") == "error":
            outcome = f"error_{m['b']['code']}"
    TALLY[outcome] = TALLY.get(outcome, 0) + 1


@pytest.fixture(scope="module")
def cluster(inprocess_cluster: InProcessCluster) -> InProcessCluster:
    return inprocess_cluster


@pytest.fixture(scope="module")
def clients(cluster: InProcessCluster) -> dict[str, Client]:
    return {name: Client(cluster, name) for name in SERVICES}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(service=st.sampled_from(SERVICES), case=inputs)
def test_bad_input_never_stops_a_service(
    cluster: InProcessCluster, clients: dict[str, Client], service: str, case: tuple[str, Any]
) -> None:
    kind, payload = case
    if kind == "object" and _decodes(payload):
        payload = FrameDecoder().feed(_frame(payload))[0]  # what the service really sees
    got, closed = cluster.run(clients[service].exchange(kind, payload))
    _tally(kind, got, closed)
    if kind == "object" and not _decodes(payload):
        assert closed  # a non-string map key, say: a bad frame (PROTOCOL.md 5)
    elif kind == "object":
        # A whole frame that decodes never closes the connection ...
        assert not closed, f"closed after {payload!r}"
        if _expected_error(payload):
            # ... and an invalid request is answered with an error to its msg_id.
            assert any(m.get("t") == "error" and m.get("r") == payload["i"] for m in got), got
        # Replies are never answered: nothing comes back to a message that had "r".
        if type(payload) is dict and payload.get("r") is not None:
            assert not any(m.get("r") == payload.get("i") and m.get("r") != PING_ID for m in got)
    elif kind == "huge":
        assert closed


def test_every_service_still_serves_with_bounded_bookkeeping(
    cluster: InProcessCluster, clients: dict[str, Client]
) -> None:
    for name in SERVICES:
        got, closed = cluster.run(clients[name].exchange("object", {"s": "fuzz"}))
        assert not closed and got[-1]["t"] == "ping_ok"
        node = cluster.services[name].node
        assert len(node.sent) <= MAX_LINKS + 1
        assert len(node.live) <= 16
        assert node.statistics()["handler_tasks"] <= 64
        assert node.statistics()["in_flight"] <= 64
    crashes = {n: s.node.stats["crashes"] for n, s in cluster.services.items()}
    if report := os.environ.get("KERNSIM_FUZZ_REPORT"):
        doc = {"tally": TALLY, "handler_exceptions_replied_as_crash": crashes}
        doc["crash_texts"] = {n: s.node.crash_texts for n, s in cluster.services.items()}
        Path(report).write_text(json.dumps(doc, indent=2) + "\n")
