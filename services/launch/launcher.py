"""The run behind ``kernsim run``: one experiment on the cluster of six services.

The command line (kernsim/cli/cluster.py) parses the flags, builds the Cluster and
turns each way a run ends into its exit status (kernsim.exits); this module starts
the services, runs services/launch/experiment.py on them -- rounds of load, then the
simulation's own settle_and_check (kernsim.check.settle) over the live services:
kill all, wait for quiescence, drain the pagevecs, check the invariants on state
fetched from mm and memcg, one pass of global reclaim -- and stops them whatever
happens.  A service that dies or stops answering is a ServiceFailure naming it, a
wrong environment a SetupError (lifecycle.py), a signal Interrupted.

With ``--out DIR`` the run leaves ``DIR/records.jsonl``: the run's trace, one
JSON record per line, each written whole and fsync'd as it is made (the
services and their pids, every phase, a progress sample each second, the
result, or the failure naming the service), so a run that dies midway still
leaves everything up to that point readable; and ``DIR/results.json``, the
result objects, written once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernsim.services.launch.cluster import Cluster, ServiceFailure
from kernsim.services.launch.experiment import ClusterResult, experiment, sample_progress
from kernsim.services.launch.lifecycle import Interrupted, start_cluster
from kernsim.services.launch.records import RecordWriter
from kernsim.services.runtime.config import SERVICES

from kernsim import progress

__all__ = ["ClusterResult", "record_interrupted", "run_one", "write_results"]


async def run_one(
    cluster: Cluster,
    duration_s: float,
    until_leak_s: float | None = None,
    out: RecordWriter | None = None,
    measured: dict[str, Any] | None = None,
    min_rounds: int = 1,
) -> ClusterResult:
    """Start ``cluster``, run :func:`experiment` on it, stop it whatever happens.

    With ``out``, the run's records (services, phases, progress samples, the result or
    the failure); ``measured`` keeps the last progress sample (what a signal's record
    says was measured).  A ServiceFailure comes back with the tail of that service's log.
    """
    variant = cluster.variant
    sampler: asyncio.Task[None] | None = None
    try:
        progress.phase(f"{variant}: starting the six services")
        await start_cluster(cluster)
        if out is not None:
            out.write(
                "cluster_started", variant=variant, pids=cluster.pids(), ports=cluster.addresses()
            )
            sampler = asyncio.ensure_future(sample_progress(cluster, out, last=measured))
        result = await experiment(
            cluster, duration_s, out=out, until_leak_s=until_leak_s, min_rounds=min_rounds
        )
        if out is not None:
            out.write("result", **result.to_dict())
        return result
    except ServiceFailure as exc:
        if out is not None:
            why = str(exc).removeprefix(f"service {exc.service} ")
            out.write("failure", variant=variant, service=exc.service, why=why)
        tail = cluster.log_tail(exc.service) if exc.service in SERVICES else ""
        why = str(exc).removeprefix(f"service {exc.service} ")
        if tail:
            why += f"\n--- last lines of its log ---\n{tail}"
        raise ServiceFailure(exc.service, why) from exc
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(BaseException):
                await sampler
        progress.phase(f"{variant}: stopping the services")
        await cluster.stop()
        progress.done()


def record_interrupted(
    out: RecordWriter | None, variant: str, exc: Interrupted, measured: dict[str, Any]
) -> dict[str, Any]:
    """The record and the results.json entry of a run a signal stopped: what it measured."""
    if out is not None:
        out.write("interrupted", variant=variant, signal=exc.name)
    return {"variant": variant, "incomplete": True, "interrupted_by": exc.name,
            "last_progress": measured}  # fmt: skip


def write_results(
    path: Path, results: list[ClusterResult], unfinished: Sequence[dict[str, Any]] = ()
) -> None:
    """All results so far, then any run a signal cut short (``"incomplete": true``),
    replaced atomically: a reader sees the old file or the new one."""
    tmp = path.with_suffix(".tmp")
    entries = [r.to_dict() for r in results] + list(unfinished)
    tmp.write_text(json.dumps(entries, indent=2) + "\n")
    os.replace(tmp, path)
