"""Fixtures for the deployment tests: a live stack (tests/support/livestack.py).

``live`` is the compose deployment without Docker: the six services as local
processes (kernsim.services.launch.cluster, as tests/cluster starts them), a real
Prometheus run with deploy/prometheus/prometheus.yml and rules.yml, only the
targets rewritten to the cluster's free ports and the intervals shortened, and
one round of the load generator's cycle (load, kill all, quiet).  Everything
it starts is stopped in a finally; every wait polls against a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from kernsim.services.launch.cluster import Cluster
from kernsim.services.runtime.config import SERVICES

from tests.support.livestack import (
    DEPLOY,
    LOAD_S,
    ROUNDS,
    Live,
    prometheus,
    prometheus_config,
    until_quiet,
)
from tests.support.polling import eventually_slow
from tests.support.prometheus import PROMETHEUS, query


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def live() -> AsyncIterator[Live]:
    """Vanilla 2.6.30 (none) under cluster-hdd after 9 s kamezawa rounds until the leak shows
    (at most ROUNDS), scraped by a real Prometheus."""
    if not Path(PROMETHEUS).exists():
        pytest.skip("no prometheus binary (apt-get install -y prometheus; .ci/run does)")
    cluster = Cluster(variant="none", scenario="kamezawa", faults="cluster-hdd", seed=1)
    try:
        await cluster.start()
        ports = {s: cluster.ports[s][1] for s in SERVICES}
        cfg = prometheus_config(ports, DEPLOY / "prometheus" / "rules.yml")
        async with prometheus(cfg) as base:

            async def all_up() -> bool:
                status, up = await query(base, 'sum(up{job="kernsim"})')
                return status == 200 and bool(up) and float(up[0]["value"][1]) == len(SERVICES)

            await eventually_slow(all_up, timeout_s=30)
            # The load generator's cycle: load, kill all, wait for quiet; again (up to
            # ROUNDS) until memsw stays above usage with no task, as kernsim run --until-leak.
            for n in range(ROUNDS):
                body = {"scenario": "kamezawa", "duration_s": LOAD_S, "seed": 1 + n}
                await cluster.rpc("tasks", "start_workload", body)
                # Each kill may wait up to ten periods for the tasks' progress.
                await until_quiet(cluster, LOAD_S * 12 + 60)
                await cluster.rpc("tasks", "kill_all")
                await until_quiet(cluster, 60)
                a = (await cluster.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
                if a["memsw_usage_bytes"] > a["usage_bytes"]:
                    break
            yield Live(cluster, base)
    finally:
        await cluster.stop()
