"""Argument types shared by every ``kernsim`` command: one validator per kind of value.

Each raises ``argparse.ArgumentTypeError``, so a bad value is a one-line usage error
(exit 2) in whichever command it is given to, never a traceback from deeper down.
"""

from __future__ import annotations

import argparse

#: mm/swap.c: page_cluster is log2 of the readahead window; 2.6.30 takes 0-8 sensibly.
PAGE_CLUSTER_MAX = 8


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def seed(text: str) -> int:
    """One seed: a whole number >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0: {text!r}")
    return value


def seeds(text: str) -> list[int]:
    """``7``, ``1-20`` or ``1,5,9`` (each a seed)."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a seed list: {text!r} (try 7, 1-20 or 1,5,9)"
            ) from None
        if first < 0 or last < 0:
            raise argparse.ArgumentTypeError(f"seeds are whole numbers >= 0: {text!r}")
        if last < first:
            raise argparse.ArgumentTypeError(f"the range {part} is reversed (try {last}-{first})")
        out.extend(range(first, last + 1))
    return out


def page_cluster(text: str) -> int:
    """/proc/sys/vm/page-cluster: 0 (no readahead) to 8."""
    value = _int(text)
    if not 0 <= value <= PAGE_CLUSTER_MAX:
        raise argparse.ArgumentTypeError(
            f"page-cluster must be between 0 and {PAGE_CLUSTER_MAX}: {text!r}"
        )
    return value


def positive(text: str) -> int:
    """A count of at least 1 (schedules, jobs, rounds)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value
