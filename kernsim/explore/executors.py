"""Where the schedules run: local processes, or a Dask cluster (``dask://HOST:PORT``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

A = TypeVar("A")
R = TypeVar("R")


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_all(
    fn: Callable[[A], R], items: Sequence[A], jobs: int, executor: str | None = None
) -> Iterator[R]:
    """``fn`` over ``items``, results in the order of ``items``.

    ``fn`` must be a top-level function and the items picklable: they cross
    process (or machine) boundaries.
    """
    if executor:
        yield from _dask(fn, items, executor)
    elif jobs <= 1 or len(items) <= 1:
        yield from map(fn, items)
    else:
        # Chunks keep the pickling overhead small next to a ~10 ms schedule.
        chunk = max(1, min(64, len(items) // (jobs * 8)))
        pool = ProcessPoolExecutor(max_workers=jobs)
        try:
            yield from pool.map(fn, items, chunksize=chunk)
        finally:  # also when the caller stops early: drop what has not started
            pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def mapper(jobs: int, executor: str | None = None) -> Iterator[Callable[..., Iterator[Any]]]:
    """A ``map(fn, items)`` that keeps one process pool for many calls (run_all starts
    one per call)."""
    if executor or jobs <= 1:
        yield lambda fn, items: run_all(fn, items, jobs, executor)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield lambda fn, items: pool.map(fn, items, chunksize=max(1, len(items) // (jobs * 4)))


def _dask(fn: Callable[[A], R], items: Sequence[A], executor: str) -> Iterator[R]:
    if not executor.startswith("dask://"):
        raise ValueError(f"unknown executor {executor!r} (try dask://HOST:PORT)")
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError(
            "--executor dask:// needs the dask extra: pip install kernsim[dask]"
        ) from None
    rest = executor.removeprefix("dask://")
    # dask://HOST:PORT is a TCP scheduler; dask://inproc://... names an in-process one.
    address = rest if "://" in rest else "tcp://" + rest
    client: Any = Client(address, timeout="10s")  # type: ignore[no-untyped-call]
    try:
        futures = client.map(fn, list(items), pure=False, batch_size=256)
        for fut in futures:
            yield fut.result()
    finally:
        client.close()
