"""Scripted controls: which links are held and which services are paused.

One `Controls` object is shared by the `FaultModel` (which labels a message
"hold" or "paused" when it is sent) and every `DelayQueue` built on it (which
keeps such messages back until release/resume). Sharing one object, rather
than copying the state into each queue, means a release can never reach the
model but miss a queue.
"""

from __future__ import annotations

Link = tuple[str, str]


class Controls:
    """Held links (src, dest) and paused services. Release and resume are
    idempotent, so an admin "release everything" needs no bookkeeping."""

    __slots__ = ("_held", "_paused", "active", "version")

    def __init__(self) -> None:
        self._held: set[Link] = set()
        self._paused: set[str] = set()
        # Bumped on every release/resume; queues compare it to know when to
        # look again at the messages they parked.
        self.version = 0
        # A plain attribute, not a property: FaultModel.on_send reads it on
        # its fast path for every message.
        self.active = False

    def hold(self, src: str, dest: str) -> None:
        self._held.add((src, dest))
        self.active = True

    def release(self, src: str, dest: str) -> None:
        self._held.discard((src, dest))
        self._changed()

    def pause(self, service: str) -> None:
        self._paused.add(service)
        self.active = True

    def resume(self, service: str) -> None:
        self._paused.discard(service)
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.active = bool(self._held) or bool(self._paused)

    def is_held(self, link: Link) -> bool:
        return link in self._held

    def is_paused(self, service: str) -> bool:
        return service in self._paused

    def is_blocked(self, link: Link | None, dest: str | None) -> bool:
        return (link is not None and link in self._held) or (
            dest is not None and dest in self._paused
        )

    def held_links(self) -> list[Link]:
        return sorted(self._held)

    def paused_services(self) -> list[str]:
        return sorted(self._paused)
