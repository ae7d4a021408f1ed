"""Length-prefixed msgpack frames: round trips, splits, every error path."""

import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from kernsim.protocol import (
    HEADER_BYTES,
    MAX_FRAME_BYTES,
    Envelope,
    FrameDecoder,
    FrameTooLarge,
    MalformedFrame,
    encode_frame,
)

OBJECTS: list[Any] = [
    {"s": "cpu0", "d": "mm", "i": 1, "t": "ping", "b": {}},
    {"s": "mm", "d": "cpu0", "i": 2, "r": 1, "t": "ping_ok", "b": {"x": [1, -1, 255]}},
    [],
    "é",
    0,
    {"nested": {"bytes": b"\x00\xff", "float": 1.5, "none": None, "bool": True}},
]


def raw_frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_byte_level_layout_matches_protocol_md() -> None:
    # The example printed in PROTOCOL.md, byte for byte.
    ping = Envelope("cpu0", "mm", 1, None, "ping", {})
    frame = encode_frame(ping.to_wire())
    assert frame.hex(" ") == (
        "00 00 00 1a 85 a1 73 a4 63 70 75 30 a1 64 a2 6d 6d a1 69 01 a1 74 a4 70 69 6e 67 a1 62 80"
    )
    assert Envelope.from_wire(FrameDecoder().feed(frame)[0]) == ping


def test_round_trip_of_several_frames_in_one_feed() -> None:
    stream = b"".join(encode_frame(obj) for obj in OBJECTS)
    decoder = FrameDecoder()
    assert decoder.feed(stream) == OBJECTS
    assert decoder.buffered_bytes == 0


def test_every_split_point_gives_the_same_objects() -> None:
    stream = b"".join(encode_frame(obj) for obj in OBJECTS)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert got == OBJECTS, cut
        assert decoder.buffered_bytes == 0


def test_every_two_split_points_give_the_same_objects() -> None:
    stream = b"".join(encode_frame(obj) for obj in OBJECTS[:3])
    for a in range(len(stream) + 1):
        for b in range(a, len(stream) + 1):
            decoder = FrameDecoder()
            got = decoder.feed(stream[:a]) + decoder.feed(stream[a:b]) + decoder.feed(stream[b:])
            assert got == OBJECTS[:3], (a, b)


def test_byte_at_a_time_reports_buffered_bytes() -> None:
    frame = encode_frame({"k": "v"})
    decoder = FrameDecoder()
    for n, byte in enumerate(frame[:-1], start=1):
        assert decoder.feed(bytes([byte])) == []
        assert decoder.buffered_bytes == n
    assert decoder.feed(frame[-1:]) == [{"k": "v"}]
    assert decoder.buffered_bytes == 0


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_accepts_bytearray_and_memoryview(kind: type) -> None:
    frame = encode_frame([1, 2])
    decoder = FrameDecoder()
    assert decoder.feed(kind(frame + frame[:3])) == [[1, 2]]
    assert decoder.feed(kind(frame[3:])) == [[1, 2]]


def test_statistics_count_frames_and_bytes() -> None:
    frame = encode_frame("x")
    decoder = FrameDecoder(max_frame_bytes=100)
    decoder.feed(frame * 3 + frame[:2])
    stats = decoder.statistics()
    assert (stats.frames_decoded, stats.bytes_received, stats.errors) == (3, 3 * len(frame) + 2, 0)
    assert (stats.buffered_bytes, stats.max_frame_bytes) == (2, 100)


def test_encode_refuses_oversized_payload() -> None:
    assert len(encode_frame("x" * 10, max_frame_bytes=11)) == HEADER_BYTES + 11
    with pytest.raises(FrameTooLarge) as info:
        encode_frame("x" * 10, max_frame_bytes=10)
    assert info.value.code == 14


def test_encode_default_limit_is_one_mebibyte() -> None:
    assert MAX_FRAME_BYTES == 1 << 20
    with pytest.raises(FrameTooLarge):
        encode_frame(b"\x00" * MAX_FRAME_BYTES)


def test_encode_leaves_unpackable_objects_to_msgpack() -> None:
    with pytest.raises(TypeError):
        encode_frame({"x": object()})


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    frame = encode_frame("y" * 7)  # 8-byte payload: fixstr header + 7 chars
    assert FrameDecoder(max_frame_bytes=8).feed(frame) == ["y" * 7]


def test_oversized_header_is_refused_before_the_payload_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=8)
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(struct.pack(">I", 9))
    assert "9 bytes, limit 8" in info.value.text
    assert decoder.poisoned


def test_huge_declared_length_raises_without_buffering() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\xff\xff\xff\xff" + b"\x00" * 10)
    assert decoder.statistics().errors == 1


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"", "incomplete"),
        (b"\xc1", "FormatError"),  # 0xc1 is never used by msgpack
        (b"\x92\x01", "incomplete"),  # array of 2 with one item
        (b"\x01\x02", "ExtraData"),  # two objects in one frame
        (b"\x81\x01\x02", "int is not allowed for map key"),
        (b"\x81\x90\x01", "list is not allowed for map key"),
        (b"\xa2\xff\xfe", "UnicodeDecodeError"),
        (b"\xd4\x05\x00", "extension type 5"),  # fixext1
        (b"\xc7\x01\x05\x00", "extension type 5"),  # ext8
        (b"\x91" * 1100 + b"\x01", "StackError"),
    ],
)
def test_bad_payloads_raise_malformed_frame(payload: bytes, needle: str) -> None:
    decoder = FrameDecoder()
    with pytest.raises(MalformedFrame) as info:
        decoder.feed(raw_frame(payload))
    assert needle in info.value.text
    assert decoder.poisoned


@pytest.mark.parametrize(
    "ts", [msgpack.Timestamp(1, 0), msgpack.Timestamp(2**33, 5), msgpack.Timestamp(-1, 0)]
)
def test_timestamp_extension_is_refused_even_though_ext_hook_skips_it(
    ts: msgpack.Timestamp,
) -> None:
    for obj in (ts, [1, {"k": ts}]):
        with pytest.raises(MalformedFrame, match="timestamp"):
            FrameDecoder().feed(raw_frame(msgpack.packb(obj)))


def test_timestamp_lookalike_bytes_in_a_string_are_fine() -> None:
    obj = {"s": "\x00", "b": b"\xd7\xff\xc7\x0c\xff", "n": -1}
    assert FrameDecoder().feed(encode_frame(obj)) == [obj]


def test_poisoned_decoder_keeps_failing_with_the_same_class() -> None:
    decoder = FrameDecoder()
    with pytest.raises(MalformedFrame):
        decoder.feed(encode_frame(1) + raw_frame(b"\xc1"))
    with pytest.raises(MalformedFrame, match="already failed"):
        decoder.feed(encode_frame(2))
    assert decoder.statistics().errors == 1


def test_error_after_good_frames_in_the_same_feed_still_raises() -> None:
    decoder = FrameDecoder(max_frame_bytes=16)
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(1) + struct.pack(">I", 17))
    with pytest.raises(FrameTooLarge, match="already failed"):
        decoder.feed(b"")


@pytest.mark.parametrize("bad", [0, -1, 2**32])
def test_decoder_limit_must_fit_the_header(bad: int) -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_bytes=bad)
