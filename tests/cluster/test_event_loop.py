"""KERNSIM_EVENT_LOOP: a service runs on asyncio's event loop or on uvloop (the compose
image installs it), says which in /statistics, and refuses uvloop in one line, status 2,
where it is not installed."""

from __future__ import annotations

import asyncio
import importlib
import os
from pathlib import Path

import aiohttp
from kernsim.services.catalog import registry
from kernsim.services.launch.cluster import HOST
from kernsim.services.runtime import Node
from kernsim.services.runtime.plumbing import loop_name

from kernsim.exits import Exit
from tests.support.processes import ServiceProcess


async def running_loop(svc: ServiceProcess) -> str:
    await svc.wait_healthy()
    async with aiohttp.ClientSession() as http, http.get(svc.url + "/statistics") as r:
        loop: str = (await r.json())["event_loop"]
    return loop


async def ping(port: int) -> str:
    """One msgpack RPC to the service on ``port`` (hello, then ping); the caller's loop."""
    client = Node("client", registry(), peers={"mm": (HOST, port)}, rpc_timeout_s=20)
    try:
        conn = await client.peer("mm")
        assert await conn.call("ping", {}) == {}
        return loop_name()
    finally:
        await client.close()


async def test_a_service_runs_on_asyncio_by_default() -> None:
    svc = ServiceProcess("memcg")
    try:
        assert await running_loop(svc) == "asyncio"
    finally:
        svc.stop()


async def test_a_service_runs_on_uvloop_when_asked() -> None:
    # uvloop is in the test extras: this path always runs.
    uvloop = importlib.import_module("uvloop")
    svc = ServiceProcess("mm", env={"KERNSIM_EVENT_LOOP": "uvloop"})
    try:
        assert await running_loop(svc) == "uvloop"
        # Its RPC port answers a client on asyncio's loop ...
        assert await ping(svc.port) == "asyncio"

        # ... and a client on uvloop (the load generator's and the services' own calls).
        def on_uvloop() -> str:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(ping(svc.port))

        assert await asyncio.to_thread(on_uvloop) == "uvloop"
    finally:
        svc.stop()


async def test_uvloop_not_installed_is_one_line_and_status_2(tmp_path: Path) -> None:
    # A uvloop that cannot be imported, first on the service's path.
    (tmp_path / "uvloop.py").write_text("raise ImportError('no uvloop here')\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    svc = ServiceProcess("mm", env={"KERNSIM_EVENT_LOOP": "uvloop", "PYTHONPATH": path})
    try:
        assert svc.proc.wait(timeout=60) == Exit.USAGE
        assert svc.proc.stderr is not None
        err = svc.proc.stderr.read().decode()
        assert "bad configuration: event_loop uvloop: uvloop is not installed" in err, err
        assert "Traceback" not in err
    finally:
        svc.stop()
