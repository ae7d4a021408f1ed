"""The deployment's files, and the live stack the deploy tests build from them.

``Live`` is the compose deployment without Docker: the six services as local
processes, a real Prometheus run with deploy/prometheus/prometheus.yml (only the
targets rewritten to the cluster's free ports and the intervals shortened).
The fixture that starts it is ``live`` in tests/deploy/conftest.py.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kernsim.services.launch.cluster import HOST, Cluster

from tests.support.polling import eventually_slow
from tests.support.prometheus import prometheus_server

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
LOAD_S = 9.0  # three of the workload's 3 s kill rounds, as the README's main job
ROUNDS = 4


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

    await eventually_slow(quiet, timeout_s=timeout_s, every_s=0.2)
