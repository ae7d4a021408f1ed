"""Fixtures for the cluster tests: real service processes on 127.0.0.1.

Every cluster a test starts is stopped in a finally block, pass or fail, and
every wait polls against a deadline rather than sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest_asyncio
from kernsim.services.cluster import Cluster


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 20.0, every_s: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every_s)
    raise AssertionError(f"condition not met in {timeout_s} s (last: {last!r})")


async def get_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def put_text(url: str, data: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.put(url, data=data) as resp:
        return resp.status, await resp.text()


@pytest_asyncio.fixture
async def idle_cluster() -> AsyncIterator[Cluster]:
    """A kamezawa machine under vanilla 2.6.30, no faults, no load yet."""
    cluster = Cluster(variant="none", scenario="kamezawa", faults="none")
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
