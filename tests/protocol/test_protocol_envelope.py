"""Envelope wire form, validation of untrusted input, and reply helpers."""

from typing import Any

import pytest
from kernsim.protocol import (
    MAX_ERROR_TEXT_CHARS,
    MAX_MSG_ID,
    MAX_NAME_CHARS,
    MAX_TYPE_CHARS,
    Envelope,
    InvalidArgument,
    MalformedFrame,
    MalformedMessage,
    UnknownMessageType,
    error_from_reply,
    reply_error,
    reply_for_exception,
    reply_ok,
    salvage_request,
)

REQ = Envelope("cpu0", "mm", 7, None, "swap_duplicate", {"entry": 3})


def wire(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"s": "cpu0", "d": "mm", "i": 7, "t": "ping", "b": {}}
    for key, value in changes.items():
        if value is ...:
            del obj[key]
        else:
            obj[key] = value
    return obj


def test_request_round_trip_and_short_keys() -> None:
    obj = REQ.to_wire()
    assert obj == {"s": "cpu0", "d": "mm", "i": 7, "t": "swap_duplicate", "b": {"entry": 3}}
    assert Envelope.from_wire(obj) == REQ


def test_reply_round_trip_keeps_in_reply_to() -> None:
    rep = reply_ok(REQ, {"ret": 0}, msg_id=9)
    assert rep.to_wire()["r"] == 7
    assert Envelope.from_wire(rep.to_wire()) == rep
    assert rep.is_reply and not REQ.is_reply


def test_nil_in_reply_to_reads_as_request() -> None:
    assert Envelope.from_wire(wire(r=None)).in_reply_to is None


def test_envelope_is_frozen() -> None:
    with pytest.raises(AttributeError):
        REQ.msg_id = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ([1, 2], "must be a map"),
        (None, "must be a map"),
        (wire(s=...), "missing key(s) ['s']"),
        (wire(b=..., t=...), "missing key(s) ['b', 't']"),
        (wire(x=1), "unknown key(s) 'x'"),
        (wire(s=1), "src must be a string"),
        (wire(s=b"cpu0"), "src must be a string"),
        (wire(d=""), "dest must not be empty"),
        (wire(d="m" * (MAX_NAME_CHARS + 1)), "dest is 65 chars long"),
        (wire(t="t" * (MAX_TYPE_CHARS + 1)), "type is 65 chars long"),
        (wire(t=None), "type must be a string"),
        (wire(i=-1), "msg_id -1 is outside"),
        (wire(i=MAX_MSG_ID + 1), "outside"),
        (wire(i=True), "msg_id must be an integer, got bool"),
        (wire(i=1.0), "msg_id must be an integer, got float"),
        (wire(r="7"), "in_reply_to must be an integer"),
        (wire(r=-3), "in_reply_to -3 is outside"),
        (wire(b=[]), "body must be a map, got list"),
        (wire(b={b"k": 1}), "body keys must be strings, got bytes"),
    ],
)
def test_from_wire_rejects_with_a_clear_text(obj: object, needle: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        Envelope.from_wire(obj)
    assert needle in info.value.text
    assert info.value.code == 12


def test_limits_are_inclusive() -> None:
    env = Envelope.from_wire(wire(s="s" * MAX_NAME_CHARS, i=MAX_MSG_ID, t="t" * MAX_TYPE_CHARS))
    assert env.msg_id == MAX_MSG_ID


def test_reply_ok_swaps_addresses_and_suffixes_type() -> None:
    rep = reply_ok(REQ, {"ret": 1})
    assert (rep.src, rep.dest, rep.in_reply_to, rep.type) == ("mm", "cpu0", 7, "swap_duplicate_ok")
    assert rep.body == {"ret": 1}


def test_reply_error_body_and_definiteness() -> None:
    rep = reply_error(REQ, 13, "boom", msg_id=2)
    assert rep.type == "error" and rep.in_reply_to == 7 and rep.dest == "cpu0"
    assert rep.body == {"code": 13, "text": "boom", "definite": False}
    assert reply_error(REQ, 10, "x").body["definite"] is True


def test_reply_error_truncates_long_text() -> None:
    rep = reply_error(REQ, 12, "x" * (MAX_ERROR_TEXT_CHARS * 2))
    assert len(rep.body["text"]) == MAX_ERROR_TEXT_CHARS


def test_exception_survives_error_reply_round_trip() -> None:
    rep = reply_for_exception(REQ, InvalidArgument("bad entry", errno=22))
    assert rep.body["errno"] == 22
    exc = error_from_reply(Envelope.from_wire(rep.to_wire()))
    assert isinstance(exc, InvalidArgument)
    assert (exc.text, exc.errno, exc.definite) == ("bad entry", 22, True)


def test_error_from_reply_maps_code_to_class() -> None:
    exc = error_from_reply(reply_for_exception(REQ, UnknownMessageType("nope")))
    assert type(exc) is UnknownMessageType


def test_salvage_request_addresses_an_error_reply() -> None:
    bad = wire(b="not a map", i=41)
    with pytest.raises(MalformedMessage):
        Envelope.from_wire(bad)
    req = salvage_request(bad)
    assert req is not None
    rep = reply_error(req, 12, "body must be a map")
    assert (rep.dest, rep.in_reply_to) == ("cpu0", 41)


@pytest.mark.parametrize("obj", [None, [1], wire(i=-1), wire(s=7), wire(d=...), wire(r=3, b=1)])
def test_salvage_request_gives_up_on_unaddressable_or_replies(obj: object) -> None:
    assert salvage_request(obj) is None


def test_salvage_request_replaces_unreadable_type() -> None:
    req = salvage_request(wire(t=5))
    assert req is not None and req.type == "unknown"


def test_malformed_frame_is_not_a_malformed_message() -> None:
    with pytest.raises(MalformedMessage):
        Envelope.from_wire(1)
    assert not isinstance(MalformedMessage(""), MalformedFrame)
