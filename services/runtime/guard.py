"""Per-service bounds on the connections a service accepts.

Theory of operation
-------------------
Every connection is bounded on its own (connection.py: one frame buffered,
handler and call caps, a write high-water mark); this module bounds them
together, so that what a service can be made to hold does not grow with the
number of peers or with how slowly they send:

- at most ``max_connections`` accepted connections; one more is closed at
  once (and counted, ``connections_refused``);
- before its ``hello`` a connection may buffer at most ``prehello_max_bytes``
  and must say hello within ``hello_timeout_s``;
- a frame once begun must be complete within ``frame_timeout_s`` (a peer
  that drips a frame a byte at a time is closed: slowloris);
- a greeted connection with nothing in flight, no handler running and no
  frame for ``idle_timeout_s`` is closed (its peer reconnects when it needs to);
- while a connection's reading is paused, asyncio does not look at its
  socket: the guard does, and closes it when the peer has hung up.

Outgoing connections (this service's own calls to its peers) are not
counted or timed: the service opened them and closes them itself.

What a ``hello`` may claim (``check_claim``; PROTOCOL.md section 6): the
name it gives is the link's name for fault rules and metrics, so it is
checked before it is believed.  It must be addressed to this service, name
the sender as both ``s`` and ``service``, be a plain lower-case name, and not
be this service's own name; and a peer that claims the name of one of this
service's peers must connect from that peer's address when the peer table
gives an IP address (any loopback address counts as loopback).  Any other
name (``launcher``, a tool) is a client's own label.

One timer per node checks every accepted connection once a second (paused
ones four times a second), so a timeout fires up to ``CHECK_S`` late.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Callable, Mapping

from kernsim.protocol import Envelope, HandshakeRefused, NodeNotFound
from kernsim.services.runtime.config import Limits
from kernsim.services.runtime.connection import Connection

#: How often accepted connections are checked against their deadlines.
CHECK_S = 1.0
#: How often connections whose reading is paused are checked for a hung-up peer.
PAUSED_CHECK_S = 0.25


class Guard:
    """The bounds of one node's accepted connections (see the module docstring)."""

    def __init__(self, limits: Limits, note_bad: Callable[[str], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._note_bad = note_bad
        self.limits = limits
        self.accepted: set[Connection] = set()
        self.paused: set[Connection] = set()
        self.refused = 0
        self.closed_by_timeout = 0
        self._timer: asyncio.TimerHandle | None = None
        self._paused_timer: asyncio.TimerHandle | None = None

    def admit(self, conn: Connection) -> bool:
        """Count a newly accepted connection; False when the service is full."""
        if len(self.accepted) >= self.limits.max_connections:
            self.refused += 1
            self._note_bad(f"refused a connection: {self.limits.max_connections} connections open")
            return False
        self.accepted.add(conn)
        if self._timer is None:
            self._timer = self._loop.call_later(CHECK_S, self._check)
        return True

    def forget(self, conn: Connection) -> None:
        self.accepted.discard(conn)
        self.paused.discard(conn)

    def watch_paused(self, conn: Connection) -> None:
        self.paused.add(conn)
        if self._paused_timer is None:
            self._paused_timer = self._loop.call_later(PAUSED_CHECK_S, self._check_paused)

    def _check_paused(self) -> None:
        self._paused_timer = None
        for conn in list(self.paused):
            if conn.closed or not conn.read_paused:
                self.paused.discard(conn)
            elif conn.peer_gone():
                self._note_bad(f"{conn.peer} hung up while its reading was paused; closing")
                conn.close()
        if self.paused:
            self._paused_timer = self._loop.call_later(PAUSED_CHECK_S, self._check_paused)

    def _check(self) -> None:
        self._timer = None
        now = self._loop.time()
        for conn in list(self.accepted):
            why = self.overdue(conn, now)
            if why is not None:
                self.closed_by_timeout += 1
                self._note_bad(f"closing the connection from {conn.peer}: {why}")
                conn.close()
        if self.accepted:
            self._timer = self._loop.call_later(CHECK_S, self._check)

    def overdue(self, conn: Connection, now: float) -> str | None:
        """Why ``conn`` must be closed now, or None."""
        lim = self.limits
        if not conn.greeted and now - conn.opened_at > lim.hello_timeout_s:
            return f"no hello within {lim.hello_timeout_s:g} s"
        if conn.partial_since is not None and now - conn.partial_since > lim.frame_timeout_s:
            return f"a frame not completed within {lim.frame_timeout_s:g} s"
        if conn.idle() and now - conn.last_frame_at > lim.idle_timeout_s:
            return f"idle for {lim.idle_timeout_s:g} s"
        return None

    def close(self) -> None:
        for timer in (self._timer, self._paused_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._paused_timer = None

    def statistics(self) -> dict[str, int]:
        return {
            "connections_accepted_open": len(self.accepted),
            "connections_refused": self.refused,
            "connections_timed_out": self.closed_by_timeout,
        }


_CLAIM = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def check_claim(
    name: str, peers: Mapping[str, tuple[str, int]], conn: Connection, env: Envelope
) -> None:
    """Refuse a hello to ``name`` whose claimed name cannot be believed (see the docstring).

    ``peers`` is the receiver's peer table (name -> host, port).
    """
    if env.dest != name:
        raise NodeNotFound(f"this is {name}, not {env.dest!r}")
    claimed = env.body.get("service")
    if claimed != env.src:
        raise HandshakeRefused(f"hello from {env.src!r} claims to be {claimed!r}")
    if not _CLAIM.fullmatch(env.src):
        raise HandshakeRefused(f"{env.src!r} is not a service name ([a-z][a-z0-9_-], <= 32)")
    if env.src == name:
        raise HandshakeRefused(f"a peer cannot claim to be {name} itself")
    if env.src in peers and conn.accepted:
        expected = peers[env.src][0]
        remote = conn.remote_host()
        if remote is not None and not _same_host(expected, remote):
            raise HandshakeRefused(f"{env.src} is at {expected}, not {remote}")


def _same_host(expected: str, remote: str) -> bool:
    try:
        want = ipaddress.ip_address(expected)
    except ValueError:
        return True  # a host name: resolving it here would block; the token guards it
    got = ipaddress.ip_address(remote)
    if isinstance(got, ipaddress.IPv6Address) and got.ipv4_mapped is not None:
        got = got.ipv4_mapped
    return want == got or (want.is_loopback and got.is_loopback)
