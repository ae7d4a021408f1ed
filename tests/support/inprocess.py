"""The six services in this process, on one event loop in a background thread.

Hypothesis drives examples from synchronous test code; the services keep
running between examples on their own loop, the way a real process would,
and the test reaches them over real TCP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from kernsim.services.blockdev import BlockdevService
from kernsim.services.launch.cluster import HOST, free_ports
from kernsim.services.memcg import MemcgService
from kernsim.services.mm import MmService
from kernsim.services.runtime.config import SERVICES, ServiceConfig
from kernsim.services.service import Service
from kernsim.services.tasks import TasksService
from kernsim.services.vmscan import VmscanService
from kernsim.services.workqueue import WorkqueueService

T = TypeVar("T")
CLASSES: dict[str, type[Service]] = {
    "mm": MmService,
    "memcg": MemcgService,
    "blockdev": BlockdevService,
    "vmscan": VmscanService,
    "workqueue": WorkqueueService,
    "tasks": TasksService,
}


class InProcessCluster:
    def __init__(self, rpc_timeout_s: float = 2.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        ports = free_ports(2 * len(SERVICES))
        self.ports = {s: (ports[2 * i], ports[2 * i + 1]) for i, s in enumerate(SERVICES)}
        peers = {s: (HOST, p[0]) for s, p in self.ports.items()}
        self.services: dict[str, Service] = {}

        async def start() -> None:
            for name in SERVICES:
                rpc, admin = self.ports[name]
                cfg = ServiceConfig(
                    name, port=rpc, admin_port=admin, peers=peers, rpc_timeout_s=rpc_timeout_s
                )
                svc = CLASSES[name](cfg)
                await svc.start()
                self.services[name] = svc

        self.run(start(), 30)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        async def stop() -> None:
            for svc in self.services.values():
                await svc.stop()

        try:
            self.run(stop(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
