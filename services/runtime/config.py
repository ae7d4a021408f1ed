"""Service configuration: one frozen object per service process, read in one place.

Every setting comes from the environment (``KERNSIM_*``) and can be overridden
on the command line (``--port 7001``); the launcher sets the environment.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SERVICES = ("mm", "memcg", "blockdev", "vmscan", "workqueue", "tasks")
#: The event loops a service can run on (``KERNSIM_EVENT_LOOP``).
EVENT_LOOPS = ("asyncio", "uvloop")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on the connections one service accepts (guard.py).  Defaults:

    - ``max_connections`` 64 (``KERNSIM_MAX_CONNECTIONS``): accepted connections
      open at once; the six services and a launcher use about seven.
    - ``hello_timeout_s`` 10 (``KERNSIM_HELLO_TIMEOUT_S``): a connection must say
      hello within this.
    - ``prehello_max_bytes`` 4096 (``KERNSIM_PREHELLO_MAX_BYTES``): what a
      connection may buffer before its hello (a hello is under 200 bytes).
    - ``frame_timeout_s`` 30 (``KERNSIM_FRAME_TIMEOUT_S``): a frame once begun
      must be complete within this.
    - ``idle_timeout_s`` 600 (``KERNSIM_IDLE_TIMEOUT_S``): a greeted connection
      with nothing in flight and no frame for this long is closed.
    """

    max_connections: int = 64
    hello_timeout_s: float = 10.0
    prehello_max_bytes: int = 4096
    frame_timeout_s: float = 30.0
    idle_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not value > 0 or value != value or value == float("inf"):
                raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        d = cls()
        return cls(
            max_connections=int(env.get("KERNSIM_MAX_CONNECTIONS", d.max_connections)),
            hello_timeout_s=float(env.get("KERNSIM_HELLO_TIMEOUT_S", d.hello_timeout_s)),
            prehello_max_bytes=int(env.get("KERNSIM_PREHELLO_MAX_BYTES", d.prehello_max_bytes)),
            frame_timeout_s=float(env.get("KERNSIM_FRAME_TIMEOUT_S", d.frame_timeout_s)),
            idle_timeout_s=float(env.get("KERNSIM_IDLE_TIMEOUT_S", d.idle_timeout_s)),
        )


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The settings of one service.  Defaults:

    - ``host`` 127.0.0.1 (``KERNSIM_HOST``): bind address for both ports.
    - ``port`` 0 (``KERNSIM_PORT``): the msgpack RPC port; 0 picks a free one.
    - ``admin_port`` 0 (``KERNSIM_ADMIN_PORT``): the HTTP admin port.
    - ``peers`` none (``KERNSIM_PEERS``, ``mm=127.0.0.1:7001,memcg=...``).
    - ``variant`` none (``KERNSIM_VARIANT``): the kernel patch under test.
    - ``scenario`` kamezawa (``KERNSIM_SCENARIO``): machine size and workload.
    - ``faults`` none (``KERNSIM_FAULTS``): fault profile name or path.
    - ``seed`` 1 (``KERNSIM_SEED``): seeds the fault layer and the workload.
    - ``page_cluster`` unset (``KERNSIM_PAGE_CLUSTER``): the scenario's default.
    - ``rpc_timeout_s`` 30 (``KERNSIM_RPC_TIMEOUT_S``): per call.
    - ``token`` unset (``KERNSIM_TOKEN``): shared secret for ``hello`` and for the
      admin API's mutating requests (``Authorization: Bearer TOKEN``).  Required
      when ``host`` is not a loopback address (see ``check_exposure``).
    - ``log_level`` INFO (``KERNSIM_LOG_LEVEL``).
    - ``event_loop`` asyncio (``KERNSIM_EVENT_LOOP``): ``asyncio``, or ``uvloop`` (libuv's
      loop, about 10% less per message on loopback; the compose image installs it).
    - ``limits``: connection bounds, see ``Limits`` (``KERNSIM_MAX_CONNECTIONS``, ...).
    """

    service: str
    host: str = "127.0.0.1"
    port: int = 0
    admin_port: int = 0
    peers: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    variant: str = "none"
    scenario: str = "kamezawa"
    faults: str = "none"
    seed: int = 1
    page_cluster: int | None = None
    rpc_timeout_s: float = 30.0
    token: str | None = None
    log_level: str = "INFO"
    event_loop: str = "asyncio"
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        # What a service's own shell would refuse later, refused here with its name, so a
        # bad KERNSIM_* value is a refused configuration (status 2), not a crash.
        if self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed}")
        if self.page_cluster is not None and not 0 <= self.page_cluster <= 8:
            raise ValueError(
                f"page_cluster must be between 0 and 8 (mm/swap.c), got {self.page_cluster}"
            )
        if not 0 < self.rpc_timeout_s < float("inf"):
            raise ValueError(f"rpc_timeout_s must be a positive number, got {self.rpc_timeout_s}")
        if self.event_loop not in EVENT_LOOPS:
            raise ValueError(
                f"event_loop must be one of {', '.join(EVENT_LOOPS)}, got {self.event_loop!r}"
            )

    @classmethod
    def load(
        cls,
        service: str,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ServiceConfig:
        """Environment first, then the command line on top."""
        env = os.environ if environ is None else environ
        p = argparse.ArgumentParser(prog=f"python -m kernsim.services.{service}")
        p.add_argument("--host", default=env.get("KERNSIM_HOST", "127.0.0.1"))
        p.add_argument("--port", type=int, default=int(env.get("KERNSIM_PORT", "0")))
        p.add_argument("--admin-port", type=int, default=int(env.get("KERNSIM_ADMIN_PORT", "0")))
        p.add_argument("--peers", default=env.get("KERNSIM_PEERS", ""))
        p.add_argument("--variant", default=env.get("KERNSIM_VARIANT", "none"))
        p.add_argument("--scenario", default=env.get("KERNSIM_SCENARIO", "kamezawa"))
        p.add_argument("--faults", default=env.get("KERNSIM_FAULTS", "none"))
        p.add_argument("--seed", type=int, default=int(env.get("KERNSIM_SEED", "1")))
        pc = env.get("KERNSIM_PAGE_CLUSTER")
        p.add_argument("--page-cluster", type=int, default=int(pc) if pc else None)
        timeout = float(env.get("KERNSIM_RPC_TIMEOUT_S", "30"))
        p.add_argument("--rpc-timeout-s", type=float, default=timeout)
        p.add_argument("--token", default=env.get("KERNSIM_TOKEN"))
        p.add_argument("--log-level", default=env.get("KERNSIM_LOG_LEVEL", "INFO"))
        p.add_argument("--event-loop", default=env.get("KERNSIM_EVENT_LOOP", "asyncio"))
        a = p.parse_args(argv)
        return cls(
            service=service,
            host=a.host,
            port=a.port,
            admin_port=a.admin_port,
            peers=parse_peers(a.peers),
            variant=a.variant,
            scenario=a.scenario,
            faults=a.faults,
            seed=a.seed,
            page_cluster=a.page_cluster,
            rpc_timeout_s=a.rpc_timeout_s,
            token=a.token or None,
            log_level=a.log_level,
            event_loop=a.event_loop,
            limits=Limits.from_env(env),
        )


class InsecureConfig(ValueError):
    """A listener would be reachable from other hosts with no token to guard it."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name, or "" / "0.0.0.0"-style wildcards: reachable from outside


def check_exposure(config: ServiceConfig) -> None:
    """Refuse to serve beyond loopback without a token.

    Anyone who can reach an unguarded port can change faults, write limits,
    start workloads and drive the kernel model; on 127.0.0.1 that is only
    this machine's users, anywhere else it is the network.
    """
    if not is_loopback(config.host) and not config.token:
        raise InsecureConfig(
            f"{config.service}: refusing to listen on {config.host!r} without a token; "
            "set KERNSIM_TOKEN (or --token), or bind 127.0.0.1"
        )


def parse_peers(text: str) -> dict[str, tuple[str, int]]:
    """``mm=127.0.0.1:7001,memcg=127.0.0.1:7002`` -> {"mm": ("127.0.0.1", 7001), ...}."""
    out: dict[str, tuple[str, int]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, addr = part.partition("=")
        host, _, port = addr.rpartition(":")
        if not name or not host or not port.isdigit():
            raise ValueError(f"bad peer {part!r}: expected name=host:port")
        out[name] = (host, int(port))
    return out


def format_peers(peers: Mapping[str, tuple[str, int]]) -> str:
    return ",".join(f"{n}={h}:{p}" for n, (h, p) in peers.items())
