"""Bad input on the wire gets an error (or, for a bad frame, a closed connection as
PROTOCOL.md section 5 prescribes), and the service goes on serving."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]
from kernsim.protocol import MAX_FRAME_BYTES, ErrorCode, FrameDecoder, encode_frame
from kernsim.services.launch.cluster import HOST, Cluster


class RawClient:
    """A hand-driven TCP client that speaks just enough of the protocol to misbehave."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.inbox: list[Any] = []

    @classmethod
    async def open(cls, port: int) -> RawClient:
        client = cls(*await asyncio.open_connection(HOST, port))
        client.send(
            {"s": "test", "d": "mm", "i": 1, "t": "hello", "b": {"service": "test", "version": 1}}
        )
        assert (await client.recv())["t"] == "hello_ok"
        return client

    def send(self, obj: Any) -> None:
        self.writer.write(encode_frame(obj))

    async def recv(self, timeout_s: float = 5.0) -> Any:
        while not self.inbox:
            data = await asyncio.wait_for(self.reader.read(65536), timeout_s)
            if not data:
                raise EOFError("closed by the service")
            self.inbox.extend(self.decoder.feed(data))
        return self.inbox.pop(0)

    async def closed_by_peer(self, timeout_s: float = 5.0) -> bool:
        return await asyncio.wait_for(self.reader.read(65536), timeout_s) == b""

    def close(self) -> None:
        self.writer.close()


async def _ping_works(port: int) -> None:
    client = await RawClient.open(port)
    try:
        client.send({"s": "test", "d": "mm", "i": 7, "t": "ping", "b": {}})
        reply = await client.recv()
        assert reply["t"] == "ping_ok" and reply["r"] == 7
    finally:
        client.close()


async def _stats(cluster: Cluster) -> dict[str, Any]:
    return dict((await cluster.rpc("mm", "statistics"))["stats"]["node"])


async def test_unknown_type_and_bad_body_get_errors_on_a_live_connection(
    idle_cluster: Cluster,
) -> None:
    client = await RawClient.open(idle_cluster.ports["mm"][0])
    try:
        client.send({"s": "test", "d": "mm", "i": 2, "t": "no_such_thing", "b": {}})
        reply = await client.recv()
        assert (reply["t"], reply["r"], reply["b"]["code"]) == ("error", 2, ErrorCode.NOT_SUPPORTED)
        # A primitive with a wrong field kind: malformed_request, naming the field.
        client.send({"s": "test", "d": "mm", "i": 3, "t": "page_flags", "b": {"pfn": "x"}})
        reply = await client.recv()
        assert reply["b"]["code"] == ErrorCode.MALFORMED_REQUEST and "pfn" in reply["b"]["text"]
        # A bad envelope (unknown key) that still names its sender: error 12 as well.
        client.send({"s": "test", "d": "mm", "i": 4, "t": "ping", "b": {}, "x": 1})
        reply = await client.recv()
        assert (reply["r"], reply["b"]["code"]) == (4, ErrorCode.MALFORMED_REQUEST)
        # ... and the same connection still works.
        client.send({"s": "test", "d": "mm", "i": 5, "t": "ping", "b": {}})
        assert (await client.recv())["t"] == "ping_ok"
    finally:
        client.close()
    stats = await _stats(idle_cluster)
    assert stats["unknown_type"] >= 1 and stats["malformed"] >= 2


async def test_malformed_frame_closes_only_that_connection(idle_cluster: Cluster) -> None:
    port = idle_cluster.ports["mm"][0]
    client = await RawClient.open(port)
    try:
        payload = b"\xc1"  # a msgpack byte that is never valid
        client.writer.write(struct.pack(">I", len(payload)) + payload)
        assert await client.closed_by_peer()
    finally:
        client.close()
    assert (await _stats(idle_cluster))["frame_errors"] >= 1
    await _ping_works(port)


async def test_oversized_frame_is_refused_before_its_payload(idle_cluster: Cluster) -> None:
    port = idle_cluster.ports["mm"][0]
    client = await RawClient.open(port)
    try:
        # Only the header: the service must refuse on the declared length alone.
        client.writer.write(struct.pack(">I", MAX_FRAME_BYTES + 1))
        assert await client.closed_by_peer()
    finally:
        client.close()
    assert (await _stats(idle_cluster))["frame_errors"] >= 1
    await _ping_works(port)


async def test_first_message_must_be_hello(idle_cluster: Cluster) -> None:
    reader, writer = await asyncio.open_connection(HOST, idle_cluster.ports["memcg"][0])
    client = RawClient(reader, writer)
    try:
        client.send({"s": "test", "d": "memcg", "i": 1, "t": "ping", "b": {}})
        reply = await client.recv()
        assert reply["b"]["code"] == ErrorCode.HANDSHAKE_REFUSED
        assert await client.closed_by_peer()
    finally:
        client.close()


async def test_msgpack_garbage_is_not_a_frame(idle_cluster: Cluster) -> None:
    # A whole frame of valid msgpack that is not a map: no sender to answer, so dropped.
    port = idle_cluster.ports["mm"][0]
    client = await RawClient.open(port)
    try:
        client.writer.write(encode_frame([1, 2, 3]))
        client.send({"s": "test", "d": "mm", "i": 9, "t": "ping", "b": {}})
        assert (await client.recv())["r"] == 9
    finally:
        client.close()
    assert msgpack.packb([1]) == b"\x91\x01"
