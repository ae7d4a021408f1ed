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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kernsim.faults import DelayQueue, FaultModel, Profile, Rule, load_shipped

#: The keys of a PUT /faults document.
CHANGE_KEYS = ("profile", "rules", "hold", "release", "pause", "resume")
#: At most this many entries in one list of a PUT /faults document.
MAX_ENTRIES = 256

MIN_TIMER_S = 0.001


class Writable(Protocol):
    def write(self, frame: bytes) -> None: ...


@dataclass
class FaultChange:
    """A PUT /faults document, checked whole before anything of it is applied."""

    profile: Profile | None = None
    rules: tuple[Rule, ...] | None = None
    hold: list[tuple[str, str]] = field(default_factory=list)
    release: list[tuple[str, str]] = field(default_factory=list)
    pause: list[str] = field(default_factory=list)
    resume: list[str] = field(default_factory=list)


def parse_change(doc: Mapping[str, Any]) -> FaultChange:
    """Check a PUT /faults document; ValueError names what is wrong.

    ``profile`` is the name of a shipped profile or a profile body (a table,
    as in a .toml file), never a path.  Reads a shipped profile's file: run
    it off the event loop."""
    for key in doc:
        if key not in CHANGE_KEYS:
            raise ValueError(f"{key}: unknown key (known: {', '.join(CHANGE_KEYS)})")
    out = FaultChange()
    if "profile" in doc:
        value = doc["profile"]
        if isinstance(value, str):
            out.profile = load_shipped(value)
        elif isinstance(value, Mapping):
            out.profile = Profile.from_dict(value)
        else:
            raise ValueError("profile: expected a shipped profile's name or a profile table")
    if "rules" in doc:
        out.rules = Profile.from_dict({"name": "admin", "rules": doc["rules"]}).rules
    out.hold = [_link(x, f"hold[{i}]") for i, x in enumerate(_entries(doc, "hold"))]
    out.release = [_link(x, f"release[{i}]") for i, x in enumerate(_entries(doc, "release"))]
    out.pause = [_name(x, f"pause[{i}]") for i, x in enumerate(_entries(doc, "pause"))]
    out.resume = [_name(x, f"resume[{i}]") for i, x in enumerate(_entries(doc, "resume"))]
    return out


def _entries(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list")
    if len(value) > MAX_ENTRIES:
        raise ValueError(f"{key}: more than {MAX_ENTRIES} entries")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValueError(f"{where}: expected a service name")
    return value


def _link(value: Any, where: str) -> tuple[str, str]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"{where}: expected [src, dest]")
    return _name(value[0], where), _name(value[1], where)


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

    def set_profile(self, profile: Profile) -> None:
        self.model.profile = profile
        self.model.set_rules(profile.rules)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        self.model.set_rules(rules)

    def apply(self, change: FaultChange) -> None:
        """Apply a checked PUT /faults document (see ``parse_change``)."""
        if change.profile is not None:
            self.set_profile(change.profile)
        if change.rules is not None:
            self.set_rules(change.rules)
        for src, dest in change.hold:
            self.model.hold(src, dest)
        for src, dest in change.release:
            self.model.release(src, dest)
        for svc in change.pause:
            self.model.pause(svc)
        for svc in change.resume:
            self.model.resume(svc)
        self._fire()  # a release may have made parked messages due

    def describe(self) -> dict[str, Any]:
        controls = self.model.controls
        profile = self.model.profile.to_dict()
        # The rules in force, which PUT {"rules": ...} may have replaced.
        profile["rules"] = Profile("rules", rules=self.model.rules).to_dict()["rules"]
        return {
            "profile": profile,
            "held": [list(link) for link in controls.held_links()],
            "paused": controls.paused_services(),
            "queued": len(self.queue),
            "statistics": dict(self.model.statistics()),
        }
