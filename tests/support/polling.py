"""Waiting for something in a test: poll against a deadline, never sleep a fixed time."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any


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


#: Back-pressure and crash checks want a fine poll.
eventually_fine = functools.partial(eventually, every_s=0.05)
#: Prometheus and compose answer slower than a service: a longer deadline, fewer polls.
eventually_slow = functools.partial(eventually, timeout_s=30.0, every_s=0.5)
