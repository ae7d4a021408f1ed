"""The compose deployment's load generator: the scenario's workload, round after round.

``kernsim up --load`` drives services it started itself; under compose each
service has its own container, so this small client drives the ``tasks``
service over the wire instead.  Each round: start the workload for
``KERNSIM_LOAD_S`` seconds, wait until the cluster is quiet, kill whatever is
left, wait again, then rest ``KERNSIM_REST_S`` seconds with no task in the
cgroup.  The rest is what makes the leak readable on a dashboard: with no task
left, whatever memsw.usage shows above usage is swap charged to nobody, the
leak (the KernsimMemswLeak alert waits for exactly that); each rest logs that
reading as one line: ``rest after round 7: memsw-usage 12288 B (12 KiB), ...``.

Settings (besides the services' own KERNSIM_* ones, read by ServiceConfig):
``KERNSIM_LOAD_S`` 60, ``KERNSIM_REST_S`` 10, ``KERNSIM_ROUNDS`` 0 (forever),
``KERNSIM_SETTLE_S`` 120 (how long a cluster that is not quiet may go without
starting anything new before the round fails), ``KERNSIM_HEARTBEAT`` (file touched
while alive, for the healthcheck).
Exits non-zero when a service stops answering, so compose restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernsim.protocol import ProtocolError
from kernsim.services.catalog import registry
from kernsim.services.runtime import Body, Node, setup_logging
from kernsim.services.runtime.config import ServiceConfig
from kernsim.services.runtime.plumbing import loop_factory

log = logging.getLogger("kernsim.loadgen")
POLL_S = 0.2
#: The services that run kernel code paths (and count the ones abandoned half-way).
CODE_PATH_SERVICES = ("tasks", "vmscan", "workqueue", "blockdev")


@dataclass(frozen=True, slots=True)
class LoadConfig:
    load_s: float = 60.0
    rest_s: float = 10.0
    rounds: int = 0
    settle_s: float = 120.0
    heartbeat: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoadConfig:
        beat = env.get("KERNSIM_HEARTBEAT")
        return cls(
            load_s=float(env.get("KERNSIM_LOAD_S", "60")),
            rest_s=float(env.get("KERNSIM_REST_S", "10")),
            rounds=int(env.get("KERNSIM_ROUNDS", "0")),
            settle_s=float(env.get("KERNSIM_SETTLE_S", "120")),
            heartbeat=Path(beat) if beat else None,
        )


class LoadGen:
    def __init__(self, svc: ServiceConfig, load: LoadConfig) -> None:
        self.svc = svc
        self.load = load
        self.node = Node(
            "loadgen",
            registry(),
            peers=svc.peers,
            rpc_timeout_s=svc.rpc_timeout_s,
            token=svc.token,
        )

    def beat(self) -> None:
        if self.load.heartbeat is not None:
            self.load.heartbeat.touch()

    async def call(self, type_: str, body: Body | None = None, to: str = "tasks") -> Body:
        conn = await self.node.peer(to)
        return await conn.call(type_, body or {})

    async def verdict(self, n: int) -> str:
        """The rest's reading, as the mail's test reads it: memsw.usage - usage of /A with no
        task left (the leak), stale swap cache pages and swap slots in use."""
        memcg = (await self.call("statistics", to="memcg"))["stats"]["cgroups"]["/A"]
        mm = (await self.call("statistics", to="mm"))["stats"]
        gap = int(memcg["memsw_usage_bytes"]) - int(memcg["usage_bytes"])
        line = (
            f"rest after round {n}: memsw-usage {gap} B ({gap / 1024:.0f} KiB), "
            f"usage {memcg['usage_bytes']} B, memsw.usage {memcg['memsw_usage_bytes']} B, "
            f"tasks {memcg['tasks']}, stale {mm['stale_swapcache_pages']}, "
            f"slots {mm['mm']['swap_slots_used']}"
        )
        # A code path whose RPC failed stopped half-way and left the model half-way too:
        # from then on the readings are the cluster's, not the kernel's.
        abandoned = 0
        for svc in CODE_PATH_SERVICES:
            abandoned += len((await self.call("statistics", to=svc))["stats"]["abandoned_texts"])
        if abandoned:
            line += f"; NOT the kernel's: {abandoned} code paths abandoned half-way (RPC failed)"
        return line

    async def until_quiet(self, what: str) -> None:
        """Poll tasks' quiesce_status until the cluster is quiet.  A round has no fixed
        length (kamezawa's kills wait for the tasks' progress, longer on a loaded
        machine), so what fails it is a cluster that starts no new code path or task
        for ``settle_s`` while not quiet: stuck, not slow."""
        started, end = -1, 0.0
        while not (await self.call("quiesce_status"))["quiescent"]:
            self.beat()
            now_started = (await self.call("activity"))["started"]
            if now_started != started:
                started, end = now_started, time.monotonic() + self.load.settle_s
            elif time.monotonic() > end:
                raise TimeoutError(
                    f"cluster not quiet after {what}, and nothing new started for "
                    f"{self.load.settle_s:.0f} s"
                )
            await asyncio.sleep(POLL_S)

    async def round(self, n: int) -> None:
        seed = self.svc.seed + n  # each round its own schedule, the whole run repeatable
        log.info("round %d: %s for %.0f s, seed %d", n, self.svc.scenario, self.load.load_s, seed)
        body = {"scenario": self.svc.scenario, "duration_s": self.load.load_s, "seed": seed}
        await self.call("start_workload", body)
        await self.until_quiet("the workload")
        await self.call("kill_all")
        await self.until_quiet("kill_all")
        log.info("%s", await self.verdict(n))
        rest_end = time.monotonic() + self.load.rest_s
        while time.monotonic() < rest_end:
            self.beat()
            await asyncio.sleep(min(1.0, max(0.0, rest_end - time.monotonic())))

    async def run(self) -> None:
        self.beat()
        try:
            # A restarted load generator may find the previous round still running.
            await self.until_quiet("a previous run")
            n = 0
            while self.load.rounds == 0 or n < self.load.rounds:
                await self.round(n)
                n += 1
        finally:
            await self.node.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        svc = ServiceConfig.load("loadgen", argv)
        factory = loop_factory(svc.event_loop)
        load = LoadConfig.from_env(os.environ)
    except ValueError as exc:  # a bad KERNSIM_* value, or uvloop asked for and not installed
        setup_logging("loadgen", "INFO")
        log.error("load generator: bad configuration: %s", exc)
        return 2
    setup_logging("loadgen", svc.log_level)

    async def run() -> None:
        await LoadGen(svc, load).run()

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run())
    except (TimeoutError, OSError, ProtocolError) as exc:
        log.error("load generator stopped: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
