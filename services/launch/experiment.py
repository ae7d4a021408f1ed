"""One experiment on a started cluster: rounds of load, then settle, check, report.

The settle-and-check step is the simulation's own (kernsim.check.settle:
``Cluster`` is its ``Settleable`` over RPC), the result is kernsim.check's
``RunResult`` with the cluster's wall-clock fields.  ``kernsim run``
(services/launch/launcher.py) starts the cluster and calls :func:`experiment`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernsim.protocol import ProtocolError
from kernsim.services.launch.cluster import Cluster, ServiceFailure
from kernsim.services.launch.records import RecordWriter

from kernsim import progress
from kernsim.check.invariants import Violation
from kernsim.check.result import RunResult
from kernsim.check.settle import settle_and_check

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
    #: Load rounds run, their wall seconds, and what ended them (``leak seen``,
    #: ``bound reached`` with --until-leak, else ``one round``).
    load_rounds: int = 1
    load_s: float = 0.0
    ended: str = "one round"
    #: With --until-leak: its bound, and the rounds the bound may not stop before.
    until_leak_s: float | None = None
    min_rounds: int = 1
    #: Swap-in reads (pages read back from swap, readahead included) during the load.
    swapin_reads: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = RunResult.to_dict(self)
        # A cluster runs on the real clock: no virtual seconds; wall_s and load_s say it.
        del d["virtual_s"]
        d.update(
            wall_s=round(self.wall_s, 3),
            ops=self.events,
            messages=self.messages,
            load_rounds=self.load_rounds,
            load_s=self.load_s,
            ended=self.ended,
            until_leak_s=self.until_leak_s,
            min_rounds=self.min_rounds,
            swapin_reads=self.swapin_reads,
        )
        return d


async def experiment(
    cluster: Cluster,
    duration_s: float,
    out: RecordWriter | None = None,
    until_leak_s: float | None = None,
    min_rounds: int = 1,
) -> ClusterResult:
    """Load rounds, then drain, check, global reclaim: one run on a started cluster.

    A load round is the scenario's workload for ``duration_s`` (kamezawa: three tasks,
    pkill every 3 s), kill all, quiescence.  Without ``until_leak_s`` one round is run.
    With it, rounds repeat (each with its own workload seed) until memsw.usage stays
    above usage with no task left (``leak seen``), or until ``min_rounds`` rounds have
    run and the next round (``duration_s`` at least) would pass ``until_leak_s`` seconds
    of rounds in all, as the wall clock counts them (load, kill, quiescence): ``bound
    reached``.  ``kernsim run``'s minimum is what a quiet machine runs within its
    README bound anyway; a loaded one, whose rounds are longer, still runs that many,
    so that its verdict rests on as many kills.  ``swapin_reads``
    says how many chances a kill had to catch a swap-in in flight.  A leak, once
    there, stays (nothing inside the memcg reclaims it), so the rounds only add kill
    rounds as Kamezawa's loop did, and the check at the end sees them all.
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
        started = time.monotonic()
        gap = await _load_round(cluster, duration_s, cluster.seed + rounds, phase)
        rounds += 1
        # What the round took, not its nominal duration: kamezawa's kills wait for the
        # tasks' progress (kernsim/workloads.py), longer on a loaded machine.
        load_s += time.monotonic() - started
        before, reads = reads, await _swapin_reads(cluster)
        # Swap-ins are the chances a kill had to catch readahead in flight (a machine loaded
        # enough kills the tasks before they touch their pages twice: none at all).
        swapins = reads - before
        phase("round_checked", round=rounds, memsw_minus_usage_bytes=gap, swapin_reads=swapins)
        if until_leak_s is None or gap > 0:
            break
        if rounds >= min_rounds and load_s + duration_s > until_leak_s:
            break
    ended = "leak seen" if gap > 0 else "bound reached" if until_leak_s is not None else "one round"
    wall_load = time.monotonic() - t0
    findings = await settle_and_check(
        cluster, lambda text: progress.phase(f"{cluster.variant}: {text}")
    )
    stats = await cluster.statistics()
    findings.violations += _crashes(stats)
    results: dict[str, int] = {}
    for svc in ("tasks", "vmscan"):
        for k, v in stats[svc]["vmscan_results"].items():
            results[k] = results.get(k, 0) + v
    return ClusterResult.build(
        findings,
        scenario=cluster.scenario,
        variant=cluster.variant,
        seed=cluster.seed,
        faults=cluster.faults,
        events=stats["mm"]["ops"] + stats["memcg"]["ops"],
        virtual_s=wall_load,
        vmscan_results=results,
        wall_s=time.monotonic() - t0,
        messages=sum(s["node"]["messages_sent"] for s in stats.values()),
        load_rounds=rounds,
        load_s=round(load_s, 3),
        ended=ended,
        until_leak_s=until_leak_s,
        min_rounds=min_rounds if until_leak_s is not None else 1,
        swapin_reads=reads - reads0,
    )


async def _swapin_reads(cluster: Cluster) -> int:
    """Swap-in reads completed so far (end_swap_bio_read runs on blockdev)."""
    stats = (await cluster.rpc("blockdev", "statistics"))["stats"]
    return int(stats["work_items"].get("end_swap_bio_read", 0))


async def _load_round(
    cluster: Cluster, duration_s: float, seed: int, phase: Callable[..., None]
) -> int:
    """One round of load, kill all, quiescence; memsw.usage - usage of /A with no task left."""
    await cluster.rpc(
        "tasks",
        "start_workload",
        {"scenario": cluster.scenario, "duration_s": float(duration_s), "seed": seed},
    )
    phase("workload_started", seed=seed)
    # As long as the machine makes it (kamezawa's kills wait for the tasks' progress),
    # while the kernel makes progress.
    await cluster.wait_quiescent("the workload")
    await cluster.kill_all()
    phase("killed_all")
    await cluster.wait_quiescent()
    phase("quiescent")
    a = (await cluster.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
    return int(a["memsw_usage_bytes"]) - int(a["usage_bytes"])


def _crashes(stats: dict[str, Any]) -> list[Violation]:
    """A kernel BUG_ON or a failed code path anywhere is a violation, named by service.

    A code path abandoned half-way because its RPC failed (no reply in time, a lost link)
    is no finding of the kernel's: the owner may have run the primitive anyway, so the
    model is half-way and any verdict drawn from it would be the cluster's, not the
    kernel's.  That ends the run as a ServiceFailure (exit 3), naming the code path."""
    for name, s in stats.items():
        abandoned = s.get("abandoned_texts", [])
        if abandoned:
            raise ServiceFailure(
                name, f"a kernel code path was abandoned half-way, no verdict: {abandoned[0]}"
            )
    out = []
    for name, s in stats.items():
        for text in s["node"]["crash_texts"] + s.get("crash_texts", []):
            out.append(Violation("service_error", f"{name}: {text}"))
    return out


async def sample_progress(
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
