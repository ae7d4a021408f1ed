"""The per-seed job on a Dask cluster gives the same outcomes as local processes."""

from __future__ import annotations

import pytest

from kernsim.explore.executors import run_all
from kernsim.explore.job import Job, run_schedule

distributed = pytest.importorskip("dask.distributed")


def test_dask_executor_matches_local() -> None:
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    )
    try:
        jobs = [Job("race", "none", s, "random", index=s) for s in range(12)]
        remote = list(run_all(run_schedule, jobs, 1, "dask://" + cluster.scheduler_address))
    finally:
        cluster.close()
    local = [run_schedule(j) for j in jobs]
    assert [o.trace_sha256 for o in remote] == [o.trace_sha256 for o in local]
    assert [o.index for o in remote] == list(range(12))
