"""Helpers for the reliability tests: processes on 127.0.0.1, polled, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from kernsim.services.records import rss_bytes


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 20.0, every_s: float = 0.05
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


def kill_all(pids: list[int]) -> None:
    """SIGKILL whatever of ``pids`` still runs (a stopped process dies of SIGKILL too)."""
    for pid in pids:
        if rss_bytes(pid) is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
