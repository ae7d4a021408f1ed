"""Fixtures for the model's unit tests; the helpers live in tests/support/unitkit.py."""

from __future__ import annotations

import pytest

from kernsim.model.memcontrol import MemcgState
from kernsim.model.mm import MmState
from tests.support.unitkit import small_mm


@pytest.fixture
def mm30() -> MmState:
    """A fresh 2.6.30 machine: swap_map = references + 1 for the swap cache."""
    return small_mm(swap_has_cache=False)


@pytest.fixture
def mm31() -> MmState:
    """A fresh 2.6.31 machine: swap_map = count | SWAP_HAS_CACHE."""
    return small_mm(swap_has_cache=True)


@pytest.fixture
def mc() -> MemcgState:
    """A fresh memcg state with the root group and /A."""
    state = MemcgState()
    state.create("/A")
    return state
