"""The hot-path builders of wire.py frame the same bytes as the Envelope they stand for."""

from kernsim.protocol import (
    Envelope,
    FrameDecoder,
    encode_frame,
    is_reply_wire,
    ok_reply_wire,
    reply_ok,
    request_wire,
)

REQ = Envelope("tasks", "mm", 7, None, "swap_free", {"entry": 3})


def test_a_request_map_frames_as_the_protocol_md_example() -> None:
    frame = encode_frame(request_wire("cpu0", "mm", 1, "ping", {}))
    assert frame.hex(" ") == (
        "00 00 00 1a 85 a1 73 a4 63 70 75 30 a1 64 a2 6d 6d a1 69 01 a1 74 a4 70 69 6e 67 a1 62 80"
    )


def test_a_request_map_is_the_envelopes_wire_form_key_for_key_in_order() -> None:
    wire = request_wire(REQ.src, REQ.dest, REQ.msg_id, REQ.type, REQ.body)
    assert list(wire.items()) == list(REQ.to_wire().items())
    assert encode_frame(wire) == encode_frame(REQ.to_wire())


def test_an_ok_reply_map_is_reply_ok_with_in_reply_to_before_type() -> None:
    wire = ok_reply_wire(REQ, {"r0": 1, "r1": 0})
    assert Envelope.from_wire(wire) == reply_ok(REQ, {"r0": 1, "r1": 0})
    # The byte order replies have always had on the wire: s, d, i, r, t, b.
    assert list(wire) == ["s", "d", "i", "r", "t", "b"]
    frame = encode_frame(wire)
    assert Envelope.from_wire(FrameDecoder().feed(frame)[0]) == reply_ok(REQ, wire["b"])


def test_a_map_is_a_reply_when_it_carries_in_reply_to() -> None:
    assert is_reply_wire(ok_reply_wire(REQ, {}))
    assert not is_reply_wire(request_wire("a", "b", 1, "ping", {}))
