"""Back-pressure: bounded calls in flight, cleanup on timeout and disconnect, a flood survived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from kernsim.protocol import Envelope, RequestTimeout, encode_frame
from kernsim.services.catalog import registry
from kernsim.services.launch.cluster import HOST
from kernsim.services.runtime import Body, Node

from tests.support.polling import eventually_fine as eventually
from tests.support.processes import ServiceProcess


class Gate:
    """A handler that answers only when the gate opens."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = 0

    async def handler(self, env: Envelope) -> Body:
        self.entered += 1
        await self.open.wait()
        return {}


@pytest_asyncio.fixture
async def pair() -> AsyncIterator[tuple[Node, Node, Gate]]:
    gate = Gate()
    server = Node("mm", registry())
    server.handlers["ping"] = gate.handler
    port = await server.serve(HOST, 0)
    client = Node("tasks", registry(), peers={"mm": (HOST, port)}, max_in_flight=8)
    try:
        yield server, client, gate
    finally:
        await client.close()
        await server.close()


async def test_calls_in_flight_are_bounded_and_callers_wait(pair: tuple[Node, Node, Gate]) -> None:
    _server, client, gate = pair
    conn = await client.peer("mm")
    calls = [asyncio.ensure_future(conn.call("ping", {})) for _ in range(50)]

    async def eight_waiting() -> bool:
        return gate.entered == 8

    await eventually(eight_waiting, 5)
    assert conn.in_flight == 8 and not any(c.done() for c in calls)
    gate.open.set()
    await asyncio.wait_for(asyncio.gather(*calls), 10)
    assert gate.entered == 50 and not conn.in_flight


async def test_a_timed_out_call_is_forgotten_and_its_late_reply_dropped(
    pair: tuple[Node, Node, Gate],
) -> None:
    _server, client, gate = pair
    conn = await client.peer("mm")
    t0 = time.monotonic()
    with pytest.raises(RequestTimeout):
        await conn.call("ping", {}, timeout_s=0.2)
    assert 0.2 <= time.monotonic() - t0 < 1.0 and not conn.in_flight
    gate.open.set()  # the reply now comes late, to a call nobody waits for

    async def dropped() -> bool:
        return client.stats["dropped_replies"] == 1

    await eventually(dropped, 5)
    assert client.stats["timeouts"] == 1
    await conn.call("ping", {}, timeout_s=5)  # the connection still works


async def test_a_disconnect_fails_pending_calls_and_cancels_their_handlers(
    pair: tuple[Node, Node, Gate],
) -> None:
    server, client, _gate = pair
    conn = await client.peer("mm")
    calls = [asyncio.ensure_future(conn.call("ping", {})) for _ in range(5)]

    async def parked() -> bool:
        return server.statistics()["handler_tasks"] == 5

    await eventually(parked, 5)
    conn.close()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RequestTimeout) for r in results) and not conn.in_flight

    async def cleaned() -> bool:
        return server.statistics()["handler_tasks"] == 0 and len(server.live) == 0

    await eventually(cleaned, 5)


async def test_a_flood_from_a_peer_that_never_reads_is_throttled_by_tcp() -> None:
    svc = ServiceProcess("mm")
    flood_writer: asyncio.StreamWriter | None = None
    try:
        await svc.wait_healthy()
        base_rss = svc.rss()
        reader, flood_writer = await asyncio.open_connection(HOST, svc.port)
        hello = {"service": "flood", "version": 1}
        flood_writer.write(
            encode_frame({"s": "flood", "d": "mm", "i": 0, "t": "hello", "b": hello})
        )
        ping = encode_frame({"s": "flood", "d": "mm", "i": 1, "t": "ping", "b": {}})
        chunk = ping * 2000
        sent, most_rss = 0, base_rss
        while sent < 200 << 20:
            flood_writer.write(chunk)
            try:
                await asyncio.wait_for(flood_writer.drain(), 2.0)
            except TimeoutError:
                break  # the service stopped reading: TCP holds us back
            sent += len(chunk)
            most_rss = max(most_rss, svc.rss())
        most_rss = max(most_rss, svc.rss())
        assert sent < 200 << 20, "a peer that never reads was never held back"
        # Bounded: a few MiB of buffers, not the tens of MiB the flood pushed at it.
        assert most_rss - base_rss < 32 << 20, (base_rss, most_rss, sent)
        flood_writer.transport.abort()
        flood_writer = None
        # ... and it answers again.
        reader, writer = await asyncio.open_connection(HOST, svc.port)
        # The same name in "s" and in the hello's "service" (PROTOCOL.md 6).
        writer.write(encode_frame({"s": "flood", "d": "mm", "i": 0, "t": "hello", "b": hello}))
        writer.write(encode_frame({"s": "flood", "d": "mm", "i": 9, "t": "ping", "b": {}}))
        got = b""
        while b"ping_ok" not in got:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data
            got += data
        writer.close()
    finally:
        if flood_writer is not None:
            flood_writer.transport.abort()
        svc.stop()
