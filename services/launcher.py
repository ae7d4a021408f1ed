"""The experiment behind ``kernsim run``: one run on the cluster of six services.

The command line (kernsim/cli/cluster.py) parses the flags, builds the Cluster and
turns each way a run ends into its exit status (kernsim.exits); this module runs it.

``run`` mirrors kernsim.sim.run.settle_and_check over live services: load,
kill all, wait for quiescence, drain the pagevecs, check the invariants on
state fetched from mm and memcg with the simulation's checker, one pass of
global reclaim, report.  A service that dies or stops answering is a
ServiceFailure naming it, a wrong environment a SetupError (lifecycle.py), a
signal Interrupted; the command line gives each its exit status.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernsim.protocol import ProtocolError
from kernsim.services.cluster import Cluster, ServiceFailure
from kernsim.services.lifecycle import Interrupted, start_cluster
from kernsim.services.records import RecordWriter
from kernsim.services.runtime.config import SERVICES
from kernsim.services.snapshot import memcg_restore, mm_restore

from kernsim import progress
from kernsim.sim.checker import (
    Violation,
    global_reclaim_violations,
    quiescent_violations,
    slots_in_use,
    stale_swapcache_pages,
)
from kernsim.sim.result import RunResult

#: What each recorded phase means, for the progress lines on stderr.
PHASES = {
    "workload_started": "{duration_s:g} s of load, then every task is killed",
    "killed_all": "every task killed; waiting for I/O and work to quiesce",
    "quiescent": "quiescent",
    "round_checked": "round {round}: memsw.usage - usage = {memsw_minus_usage_bytes} B with no "
    "task left ({swapin_reads} swap-in reads)",
}


@dataclass(slots=True)
class ClusterResult(RunResult):
    """kernsim sim's result object, without trace_sha256, with wall_s, ops and messages."""

    wall_s: float = 0.0
    messages: int = 0
    #: Load rounds run, their seconds of load, and what ended them (``leak seen``,
    #: ``bound reached`` with --until-leak, else ``one round``).
    load_rounds: int = 1
    load_s: float = 0.0
    ended: str = "one round"
    #: Swap-in reads (pages read back from swap, readahead included) during the load.
    swapin_reads: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = RunResult.to_dict(self)
        d.update(
            wall_s=round(self.wall_s, 3),
            ops=self.events,
            messages=self.messages,
            load_rounds=self.load_rounds,
            load_s=self.load_s,
            ended=self.ended,
            swapin_reads=self.swapin_reads,
        )
        return d


async def experiment(
    cluster: Cluster,
    duration_s: float,
    settle_s: float = 120.0,
    out: RecordWriter | None = None,
    until_leak_s: float | None = None,
) -> ClusterResult:
    """Load rounds, then drain, check, global reclaim: one run on a started cluster.

    A load round is the scenario's workload for ``duration_s`` (kamezawa: three tasks,
    pkill every 3 s), kill all, quiescence.  Without ``until_leak_s`` one round is run.
    With it, rounds repeat (each with its own workload seed) until memsw.usage stays
    above usage with no task left, or until the next round would pass ``until_leak_s``
    seconds of load in all: the verdict says which ended it, and ``swapin_reads`` how
    many chances a kill had to catch a swap-in in flight.  A leak, once there,
    stays (nothing inside the memcg reclaims it), so the rounds only add kill rounds
    as Kamezawa's loop did, and the check at the end sees them all.
    """

    def phase(name: str, **fields: Any) -> None:
        text = PHASES.get(name, name).format(duration_s=duration_s, **fields)
        progress.phase(f"{cluster.variant}: {text}")
        if out is not None:
            out.write("phase", phase=name, variant=cluster.variant, **fields)

    t0 = time.monotonic()
    reads0 = reads = await _swapin_reads(cluster)
    rounds, load_s, gap = 0, 0.0, 0
    while True:
        gap = await _load_round(cluster, duration_s, cluster.seed + rounds, settle_s, phase)
        rounds += 1
        load_s += duration_s
        before, reads = reads, await _swapin_reads(cluster)
        # Swap-ins are the chances a kill had to catch readahead in flight (a machine loaded
        # enough kills the tasks before they touch their pages twice: none at all).
        swapins = reads - before
        phase("round_checked", round=rounds, memsw_minus_usage_bytes=gap, swapin_reads=swapins)
        if until_leak_s is None or gap > 0 or load_s + duration_s > until_leak_s:
            break
    ended = "leak seen" if gap > 0 else "bound reached" if until_leak_s is not None else "one round"
    wall_load = time.monotonic() - t0
    progress.phase(f"{cluster.variant}: draining pagevecs, checking the invariants")
    await cluster.rpc("workqueue", "run_path", {"path": "lru_add_drain_all"})
    mm = mm_restore((await cluster.rpc("mm", "snapshot"))["state"])
    memcg_data = (await cluster.rpc("memcg", "snapshot"))["state"]
    memcg = memcg_restore(memcg_data)
    group = memcg.groups[memcg.by_name["/A"]]
    stale = len(stale_swapcache_pages(mm, memcg))
    used = len(slots_in_use(mm))
    violations = [Violation(k, m) for k, m in memcg_data["violations"]]
    violations += quiescent_violations(mm, memcg)
    progress.phase(f"{cluster.variant}: one pass of global reclaim")
    await cluster.rpc("vmscan", "run_path", {"path": "global_reclaim"}, timeout_s=settle_s)
    mm_after = mm_restore((await cluster.rpc("mm", "snapshot"))["state"])
    used_after = slots_in_use(mm_after)
    violations += global_reclaim_violations(mm_after)
    stats = await cluster.statistics()
    violations += _crashes(stats)
    results: dict[str, int] = {}
    for svc in ("tasks", "vmscan"):
        for k, v in stats[svc]["vmscan_results"].items():
            results[k] = results.get(k, 0) + v
    return ClusterResult(
        scenario=cluster.scenario,
        variant=cluster.variant,
        seed=cluster.seed,
        faults=cluster.faults,
        page_cluster=mm.config.page_cluster,
        events=stats["mm"]["ops"] + stats["memcg"]["ops"],
        virtual_s=wall_load,
        usage_bytes=group.res.usage,
        memsw_usage_bytes=group.memsw.usage,
        stale_swapcache_pages=stale,
        swap_slots_used=used,
        swap_slots_used_after_global_reclaim=len(used_after),
        oom_kills=group.oom_kills,
        vmscan_results=results,
        wall_s=time.monotonic() - t0,
        messages=sum(s["node"]["messages_sent"] for s in stats.values()),
        violations=violations,
        load_rounds=rounds,
        load_s=load_s,
        ended=ended,
        swapin_reads=reads - reads0,
    )


