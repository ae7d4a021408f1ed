"""How ``kernsim run`` / ``kernsim up`` start and end: setup errors, signals, the token.

A run can end four ways besides its verdict (statuses from kernsim.exits): a
service dies (Exit.SERVICE, see cluster.py), the environment is wrong before
anything was measured (a setup error, Exit.SETUP, one line: a bad token, a
service that refused its configuration, a port or folder that cannot be used),
or the launcher is told to stop by SIGTERM or SIGINT (128 + the signal's
number, after stopping every service and writing what was measured).  A setup
error is never reported as a finding: exit 1 means "invariants violated" and
nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from kernsim.protocol import HandshakeRefused, ProtocolError
from kernsim.services.launch.cluster import Cluster, ServiceFailure

from kernsim.exits import Exit

T = TypeVar("T")

#: The exit status of a service that refused its configuration (config.check_exposure, argparse).
SERVICE_CONFIG_STATUS = Exit.USAGE
ENV_TOKEN = "KERNSIM_TOKEN"


class SetupError(RuntimeError):
    """The cluster could not be set up; the message is one line for the user."""


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived; the cluster has been stopped."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")


def token_from_env() -> str | None:
    """The shared token the services are given (and the launcher must say in its hello)."""
    return os.environ.get(ENV_TOKEN) or None


async def start_cluster(cluster: Cluster) -> None:
    """``cluster.start()``, then a hello and a ping to every service; setup failures named.

    Remote services (``--services``) must run the variant asked for; the run
    reports the fault profile they run."""
    try:
        await cluster.start()
        for name in cluster.service_names():
            await cluster.rpc(name, "ping", timeout_s=10.0)
        if cluster.remote is not None:
            await _check_remote(cluster)
    except HandshakeRefused as exc:
        raise SetupError(f"the services refused the launcher's hello: {exc.text}") from exc
    except ServiceFailure as exc:
        dead = cluster.dead()
        if dead is not None and dead[1] == SERVICE_CONFIG_STATUS:
            why = _log_message(cluster.log_tail(dead[0], lines=1)) or "see its log"
            raise SetupError(f"service {dead[0]} refused its configuration: {why}") from exc
        raise
    except (OSError, ProtocolError) as exc:
        raise SetupError(f"cannot set up the cluster: {exc}") from exc


async def _check_remote(cluster: Cluster) -> None:
    stats = await cluster.statistics()
    wrong = {n: s["variant"] for n, s in stats.items() if s["variant"] != cluster.variant}
    if wrong:
        found = ", ".join(f"{n} runs {v}" for n, v in wrong.items())
        raise SetupError(f"the services do not run variant {cluster.variant} ({found})")
    profiles = {s["faults"] for s in stats.values()}
    if len(profiles) != 1:
        raise SetupError(f"the services run different fault profiles: {sorted(profiles)}")
    cluster.faults = profiles.pop()


def parse_services(text: str) -> dict[str, tuple[str, int]]:
    """``--services mm=HOST:PORT,...``: every one of the six, each once."""
    from kernsim.services.runtime.config import SERVICES, parse_peers

    remote = parse_peers(text)
    missing = [s for s in SERVICES if s not in remote]
    extra = [s for s in remote if s not in SERVICES]
    if missing or extra:
        raise ValueError(
            f"--services must give the six services (missing: {', '.join(missing) or '-'}; "
            f"unknown: {', '.join(extra) or '-'})"
        )
    return remote


def _log_message(line: str) -> str:
    """The text of a service's JSON log line (plumbing.JsonFormatter), or the line itself."""
    try:
        return str(json.loads(line)["msg"])
    except (ValueError, KeyError, TypeError):
        return line.strip()


async def interruptible(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; SIGTERM or SIGINT cancels it (its cleanup runs) and raises Interrupted."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    got: list[int] = []

    def on_signal(signum: int) -> None:
        if not got:  # a second signal must not cut the cleanup short
            got.append(signum)
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await task
    except asyncio.CancelledError:
        if got:
            raise Interrupted(got[0]) from None
        raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
