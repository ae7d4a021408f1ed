"""What every service shares: config, node, fault layer, metrics, admin app, main().

A service subclass fills ``node.handlers`` with its message handlers, may add
metric families and admin routes, and lists its counters in ``statistics()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from kernsim.protocol import Envelope
from kernsim.services.catalog import KERNEL_TYPES, registry
from kernsim.services.runtime import Body, Node, setup_logging, stop_on_signals
from kernsim.services.runtime.admin import build_app, start_app
from kernsim.services.runtime.config import InsecureConfig, ServiceConfig, check_exposure
from kernsim.services.runtime.faultlayer import FaultLayer
from kernsim.services.runtime.metrics import Metrics, build_info, counter_by
from kernsim.services.runtime.plumbing import loop_factory, loop_name, watch_lifeline
from prometheus_client.core import Metric

from kernsim.exits import Exit
from kernsim.faults import load_profile
from kernsim.variants import Variant, get_variant

log = logging.getLogger("kernsim.services")


class Service:
    """Base of the six services.  Build inside a running event loop."""

    name = "service"

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.variant: Variant = get_variant(config.variant)
        # Each service draws its own stream from the run's seed, so runs repeat per service.
        seed = config.seed ^ zlib.crc32(self.name.encode())
        self.fault = FaultLayer(load_profile(config.faults), seed)
        self.metrics = Metrics()
        self.node = Node(
            self.name,
            registry(),
            peers=config.peers,
            fault=self.fault,
            faultable=KERNEL_TYPES,
            rpc_timeout_s=config.rpc_timeout_s,
            token=config.token,
            limits=config.limits,
        )
        self.node.handlers["ping"] = lambda env: {}
        self.node.handlers["statistics"] = self._statistics_msg
        self.metrics.add(self._common_families)
        self.port = 0
        self.admin_port = 0
        #: The event loop it runs on (``asyncio`` or ``uvloop``), set by start().
        self.event_loop = ""
        self._runner: web.AppRunner | None = None

    def _statistics_msg(self, env: Envelope) -> Body:
        return {"stats": self.statistics()}

    def statistics(self) -> dict[str, Any]:
        """Counters for /statistics and the ``statistics`` message; subclasses extend it."""
        return {
            "service": self.name,
            "variant": self.variant.name,
            "faults": self.fault.profile.name,
            "event_loop": self.event_loop,
            "node": self.node.statistics(),
            "fault_layer": dict(self.fault.model.statistics()),
        }

    def _common_families(self) -> Iterable[Metric]:
        sent = self.node.sent
        from prometheus_client.core import CounterMetricFamily

        msgs = CounterMetricFamily(
            "kernsim_messages", "Messages sent, by link.", labels=["src", "dest"]
        )
        for (src, dest), n in sorted(sent.items()):
            msgs.add_metric([src, dest], n)
        yield msgs
        kinds = self.fault.model.statistics()["kinds"]
        yield counter_by("kernsim_faults_injected", "Fault layer verdicts, by kind.", "kind", kinds)
        yield build_info(self.variant.name, self.config.scenario, self.fault.profile.name)

    def add_routes(self, app: web.Application) -> None:
        """Subclasses add admin routes here (memcg's cgroupfs files)."""

    async def start(self) -> None:
        cfg = self.config
        check_exposure(cfg)
        self.event_loop = loop_name()
        try:
            self.port = await self.node.serve(cfg.host, cfg.port)
        except OSError as exc:
            raise PortUnavailable(f"rpc port {cfg.host}:{cfg.port}: {_why(exc)}") from exc
        app = build_app(self.name, self.metrics, self.statistics, self.fault, cfg.token)
        self.add_routes(app)
        try:
            self._runner, self.admin_port = await start_app(app, cfg.host, cfg.admin_port)
        except OSError as exc:
            await self.node.close()
            raise PortUnavailable(f"admin port {cfg.host}:{cfg.admin_port}: {_why(exc)}") from exc
        log.info(
            "%s serving rpc on %s:%d, admin on %d", self.name, cfg.host, self.port, self.admin_port
        )

    async def stop(self) -> None:
        await self.node.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def run(self) -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        watch_lifeline(stop)
        await self.start()
        try:
            await stop.wait()
        finally:
            log.info("%s stopping", self.name)
            await self.stop()


class PortUnavailable(Exception):
    """A port given to the service cannot be bound (in use, or not allowed)."""


def _why(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def main(cls: type[Service], argv: Sequence[str] | None = None) -> None:
    """``python -m kernsim.services.<name>``: read the config, serve until SIGTERM."""
    try:
        config = ServiceConfig.load(cls.name, argv)
    except ValueError as exc:  # a bad KERNSIM_* value: refuse the configuration, status 2
        setup_logging(cls.name, "INFO")
        log.error("%s: bad configuration: %s", cls.name, exc)
        raise SystemExit(Exit.USAGE) from exc
    setup_logging(cls.name, config.log_level)
    try:
        check_exposure(config)
    except InsecureConfig as exc:
        log.error("%s", exc)
        raise SystemExit(Exit.USAGE) from exc

    try:
        factory = loop_factory(config.event_loop)
    except ValueError as exc:  # uvloop asked for and not installed
        log.error("%s: bad configuration: %s", cls.name, exc)
        raise SystemExit(Exit.USAGE) from exc

    async def run() -> None:
        await cls(config).run()

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run())
    except PortUnavailable as exc:  # a port in use, or not ours to bind: one line, status 2
        log.error("%s: %s", cls.name, exc)
        raise SystemExit(Exit.USAGE) from exc
