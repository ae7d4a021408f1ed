"""Plain HTTP from a test to a service's admin port (cgroupfs files, /faults, /metrics)."""

from __future__ import annotations

import aiohttp


async def get_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def put_text(url: str, data: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.put(url, data=data) as resp:
        return resp.status, await resp.text()
