"""Fixtures for the reliability tests (helpers live in tests/support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.inprocess import InProcessCluster


@pytest.fixture(scope="module")
def inprocess_cluster() -> Iterator[InProcessCluster]:
    """The six services on one event loop in this process, for one test module; stopped
    after it, pass or fail."""
    c = InProcessCluster()
    try:
        yield c
    finally:
        c.close()
