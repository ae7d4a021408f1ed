"""Per-service bounds: connections, pre-hello buffering, hello/frame/idle timeouts.

A review held 64 unauthenticated connections each with most of a 1 MiB frame
(mm 42 -> 111 MiB), 1,100 idle ones (a 1,024-descriptor limit exhausted), and
slow-drip connections that were never closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import pytest_asyncio
from kernsim.protocol import encode_frame
from kernsim.services.launch.cluster import HOST

from tests.support.polling import eventually_fine as eventually
from tests.support.processes import ServiceProcess

HELLO = encode_frame(
    {"s": "tool", "d": "mm", "i": 0, "t": "hello", "b": {"service": "tool", "version": 1}}
)
SHORT = {
    "KERNSIM_MAX_CONNECTIONS": "16",
    "KERNSIM_HELLO_TIMEOUT_S": "1",
    "KERNSIM_FRAME_TIMEOUT_S": "2",
    "KERNSIM_IDLE_TIMEOUT_S": "2",
}

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest_asyncio.fixture
async def mm() -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("mm", env=SHORT)
    try:
        await svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


async def _closed_by_peer(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    """Read until the service closes the connection (True) or the deadline (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                if not await asyncio.wait_for(reader.read(65536), 0.2):
                    return True
    except ConnectionError:
        return True
    return False


async def _open(port: int, greet: bool) -> Conn:
    reader, writer = await asyncio.open_connection(HOST, port)
    if greet:
        writer.write(HELLO)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), 10)
        assert b"hello_ok" in data
    return reader, writer


def _close(conns: list[Conn]) -> None:
    for _r, w in conns:
        w.transport.abort()


async def test_pre_hello_buffering_is_capped_and_memory_stays_flat() -> None:
    svc = ServiceProcess("mm")  # default limits: 64 connections, 4 KiB before hello
    conns: list[Conn] = []
    try:
        await svc.wait_healthy()
        base = svc.rss()
        for _ in range(64):
            reader, writer = await _open(svc.port, greet=False)
            writer.write(struct.pack(">I", 1 << 20) + b"\x00" * ((1 << 20) - 1))
            conns.append((reader, writer))
        for reader, _w in conns:
            assert await _closed_by_peer(reader, 10), "a pre-hello connection kept 1 MiB"
        assert svc.rss() - base < 16 << 20, (base, svc.rss())
    finally:
        _close(conns)
        svc.stop()


async def test_connections_past_the_cap_are_closed(mm: ServiceProcess) -> None:
    conns = [await _open(mm.port, greet=True) for _ in range(16)]
    try:
        reader, writer = await asyncio.open_connection(HOST, mm.port)
        conns.append((reader, writer))
        assert await _closed_by_peer(reader, 5), "the 17th connection was kept"
        _close(conns[:1])  # room again: a new connection is served

        async def one_more() -> Conn | None:
            try:
                return await _open(mm.port, greet=True)
            except (AssertionError, ConnectionError):
                return None

        conns.append(await eventually(one_more, 10))
    finally:
        _close(conns)


async def test_a_connection_that_never_says_hello_is_closed(mm: ServiceProcess) -> None:
    reader, writer = await asyncio.open_connection(HOST, mm.port)
    try:
        assert await _closed_by_peer(reader, 10)
    finally:
        writer.transport.abort()


async def test_a_frame_dripped_a_byte_at_a_time_is_closed(mm: ServiceProcess) -> None:
    reader, writer = await _open(mm.port, greet=True)
    ping = encode_frame({"s": "tool", "d": "mm", "i": 1, "t": "ping", "b": {}})
    try:
        closed = False
        for byte in ping[:-1]:  # never the last byte: the frame never completes
            writer.write(bytes([byte]))
            if await _closed_by_peer(reader, 0.5):  # a drip rate, not a wait for a state
                closed = True
                break
        assert closed, "a slow-drip frame was kept"
    finally:
        writer.transport.abort()


async def test_an_idle_connection_is_closed_and_a_busy_one_kept(mm: ServiceProcess) -> None:
    idle_r, idle_w = await _open(mm.port, greet=True)
    busy_r, busy_w = await _open(mm.port, greet=True)
    ping = encode_frame({"s": "tool", "d": "mm", "i": 1, "t": "ping", "b": {}})
    try:
        closed = False
        for _ in range(40):  # 0.25 s apart: far inside the 2 s idle timeout
            busy_w.write(ping)
            assert b"ping_ok" in await asyncio.wait_for(busy_r.read(4096), 5)
            if await _closed_by_peer(idle_r, 0.25):
                closed = True
                break
        assert closed, "an idle connection was kept"
        busy_w.write(ping)
        assert b"ping_ok" in await asyncio.wait_for(busy_r.read(4096), 5)
    finally:
        idle_w.transport.abort()
        busy_w.transport.abort()
