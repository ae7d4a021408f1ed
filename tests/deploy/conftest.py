"""Fixtures for the deployment tests: the repo's deploy files, and a live stack.

``live`` is the compose deployment without Docker: the six services as local
processes (kernsim.services.cluster, as tests/cluster starts them), a real
Prometheus run with deploy/prometheus/prometheus.yml and rules.yml, only the
targets rewritten to the cluster's free ports and the intervals shortened, and
one round of the load generator's cycle (load, kill all, quiet).  Everything
it starts is stopped in a finally; every wait polls against a deadline.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kernsim.services.cluster import HOST, Cluster
from kernsim.services.config import SERVICES

from tests import polling
from tests.prometheus import PROMETHEUS, prometheus_server, query

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
LOAD_S = 9.0  # three of the workload's 3 s kill rounds, as the README's main job
ROUNDS = 4


#: Prometheus and compose answer slower than a service: a longer deadline, fewer polls.
eventually = functools.partial(polling.eventually, timeout_s=30.0, every_s=0.5)


def prometheus_config(ports: dict[str, int], rules: Path, interval_s: int = 1) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with the main stack's targets on ``ports``
    (service -> admin port), the compare stack dropped, and ``interval_s`` intervals."""
    cfg: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    cfg["global"]["scrape_interval"] = cfg["global"]["evaluation_interval"] = f"{interval_s}s"
    cfg["rule_files"] = [str(rules)]
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "kernsim"]
    cfg["scrape_configs"] = [job]  # the self-scrape's port 9090 is not this test's server
    groups = [g for g in job["static_configs"] if g["labels"]["stack"] == "main"]
    for g in groups:
        g["targets"] = [f"{HOST}:{ports[g['labels']['service']]}"]
    job["static_configs"] = groups
    return cfg


def prometheus(cfg: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[str]:
    return prometheus_server(yaml.safe_dump(cfg))


@dataclass
class Live:
    cluster: Cluster
    prometheus: str


async def until_quiet(cluster: Cluster, timeout_s: float) -> None:
    async def quiet() -> bool:
        return bool((await cluster.rpc("tasks", "quiesce_status"))["quiescent"])

    await eventually(quiet, timeout_s=timeout_s, every_s=0.2)


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

            await eventually(all_up, timeout_s=30)
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
