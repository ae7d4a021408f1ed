"""The parked-handler flood: the per-connection handler cap holds frame by frame, and a
peer that hangs up while its reading is paused is noticed and everything it owned freed."""

from __future__ import annotations

import asyncio
import socket
import struct

from kernsim.protocol import Envelope, encode_frame
from kernsim.services.catalog import registry
from kernsim.services.launch.cluster import HOST
from kernsim.services.runtime import Body, Node
from kernsim.services.runtime.connection import MAX_HANDLERS

from tests.support.polling import eventually_fine as eventually

FLOOD = 6000  # more frames than the cap, in one write: one read can hold them all


async def _parked(_env: Envelope) -> Body:
    await asyncio.Event().wait()  # a primitive parked forever (a page lock never released)
    return {}


async def _flooded_server() -> tuple[Node, socket.socket]:
    server = Node("mm", registry())
    server.handlers["ping"] = _parked
    port = await server.serve(HOST, 0)
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    frames = [encode_frame({"s": "tasks", "d": "mm", "i": 0, "t": "hello",
                            "b": {"service": "tasks", "version": 1}})]  # fmt: skip
    frames += [encode_frame({"s": "tasks", "d": "mm", "i": i + 1, "t": "ping", "b": {}})
               for i in range(FLOOD)]  # fmt: skip
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_sendall(sock, b"".join(frames))
    return server, sock


async def test_the_handler_cap_holds_within_one_read() -> None:
    server, sock = await _flooded_server()
    try:

        async def capped() -> bool:
            return server.statistics()["handler_tasks"] >= MAX_HANDLERS

        await eventually(capped, 10)
        # Give the loop every chance to overshoot: it has all the frames it will read.
        for _ in range(50):
            await asyncio.sleep(0)
        assert server.statistics()["handler_tasks"] == MAX_HANDLERS
        assert server.stats["read_pauses"] >= 1
    finally:
        sock.close()
        await server.close()


async def test_a_hang_up_while_reading_is_paused_frees_everything() -> None:
    server, sock = await _flooded_server()
    try:

        async def capped() -> bool:
            return server.statistics()["handler_tasks"] >= MAX_HANDLERS

        await eventually(capped, 10)
        # RST: close with SO_LINGER 0, as a client that crashes would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

        async def freed() -> bool:
            s = server.statistics()
            return s["handler_tasks"] == 0 and s["connections_open"] == 0

        await eventually(freed, 10)
        assert not server._tasks  # the node keeps no task of the connection either
    finally:
        sock.close()
        await server.close()


async def test_a_clean_close_while_reading_is_paused_frees_everything() -> None:
    server, sock = await _flooded_server()
    try:

        async def capped() -> bool:
            return server.statistics()["handler_tasks"] >= MAX_HANDLERS

        await eventually(capped, 10)
        sock.close()  # FIN, with frames still unread behind it

        async def freed() -> bool:
            s = server.statistics()
            return s["handler_tasks"] == 0 and s["connections_open"] == 0

        await eventually(freed, 10)
    finally:
        sock.close()
        await server.close()
