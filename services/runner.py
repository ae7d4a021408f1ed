"""Base of the services that run kernel code paths on CPUs of their own.

blockdev (bio completions in interrupt context), vmscan (kswapd, global
reclaim), workqueue (delayed work, drains) and tasks (user processes) each
hold a CpuHost and answer ``post``, ``run_path`` and ``activity``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kernsim.services.remote_cpu import CpuHost
from kernsim.services.runtime.config import ServiceConfig
from kernsim.services.runtime.metrics import counter_by
from kernsim.services.service import Service
from prometheus_client.core import Metric


class RunnerService(Service):
    #: The CPU name prefix for a code path (``irq``, ``kworker``, ``kswapd``).
    cpu_base = "cpu"

    def __init__(self, config: ServiceConfig) -> None:
        super().__init__(config)
        self.host = CpuHost(self.node, self.metrics, self.variant)
        self.host.install(self.base)
        self.metrics.add(self._runner_families)

    def base(self, path: str) -> str:
        return self.cpu_base

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), **self.host.statistics()}

    def _runner_families(self) -> Iterable[Metric]:
        yield counter_by(
            "kernsim_vmscan_results",
            "shrink_page_list() outcomes on this service's CPUs.",
            "result",
            self.host.vmscan_results,
        )
        yield counter_by(
            "kernsim_workqueue_items",
            "Code paths run here, by name.",
            "work",
            self.host.work_items,
        )
