"""kernsim: a laboratory for Linux kernel races (the memcg stale swap cache leak of 2.6.30)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed


def version() -> str:
    """The installed distribution's version, or ``unknown`` when run from a bare checkout."""
    try:
        return _installed("kernsim")
    except PackageNotFoundError:
        return "unknown"
