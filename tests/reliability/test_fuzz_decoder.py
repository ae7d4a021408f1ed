"""Property-based fuzzing of the frame decoder: bytes in any split, never more than a frame held."""

from __future__ import annotations

import os
import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernsim.protocol import (
    HEADER_BYTES,
    FrameDecoder,
    FrameTooLarge,
    MalformedFrame,
    ProtocolError,
    encode_frame,
)

EXAMPLES = int(os.environ.get("KERNSIM_FUZZ_EXAMPLES", "300"))
LIMIT = 4096
objects = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=30)),
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=5), kids, max_size=5)
    ),
    max_leaves=20,
)


def _feed_in_pieces(data: bytes, cuts: list[int]) -> tuple[list[Any], ProtocolError | None, int]:
    """Feed ``data`` cut at ``cuts``; (objects, first error, most bytes ever buffered)."""
    decoder, out, most = FrameDecoder(LIMIT), [], 0
    pos = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        try:
            out.extend(decoder.feed(data[pos:cut]))
        except ProtocolError as exc:
            assert decoder.poisoned
            with pytest.raises(type(exc)):
                decoder.feed(b"\x00")  # poisoned: every later feed fails too
            return out, exc, most
        pos = max(pos, cut)
        most = max(most, decoder.buffered_bytes)
    return out, None, most


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(st.binary(max_size=3 * LIMIT), st.lists(st.integers(0, 3 * LIMIT), max_size=8))
def test_random_bytes_only_ever_raise_protocol_errors(data: bytes, cuts: list[int]) -> None:
    _objs, _err, most = _feed_in_pieces(data, cuts)
    # Never more than one incomplete frame is held, whatever the peer declares.
    assert most <= HEADER_BYTES + LIMIT


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(st.lists(objects, min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=8))
def test_frames_in_any_split_decode_to_what_was_sent(objs: list[Any], cuts: list[int]) -> None:
    frames = [encode_frame(o, max_frame_bytes=LIMIT * 64) for o in objs]
    if any(len(f) - HEADER_BYTES > LIMIT for f in frames):
        return
    data = b"".join(frames)
    got, err, _most = _feed_in_pieces(data, cuts)
    assert err is None and got == objs


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(objects, st.integers(1, 10**6))
def test_a_truncated_frame_yields_nothing_and_no_error(obj: Any, cut: int) -> None:
    frame = encode_frame(obj, max_frame_bytes=1 << 24)
    decoder = FrameDecoder(1 << 24)
    assert decoder.feed(frame[: cut % len(frame)]) == []
    assert not decoder.poisoned


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(st.integers(LIMIT + 1, 2**32 - 1))
def test_a_huge_declared_length_is_refused_on_the_header_alone(length: int) -> None:
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(FrameTooLarge):
        decoder.feed(struct.pack(">I", length))
    assert decoder.buffered_bytes <= HEADER_BYTES


@pytest.mark.parametrize(
    "payload",
    [
        b"\xdd\xff\xff\xff\xff",  # array32 declaring 4 G elements, 5 bytes long
        b"\xdf\xff\xff\xff\xff",  # map32 likewise
        b"\xdb\xff\xff\xff\xff" + b"x" * 10,  # str32 longer than the frame
        b"\x91" * 3000 + b"\xc0",  # nesting deeper than msgpack's stack limit
        b"\xd6\xff\x00\x00\x00\x00",  # the timestamp extension
        b"\xc7\x01\x05x",  # any other extension
    ],
)
def test_msgpack_size_and_depth_limits(payload: bytes) -> None:
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(MalformedFrame):
        decoder.feed(struct.pack(">I", len(payload)) + payload)


def test_declared_container_sizes_are_bounded_by_the_payload() -> None:
    # What the decoder relies on: msgpack refuses containers larger than its input.
    with pytest.raises(ValueError):
        msgpack.unpackb(b"\xdd\x00\x01\x00\x00" + b"\xc0" * 10)
