"""The fault layer: kernsim.faults' model on the real network's send path.

Every kernel message a service sends is judged by the same ``FaultModel`` the
simulation uses, against the event loop's clock.  A message due now goes
straight to its connection; a later one waits in a ``DelayQueue`` (the heap
that makes reordering happen) behind one timer armed for the earliest
delivery.  Held links and paused services stay in the queue until released.

Delays under ``MIN_TIMER_S`` are delivered at once: asyncio rounds any timer
up to about a millisecond, which would turn a 40 µs link into a 1 ms one,
and loopback TCP already takes tens of microseconds on its own.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from typing import Any, Protocol

from kernsim.faults import DelayQueue, FaultModel, Profile, Rule, load_profile

MIN_TIMER_S = 0.001


class Writable(Protocol):
    def write(self, frame: bytes) -> None: ...


class FaultLayer:
    """Wraps a FaultModel and a DelayQueue around frame writes."""

    def __init__(self, profile: Profile, seed: int) -> None:
        self.model = FaultModel(profile, random.Random(seed))
        self.queue: DelayQueue[tuple[Writable, bytes]] = DelayQueue(self.model.controls)
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def profile(self) -> Profile:
        return self.model.profile

    def send(self, conn: Writable, src: str, dest: str, msg_type: str, frame: bytes) -> None:
        now = self._loop.time()
        verdict = self.model.on_send(src, dest, msg_type, now)
        # Queue only when needed: an empty queue cannot be overtaken, so FIFO holds.
        if not verdict.held and verdict.deliver_at_s - now < MIN_TIMER_S and not len(self.queue):
            conn.write(frame)
            return
        self.queue.push((conn, frame), verdict.deliver_at_s, link=(src, dest))
        self._arm()

    def bio_complete_at_s(self, direction: str) -> float:
        """When a bio submitted now completes (the profile's disk, on the loop clock)."""
        return self.model.bio_complete_at_s(direction, self._loop.time())

    def _arm(self) -> None:
        due = self.queue.next_deadline_s()
        if due is None:
            return
        if self._timer is not None:
            if self._timer.when() <= due:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        for conn, frame in self.queue.pop_ready(self._loop.time() + MIN_TIMER_S):
            conn.write(frame)
        self._arm()

    # --- run-time changes (PUT /faults) -------------------------------------------

    def set_profile(self, name: str) -> None:
        profile = load_profile(name)
        self.model.profile = profile
        self.model.set_rules(profile.rules)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        self.model.set_rules(rules)

    def apply(self, change: dict[str, Any]) -> None:
        """Apply a PUT /faults document: profile, rules, hold, release, pause, resume."""
        if "profile" in change:
            self.set_profile(str(change["profile"]))
        if "rules" in change:
            rules = Profile.from_dict({"name": "admin", "rules": change["rules"]}).rules
            self.set_rules(rules)
        for src, dest in change.get("hold", []):
            self.model.hold(str(src), str(dest))
        for src, dest in change.get("release", []):
            self.model.release(str(src), str(dest))
        for svc in change.get("pause", []):
            self.model.pause(str(svc))
        for svc in change.get("resume", []):
            self.model.resume(str(svc))
        self._fire()  # a release may have made parked messages due

    def describe(self) -> dict[str, Any]:
        controls = self.model.controls
        return {
            "profile": self.model.profile.to_dict(),
            "held": [list(link) for link in controls.held_links()],
            "paused": controls.paused_services(),
            "queued": len(self.queue),
            "statistics": dict(self.model.statistics()),
        }
