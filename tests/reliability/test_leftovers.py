"""Small holes a review found: the dest field, what a hello may claim, memparse's digits,
and the temporary folder every cluster left behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from kernsim.protocol import FrameDecoder, encode_frame
from kernsim.services.catalog import registry
from kernsim.services.launch.cluster import HOST, Cluster
from kernsim.services.memcg import memparse
from kernsim.services.runtime import Node


@pytest_asyncio.fixture
async def mm() -> AsyncIterator[Node]:
    # mm's peer table says memcg lives on another host.
    node = Node("mm", registry(), peers={"memcg": ("10.200.0.3", 7002)})
    node.handlers["ping"] = lambda env: {}
    await node.serve(HOST, 0)
    try:
        yield node
    finally:
        await node.close()


async def _exchange(node: Node, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``frames`` on a fresh connection; every reply until the service is done."""
    port = node._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"".join(encode_frame(f) for f in frames))
        decoder, got = FrameDecoder(), []
        while len(got) < len(frames):
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:
                break
            got += decoder.feed(data)
        return got
    finally:
        writer.transport.abort()


def _hello(src: str, dest: str = "mm", service: str | None = None) -> dict[str, Any]:
    body = {"service": service or src, "version": 1}
    return {"s": src, "d": dest, "i": 0, "t": "hello", "b": body}


def _ping(src: str, dest: str, msg_id: int) -> dict[str, Any]:
    return {"s": src, "d": dest, "i": msg_id, "t": "ping", "b": {}}


async def test_a_request_for_another_service_is_node_not_found(mm: Node) -> None:
    got = await _exchange(
        mm, [_hello("tool"), _ping("tool", "nobody", 1), _ping("tool", "memcg", 2),
             _ping("tool", "mm", 3)]
    )  # fmt: skip
    assert [g["t"] for g in got] == ["hello_ok", "error", "error", "ping_ok"]
    assert got[1]["b"]["code"] == 1 and got[2]["b"]["code"] == 1 and got[1]["r"] == 1


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        (_hello("mm"), 15),  # this service's own name
        (_hello("memcg"), 15),  # a peer's name, from an address that is not the peer's
        (_hello("tool", service="memcg"), 15),  # s and service disagree
        (_hello("Tool!"), 15),  # not a service name
        (_hello("tool", dest="memcg"), 1),  # addressed to another service
    ],
)
async def test_a_hello_cannot_claim_any_name(mm: Node, hello: dict[str, Any], code: int) -> None:
    got = await _exchange(mm, [hello, _ping(hello["s"], "mm", 1)])
    assert got[0]["t"] == "error" and got[0]["b"]["code"] == code, got
    assert len(got) == 1  # and the connection is closed


async def test_a_client_name_is_accepted(mm: Node) -> None:
    got = await _exchange(mm, [_hello("launcher"), _ping("launcher", "mm", 1)])
    assert [g["t"] for g in got] == ["hello_ok", "ping_ok"]


@pytest.mark.parametrize("text", ["٣٤٥٦", "１２３k", "²", "1_000", " 12 34"])
def test_memparse_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError):
        memparse(text)


def test_memparse_still_takes_sizes() -> None:
    assert memparse("2M\n") == 2 << 20 and memparse("512k") == 512 << 10
    assert memparse("4096") == 4096


async def test_a_cluster_leaves_no_folder_behind() -> None:
    cluster = Cluster()
    assert cluster.log_dir is None  # building one makes nothing
    try:
        await cluster.start()
        assert cluster.log_dir is not None and (cluster.log_dir / "mm.log").exists()
        made = cluster.log_dir
    finally:
        await cluster.stop()
    assert not made.exists()
