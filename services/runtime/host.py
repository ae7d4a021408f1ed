"""What a connection needs from its node, and the bounds it is given.

``Connection`` calls its node back only through ``Host``; the node implements
it.  Declaring the interface here, beside the settings, keeps connection.py
from importing the node (and the node from reaching into a connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kernsim.protocol import MAX_FRAME_BYTES, Wire

if TYPE_CHECKING:
    from kernsim.services.runtime.connection import Connection

__all__ = ["MAX_HANDLERS", "MAX_IN_FLIGHT", "ConnectionSettings", "Host"]

MAX_IN_FLIGHT = 1024
MAX_HANDLERS = 4096


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """A connection's bounds; the node builds one from its configuration."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    max_in_flight: int = MAX_IN_FLIGHT
    max_handlers: int = MAX_HANDLERS
    rpc_timeout_s: float = 30.0
    #: Bytes an accepted connection may buffer before its hello (Limits.prehello_max_bytes).
    prehello_max_bytes: int = 4096


class Host(Protocol):
    """What a connection needs from the node it belongs to."""

    @property
    def name(self) -> str: ...

    def on_object(self, conn: Connection, obj: Any) -> None:
        """One decoded frame, to be validated and dispatched."""

    def send(self, conn: Connection, wire: Wire, kind: str) -> None:
        """Frame ``wire`` and send it on ``conn`` (through the fault layer for kernel ``kind``)."""

    def call_started(self) -> None:
        """A call is pending: make sure its deadline will be swept."""

    def count(self, stat: str) -> None:
        """Add one to the node's counter ``stat``."""

    def note_bad(self, text: str) -> None:
        """A rate-limited log line about bad input."""

    def watch_paused(self, conn: Connection) -> None:
        """Reading from ``conn`` paused: check now and then whether its peer hung up."""

    def connection_closed(self, conn: Connection) -> None:
        """``conn`` is closed: forget it."""
