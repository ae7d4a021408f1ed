"""The mail's experiment on the real cluster: vanilla 2.6.30 against 2.6.31's fix,
with a real Prometheus scraping all six services.

The interleavings come from real timing, not from a seed, so the vanilla
cluster runs up to ``ROUNDS`` load experiments of ``DURATION_S`` each (on the
same machine: a leak, once there, stays).  An experiment needs several of the
workload's 3 s kill rounds for a kill to catch swap-in readahead in flight:
over loopback TCP a fault costs about 100 times what it costs on the virtual
clock, and the cluster-hdd profile slows the disk by as much.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kernsim.services.launch.cluster import HOST, Cluster
from kernsim.services.launch.launcher import ClusterResult, experiment
from kernsim.services.runtime.config import SERVICES

from tests.support.polling import eventually
from tests.support.prometheus import PROMETHEUS, prometheus_server, query

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROFILE = "cluster-hdd"
ROUNDS = 4
DURATION_S = 15.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def vanilla() -> AsyncIterator[tuple[Cluster, list[ClusterResult]]]:
    """A vanilla cluster after up to ROUNDS rounds of load, stopping at the first leak."""
    cluster = Cluster(variant="none", scenario="kamezawa", faults=PROFILE, seed=1)
    try:
        await cluster.start()
        results: list[ClusterResult] = []
        for _ in range(ROUNDS):
            results.append(await experiment(cluster, DURATION_S))
            if results[-1].to_dict()["memsw_leak_bytes"] > 0:
                break
        yield cluster, results
    finally:
        await cluster.stop()


async def test_vanilla_breaks_the_swap_invariants(
    vanilla: tuple[Cluster, list[ClusterResult]],
) -> None:
    _, results = vanilla
    kinds = {v.kind for r in results for v in r.violations}
    assert "swap_slot_in_use" in kinds or "memsw_leak" in kinds, [r.to_dict() for r in results]
    assert "service_error" not in kinds and "memsw_accounting" not in kinds
    for r in results:
        assert r.swap_slots_used_after_global_reclaim == 0  # global reclaim frees them all


async def test_vanilla_leaks_memsw(vanilla: tuple[Cluster, list[ClusterResult]]) -> None:
    _, results = vanilla
    leak = results[-1].to_dict()["memsw_leak_bytes"]
    seen = [(r.to_dict()["swap_slots_used"], r.stale_swapcache_pages) for r in results]
    assert leak > 0, f"no memsw leak in {len(results)} experiments (slots, stale pages: {seen})"
    assert leak % 4096 == 0
    assert "memsw_leak" in {v.kind for v in results[-1].violations}


async def test_upstream_does_not_leak() -> None:
    cluster = Cluster(variant="upstream", scenario="kamezawa", faults=PROFILE, seed=1)
    try:
        await cluster.start()
        r = (await experiment(cluster, DURATION_S)).to_dict()
    finally:
        await cluster.stop()
    assert r["memsw_leak_bytes"] == 0, r
    # Readahead pages still under I/O when their task exits stay in the swap cache,
    # charged (swap_slot_in_use), under 2.6.31 too: only memsw must add up.
    kinds = {v["kind"] for v in r["violations"]}
    assert not kinds & {"memsw_leak", "memsw_accounting", "service_error"}, r["violations"]
    assert r["swap_slots_used_after_global_reclaim"] == 0


def prometheus(cluster: Cluster) -> contextlib.AbstractAsyncContextManager[str]:
    """Prometheus scraping the cluster's six admin ports every second."""
    targets = ", ".join(f"'{HOST}:{cluster.ports[s][1]}'" for s in SERVICES)
    return prometheus_server(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: kernsim\n    static_configs:\n"
        f"      - targets: [{targets}]\n"
    )


async def _query(base: str, promql: str) -> list[dict[str, Any]]:
    status, result = await query(base, promql)
    return result if status == 200 else []


async def test_prometheus_sees_the_leak_the_services_report(
    vanilla: tuple[Cluster, list[ClusterResult]],
) -> None:
    if not Path(PROMETHEUS).exists():
        pytest.skip("no prometheus binary (apt-get install -y prometheus; .ci/run does)")
    cluster, _ = vanilla
    stats = (await cluster.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
    reported = stats["memsw_usage_bytes"] - stats["usage_bytes"]
    async with prometheus(cluster) as base:

        async def all_up() -> bool:
            up = await _query(base, "sum(up)")
            return bool(up) and float(up[0]["value"][1]) == len(SERVICES)

        await eventually(all_up, timeout_s=30, every_s=0.5)

        async def leak() -> list[dict[str, Any]]:
            return await _query(
                base,
                'kernsim_memcg_memsw_usage_bytes{cgroup="/A"} - '
                'kernsim_memcg_usage_bytes{cgroup="/A"}',
            )

        result = await eventually(leak, timeout_s=30, every_s=0.5)
        assert float(result[0]["value"][1]) == reported
        gauge = await _query(base, 'kernsim_memcg_memsw_leak_bytes{cgroup="/A"}')
        assert float(gauge[0]["value"][1]) == max(0, reported)
        mm = (await cluster.rpc("mm", "statistics"))["stats"]["mm"]
        slots = await _query(base, "kernsim_swap_slots_used")
        assert float(slots[0]["value"][1]) == mm["swap_slots_used"]
        # Every service exports the message counter; the state owners their state.
        for metric in (
            "kernsim_messages_total",
            "kernsim_swap_slots_total",
            "kernsim_rpc_latency_seconds_count",
        ):
            assert await eventually(lambda m=metric: _query(base, m), timeout_s=10)
