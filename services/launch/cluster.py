"""A local cluster: the six services as processes on free 127.0.0.1 ports.

``Cluster`` starts them, waits for every /healthz, gives the launcher an RPC
connection to each, and stops them all however the run ends.  Anything that
waits on the services goes through ``watched``/``rpc``: a process that exits
or a call that times out becomes a ``ServiceFailure`` naming the service, so
a run can fail but never hang.  A liveness monitor pings every service a few
times a second with its own short timeout, so that a stopped (SIGSTOP) or
wedged service is named as itself, not as the caller stuck behind it.  Its
waits are judged by progress, not by deadlines a quiet machine meets
(patience.py).

``Cluster`` is also the checks' ``Settleable`` (kernsim.check.settle): kill all
and quiesce, drain, the state (rebuilt from mm's and memcg's snapshots) and
global reclaim, each over RPC, so a run on the cluster settles and checks with
the simulation's own ``settle_and_check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from kernsim.protocol import ProtocolError, RequestTimeout
from kernsim.services.catalog import registry
from kernsim.services.launch.patience import (
    START_IDLE_S,
    START_MAX_S,
    Stalled,
    StartWatch,
    until_done_or_stalled,
)
from kernsim.services.launch.records import proc_state
from kernsim.services.runtime import Body, Node
from kernsim.services.runtime.config import SERVICES, format_peers
from kernsim.services.runtime.plumbing import ENV_LIFELINE_FD
from kernsim.services.snapshot import memcg_restore, mm_restore

from kernsim.check.invariants import Violation
from kernsim.check.settle import State

T = TypeVar("T")
HOST = "127.0.0.1"
POLL_S = 0.05
#: How many times the services start on new ports when one found its port taken.
PORT_TRIES = 3
#: How often the liveness monitor pings each service.
LIVENESS_EVERY_S = 0.5


class ServiceFailure(RuntimeError):
    """A service died or stopped answering."""

    def __init__(self, service: str, why: str) -> None:
        super().__init__(f"service {service} {why}")
        self.service = service


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Cluster:
    variant: str = "none"
    scenario: str = "kamezawa"
    faults: str = "none"
    seed: int = 1
    page_cluster: int | None = None
    log_level: str = "WARNING"
    rpc_timeout_s: float = 30.0
    #: The services' calls to one another (KERNSIM_RPC_TIMEOUT_S).  An abandoned kernel
    #: call still runs on its owner, leaving its code path (and the model) half-way: a
    #: loaded machine makes it slow, never abandoned.  The liveness monitor and the
    #: waits (patience.py) name what is stuck; this bound is the last resort.
    service_rpc_timeout_s: float = 3600.0
    #: A service that does not answer a ping within this is reported as stuck.
    liveness_timeout_s: float = 5.0
    #: How long a wait for the workload to end or for quiescence may see no kernel step
    #: (the wait itself takes what the machine makes it; patience.py), and the longest
    #: global reclaim.
    settle_timeout_s: float = 120.0
    #: The longest any such wait, however the kernel progresses.
    wait_max_s: float = 3600.0
    token: str | None = None
    #: Services already running elsewhere (name -> RPC host, port): nothing is
    #: spawned or stopped, the launcher only connects (``kernsim run --services``).
    remote: dict[str, tuple[str, int]] | None = None
    ports: dict[str, tuple[int, int]] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Where the services' logs go.  None: a temporary folder made by ``start``
    #: and removed by ``stop`` (``kernsim run --out DIR`` keeps them in DIR/logs).
    log_dir: Path | None = None
    node: Node | None = None
    unresponsive: tuple[str, str] | None = None
    _monitor: asyncio.Task[None] | None = None
    _own_log_dir: bool = False
    #: The write end of the lifeline pipe: held open while the cluster runs.
    _lifeline: int | None = None

    def service_names(self) -> tuple[str, ...]:
        return SERVICES

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def admin_url(self, service: str) -> str:
        return f"http://{HOST}:{self.ports[service][1]}"

    def addresses(self) -> dict[str, dict[str, Any]]:
        """Where each service listens, for the records."""
        if self.remote is not None:
            return {n: {"host": h, "rpc": p} for n, (h, p) in self.remote.items()}
        return {n: {"host": HOST, "rpc": p[0], "admin": p[1]} for n, p in self.ports.items()}

    async def start(
        self, health_max_s: float = START_MAX_S, health_idle_s: float = START_IDLE_S
    ) -> None:
        """Spawn the six services and wait until each answers /healthz.

        The wait is judged by the services' CPU time, not the wall clock (patience.py):
        a loaded machine starts them slowly; one that exits, is stopped, or uses no CPU
        for ``health_idle_s`` fails the start at once, naming it; ``health_max_s`` bounds
        the whole start."""
        if self.remote is not None:
            return self._connect(self.remote)
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="kernsim-"))
            self._own_log_dir = True
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # A port found free may be taken before its service binds it (another cluster
        # starting at the same time): the services then start again on other ports.
        for tries_left in reversed(range(PORT_TRIES)):
            try:
                return await self._start_local(health_max_s, health_idle_s)
            except ServiceFailure:
                if not tries_left or not self._lost_a_port():
                    raise
                await self._end_procs()

    def _lost_a_port(self) -> bool:
        """Whether a service exited because its port was taken."""
        dead = self.dead()
        return dead is not None and "address already in use" in self.log_tail(dead[0]).lower()

    async def _start_local(self, health_max_s: float, health_idle_s: float) -> None:
        ports = free_ports(2 * len(SERVICES))
        self.ports = {s: (ports[2 * i], ports[2 * i + 1]) for i, s in enumerate(SERVICES)}
        peers = format_peers({s: (HOST, p[0]) for s, p in self.ports.items()})
        # Every service gets the read end; only this process holds the write end
        # (os.pipe's descriptors are not inherited), so its exit closes it.
        lifeline_r, self._lifeline = os.pipe()
        try:
            for name in SERVICES:
                self.procs[name] = self._spawn(name, peers, lifeline_r)
        finally:
            os.close(lifeline_r)
        loop = asyncio.get_running_loop()
        healthy: set[str] = set()
        watch = StartWatch(self.pids(), loop.time(), health_idle_s)
        await self.watched(
            self._wait_healthy(healthy),
            health_max_s,
            "health check",
            stuck=lambda: watch.check(loop.time(), [s for s in SERVICES if s not in healthy]),
        )
        self._connect({s: (HOST, p[0]) for s, p in self.ports.items()})

    def _connect(self, peers: dict[str, tuple[str, int]]) -> None:
        """The launcher's node to the services, and the liveness monitor."""
        self.node = Node(
            "launcher", registry(), peers=peers, rpc_timeout_s=self.rpc_timeout_s, token=self.token
        )
        self._monitor = asyncio.ensure_future(self._watch_liveness())

    async def _watch_liveness(self) -> None:
        """Ping every service; the first that misses its deadline is marked unresponsive."""
        assert self.node is not None
        node = self.node

        async def ping(name: str) -> None:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            try:
                conn = await asyncio.wait_for(node.peer(name), self.liveness_timeout_s)
                await conn.call("ping", {}, self.liveness_timeout_s)
            except (TimeoutError, OSError, ProtocolError):
                # A lost connection fails at once: that is a death, which dead()
                # reports with its exit status.  Only a ping that waited its full
                # deadline names a service that is alive but not answering.
                if loop.time() - t0 < self.liveness_timeout_s or self.unresponsive:
                    return
                proc = self.procs.get(name)
                stopped = proc is not None and proc_state(proc.pid) == "T"
                why = f"no reply to ping in {self.liveness_timeout_s:g} s"
                self.unresponsive = (
                    name,
                    f"stopped answering ({why}{'; process is stopped' if stopped else ''})",
                )

        while self.unresponsive is None:
            await asyncio.gather(*(ping(name) for name in SERVICES))
            await asyncio.sleep(LIVENESS_EVERY_S)  # the ping period, not a wait for a state

    def _spawn(self, name: str, peers: str, lifeline: int) -> subprocess.Popen[bytes]:
        assert self.log_dir is not None
        rpc, admin = self.ports[name]
        env = {
            **os.environ,
            "KERNSIM_PORT": str(rpc),
            "KERNSIM_ADMIN_PORT": str(admin),
            "KERNSIM_PEERS": peers,
            "KERNSIM_VARIANT": self.variant,
            "KERNSIM_SCENARIO": self.scenario,
            "KERNSIM_FAULTS": self.faults,
            "KERNSIM_SEED": str(self.seed),
            "KERNSIM_LOG_LEVEL": self.log_level,
            "KERNSIM_RPC_TIMEOUT_S": str(self.service_rpc_timeout_s),
            ENV_LIFELINE_FD: str(lifeline),
        }
        if self.token is not None:
            env["KERNSIM_TOKEN"] = self.token
        if self.page_cluster is not None:
            env["KERNSIM_PAGE_CLUSTER"] = str(self.page_cluster)
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (the child owns it)
        try:
            return subprocess.Popen(
                [sys.executable, "-m", f"kernsim.services.{name}"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lifeline,),
            )
        finally:
            log.close()

    async def _wait_healthy(self, healthy: set[str]) -> None:
        """Poll every service not yet in ``healthy`` until all six answer /healthz."""

        async def healthz(http: aiohttp.ClientSession, name: str) -> None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(self.admin_url(name) + "/healthz") as resp:
                    if resp.status == 200:
                        healthy.add(name)

        # One request's timeout is generous: a loaded machine answers late, not never.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            while waiting := [name for name in SERVICES if name not in healthy]:
                await asyncio.gather(
                    *(healthz(http, name) for name in waiting), asyncio.sleep(POLL_S)
                )

    def dead(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    async def watched(
        self,
        aw: Awaitable[T],
        timeout_s: float,
        what: str,
        stuck: Callable[[], tuple[str, str] | None] | None = None,
    ) -> T:
        """Await ``aw`` while watching the processes; a death or the deadline fails it,
        and so does ``stuck`` when it names a service (and why)."""
        task = asyncio.ensure_future(aw)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.1)
                if done:
                    return task.result()
                if (dead := self.dead()) is not None:
                    raise ServiceFailure(dead[0], f"exited with status {dead[1]} ({what})")
                if self.unresponsive is not None:
                    raise ServiceFailure(*self.unresponsive)
                if stuck is not None and (found := stuck()) is not None:
                    raise ServiceFailure(found[0], f"{found[1]} ({what})")
                if loop.time() > deadline:
                    raise ServiceFailure("cluster", f"did not finish {what} in {timeout_s:.0f} s")
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def rpc(
        self, service: str, type_: str, body: Body | None = None, timeout_s: float = 30.0
    ) -> Body:
        """One request to ``service``; a timeout or lost connection names the service."""
        assert self.node is not None
        try:
            conn = await self.watched(self.node.peer(service), 10.0, f"connect to {service}")
            return await self.watched(
                conn.call(type_, body or {}, timeout_s), timeout_s + 1, f"{type_} on {service}"
            )
        except RequestTimeout as exc:
            raise ServiceFailure(service, f"stopped answering ({exc.text})") from exc
        except (OSError, ProtocolError) as exc:
            if (dead := self.dead()) is not None:
                raise ServiceFailure(dead[0], f"exited with status {dead[1]}") from exc
            raise

    async def statistics(self) -> dict[str, Any]:
        out = {}
        for name in SERVICES:
            out[name] = (await self.rpc(name, "statistics"))["stats"]
        return out

    async def stop(self) -> None:
        """SIGTERM everyone, then SIGKILL whoever is still there after a grace period."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(BaseException):
                await self._monitor
        if self.node is not None:
            await self.node.close()
        await self._end_procs()
        if self._own_log_dir and self.log_dir is not None:
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self._own_log_dir = False

    async def _end_procs(self) -> None:
        """SIGTERM every service process, SIGKILL after a grace period; close the lifeline."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                # A stopped process keeps SIGTERM pending until it runs again.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while loop.time() < deadline and any(p.poll() is None for p in self.procs.values()):
            await asyncio.sleep(POLL_S)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    # --- kernsim.check.settle.Settleable, over RPC -----------------------------------

    async def kill_all(self) -> None:
        """pkill: every task of /A gets SIGKILL (tasks service)."""
        await self.rpc("tasks", "kill_all")

    async def wait_quiescent(self, what: str = "quiescence") -> None:
        """Until no workload, no task and no code path is left (tasks' quiesce_status).

        However long the machine makes it take, while the kernel makes progress: it
        fails when mm and memcg ran no primitive for ``settle_timeout_s``."""

        async def until_quiet() -> None:
            # Asking the code-path services how busy they are takes longer under load.
            wait_s = self.settle_timeout_s
            while not (await self.rpc("tasks", "quiesce_status", None, wait_s))["quiescent"]:
                await asyncio.sleep(0.1)

        async def or_stalled() -> None:
            try:
                await until_done_or_stalled(until_quiet(), self.kernel_ops, self.settle_timeout_s)
            except Stalled as exc:
                raise ServiceFailure("cluster", f"did not finish {what}: {exc}") from exc

        await self.watched(or_stalled(), self.wait_max_s, what)

    async def kernel_ops(self) -> int:
        """Primitives mm and memcg have run so far: grows while the kernel works."""
        ops = 0
        for name in ("mm", "memcg"):
            stats = await self.rpc(name, "statistics", timeout_s=self.settle_timeout_s)
            ops += int(stats["stats"]["ops"])
        return ops

    async def quiesce(self) -> None:
        await self.kill_all()
        await self.wait_quiescent()

    async def drain(self) -> None:
        await self.rpc("workqueue", "run_path", {"path": "lru_add_drain_all"})

    async def state(self) -> State:
        mm = mm_restore((await self.rpc("mm", "snapshot"))["state"])
        memcg = (await self.rpc("memcg", "snapshot"))["state"]
        found = [Violation(kind, msg) for kind, msg in memcg["violations"]]
        return State(mm, memcg_restore(memcg), found)

    async def global_reclaim(self) -> None:
        body = {"path": "global_reclaim"}
        await self.rpc("vmscan", "run_path", body, timeout_s=self.settle_timeout_s)

    def explain(self, violations: list[Violation]) -> None:
        """Nothing to add: the cluster keeps no trace (the services' logs tell the rest)."""

    def log_tail(self, service: str, lines: int = 20) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{service}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
