"""Fixtures for the cluster tests: real service processes on 127.0.0.1.

Every cluster a test starts is stopped in a finally block, pass or fail, and
every wait polls against a deadline rather than sleeping a fixed time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from kernsim.services.launch.cluster import Cluster


@pytest_asyncio.fixture
async def idle_cluster() -> AsyncIterator[Cluster]:
    """A kamezawa machine under vanilla 2.6.30, no faults, no load yet."""
    cluster = Cluster(variant="none", scenario="kamezawa", faults="none")
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
