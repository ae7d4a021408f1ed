"""Property tests: hostile bytes, random envelopes, random splits, huge headers."""

import contextlib
import itertools
import struct
import tracemalloc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kernsim.protocol import (
    MAX_MSG_ID,
    Envelope,
    FrameDecoder,
    FrameTooLarge,
    ProtocolError,
    default_registry,
    encode_frame,
)

names = st.text(min_size=1, max_size=64)
msg_ids = st.integers(min_value=0, max_value=MAX_MSG_ID)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
envelopes = st.builds(
    Envelope,
    src=names,
    dest=names,
    msg_id=msg_ids,
    in_reply_to=st.none() | msg_ids,
    type=names,
    body=st.dictionaries(st.text(max_size=12), values, max_size=10),
)


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts})
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def consume_untrusted(data: bytes, max_frame_bytes: int) -> None:
    """What a receiver does with bytes off the wire, up to validation."""
    registry = default_registry()
    for obj in FrameDecoder(max_frame_bytes).feed(data):
        env = Envelope.from_wire(obj)
        if env.in_reply_to is None:
            registry.validate_request(env)
        else:
            registry.validate_reply(env)


@settings(max_examples=500)
@given(data=st.binary(max_size=300), limit=st.integers(min_value=1, max_value=1 << 20))
def test_random_bytes_raise_only_protocol_errors(data: bytes, limit: int) -> None:
    with contextlib.suppress(ProtocolError):
        consume_untrusted(data, limit)


@settings(max_examples=500)
@given(payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_random_payloads_in_valid_headers_raise_only_protocol_errors(
    payloads: list[bytes],
) -> None:
    # Correct headers get random bytes past the framing layer into msgpack.
    stream = b"".join(struct.pack(">I", len(p)) + p for p in payloads)
    with contextlib.suppress(ProtocolError):
        consume_untrusted(stream, 1 << 20)


@given(obj=values)
def test_random_decoded_objects_raise_only_malformed_message(obj: Any) -> None:
    try:
        Envelope.from_wire(obj)
    except ProtocolError as exc:
        assert exc.code == 12


@settings(max_examples=200)
@given(
    envs=st.lists(envelopes, min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_random_envelopes_survive_frames_split_anywhere(
    envs: list[Envelope], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(env.to_wire()) for env in envs)
    decoder = FrameDecoder()
    got = [Envelope.from_wire(obj) for obj in feed_all(decoder, split(stream, cuts))]
    assert got == envs
    assert decoder.buffered_bytes == 0
    assert decoder.statistics().frames_decoded == len(envs)


@given(
    limit=st.integers(min_value=1, max_value=1 << 20),
    excess=st.integers(min_value=1),
    tail=st.binary(max_size=64),
)
def test_huge_declared_lengths_raise_frame_too_large(limit: int, excess: int, tail: bytes) -> None:
    declared = min(limit + excess, 2**32 - 1)
    decoder = FrameDecoder(max_frame_bytes=limit)
    try:
        decoder.feed(struct.pack(">I", declared) + tail)
    except FrameTooLarge as exc:
        assert str(declared) in exc.text
    else:
        raise AssertionError("no FrameTooLarge")


def test_oversized_and_pending_frames_allocate_nothing_like_their_declared_size() -> None:
    # Within the limit but incomplete: only the bytes received are held.
    pending = FrameDecoder(max_frame_bytes=2**32 - 1)
    oversized = FrameDecoder(max_frame_bytes=1 << 20)
    tracemalloc.start()
    try:
        assert pending.feed(b"\xff\xff\xff\xff" + b"\x00" * 10) == []
        with contextlib.suppress(FrameTooLarge):
            oversized.feed(b"\xff\xff\xff\xff" + b"\x00" * 10)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pending.buffered_bytes == 14
    assert oversized.poisoned
    assert peak_bytes < 64 * 1024