async def _swapin_reads(cluster: Cluster) -> int:
    """Swap-in reads completed so far (end_swap_bio_read runs on blockdev)."""
    stats = (await cluster.rpc("blockdev", "statistics"))["stats"]
    return int(stats["work_items"].get("end_swap_bio_read", 0))


async def _load_round(
    cluster: Cluster, duration_s: float, seed: int, settle_s: float, phase: Any
) -> int:
    """One round of load, kill all, quiescence; memsw.usage - usage of /A with no task left."""
    await cluster.rpc(
        "tasks",
        "start_workload",
        {"scenario": cluster.scenario, "duration_s": float(duration_s), "seed": seed},
    )
    phase("workload_started", seed=seed)
    await cluster.watched(_until_quiet(cluster), duration_s * 3 + settle_s, "the workload")
    await cluster.rpc("tasks", "kill_all")
    phase("killed_all")
    await cluster.watched(_until_quiet(cluster), settle_s, "quiescence")
    phase("quiescent")
    a = (await cluster.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
    return int(a["memsw_usage_bytes"]) - int(a["usage_bytes"])


async def _until_quiet(cluster: Cluster) -> None:
    while not (await cluster.rpc("tasks", "quiesce_status"))["quiescent"]:
        await asyncio.sleep(0.1)


def _crashes(stats: dict[str, Any]) -> list[Violation]:
    """A kernel BUG_ON or a failed code path anywhere is a violation, named by service."""
    out = []
    for name, s in stats.items():
        for text in s["node"]["crash_texts"] + s.get("crash_texts", []):
            out.append(Violation("service_error", f"{name}: {text}"))
    return out


async def _progress(
    cluster: Cluster, out: RecordWriter, every_s: float = 1.0, last: dict[str, Any] | None = None
) -> None:
    """A progress record each ``every_s``: kernel ops and memcg's counters (kept in ``last``)."""
    while True:
        await asyncio.sleep(every_s)  # the sampling period, not a wait for a state
        with contextlib.suppress(ServiceFailure, OSError, ProtocolError):
            mm = (await cluster.rpc("mm", "statistics", timeout_s=2.0))["stats"]
            memcg = (await cluster.rpc("memcg", "statistics", timeout_s=2.0))["stats"]
            sample = {"ops": mm["ops"] + memcg["ops"], "cgroups": memcg.get("cgroups")}
            out.write("progress", variant=cluster.variant, **sample)
            if last is not None:
                last.update(sample, ts=round(time.time(), 6))


async def run_one(
    cluster: Cluster,
    duration_s: float,
    until_leak_s: float | None = None,
    out: RecordWriter | None = None,
    measured: dict[str, Any] | None = None,
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
            sampler = asyncio.ensure_future(_progress(cluster, out, last=measured))
        result = await experiment(cluster, duration_s, out=out, until_leak_s=until_leak_s)
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
