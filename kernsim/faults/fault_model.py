"""The fault model: turns "src sends msg_type to dest at now_s" into a verdict.

Sans-IO: the caller passes the clock value and owns the random source, so the
simulation (virtual clock, one seeded rng) and the cluster (event-loop clock)
share this code unchanged. The model only decides *when* a message may be
delivered; a `DelayQueue` built on `model.controls` does the waiting.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TypedDict

from kernsim.faults.controls import Controls, Link
from kernsim.faults.profiles import Profile
from kernsim.faults.rules import DELAY, HOLD, KINDS, PASS, PAUSED, Rule, RuleTable, Verdict

_NEG_INF = float("-inf")


class FaultStatistics(TypedDict):
    """Counters since the model was built. `kinds` feeds the Prometheus
    counter kernsim_faults_injected_total{kind}."""

    seen: int  # messages judged by on_send
    delayed: int  # delivered later than sent (kind delay, or held with a delay)
    held: int  # sent onto a held link or to a paused service
    reordered: int  # delivered before a message sent earlier on the same link
    bios: int  # block I/O completions scheduled
    kinds: dict[str, int]  # pass / delay / hold / paused
    rules: int
    held_links: int
    paused_services: int


class FaultModel:
    """Judges every message against a `Profile`'s rules and the scripted
    hold/pause controls. Build one per run: `FaultModel(profile, rng)`."""

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.profile = profile
        self.rng = rng
        self.controls = Controls()
        self._table = RuleTable(profile.rules)
        self._has_rules = bool(profile.rules)
        # Latest delivery time handed out per link (FIFO) and overall: while
        # now_s is past the overall horizon, no link can need FIFO clamping,
        # which is what lets the no-rules path skip the per-link lookup.
        self._link_last_s: dict[Link, float] = {}
        self._horizon_s = _NEG_INF
        self._bio_last_s = _NEG_INF
        self._kinds = dict.fromkeys(KINDS, 0)
        self._seen = self._delayed = self._held = self._reordered = self._bios = 0
        self._fast_passed = 0  # kept apart from _kinds: a dict update costs on the fast path

    # -- messages ---------------------------------------------------------

    def on_send(self, src: str, dest: str, msg_type: str, now_s: float) -> Verdict:
        """Verdict for one message sent now. Call exactly once per message,
        in send order: FIFO and the rng stream depend on that order."""
        self._seen += 1
        if now_s >= self._horizon_s and not self._has_rules and not self.controls.active:
            self._fast_passed += 1
            return Verdict(now_s, False, "pass")
        return self._judge(src, dest, msg_type, now_s)

    def _judge(self, src: str, dest: str, msg_type: str, now_s: float) -> Verdict:
        rule = self._table.select(src, dest, msg_type, self.rng)
        deliver_at_s = now_s
        if rule is not None and rule.latency is not None:
            deliver_at_s += rule.latency.sample(self.rng)
        deliver_at_s = self._order_on_link((src, dest), deliver_at_s, rule)
        kind = self._kind_of(src, dest, deliver_at_s > now_s)
        self._kinds[kind] += 1
        self._delayed += deliver_at_s > now_s
        held = kind in (HOLD, PAUSED)
        self._held += held
        return Verdict(deliver_at_s, held, kind)

    def _order_on_link(self, link: Link, deliver_at_s: float, rule: Rule | None) -> float:
        # A link is FIFO (like the TCP connection it stands for) unless the
        # matching rule asks for reordering.
        last_s = self._link_last_s.get(link, _NEG_INF)
        if deliver_at_s < last_s:
            if rule is not None and rule.reorder:
                self._reordered += 1
            else:
                deliver_at_s = last_s
        if deliver_at_s > last_s:
            self._link_last_s[link] = deliver_at_s
            if deliver_at_s > self._horizon_s:
                self._horizon_s = deliver_at_s
        return deliver_at_s

    def _kind_of(self, src: str, dest: str, delayed: bool) -> str:
        controls = self.controls
        if controls.active:
            if controls.is_paused(dest):
                return PAUSED
            if controls.is_held((src, dest)):
                return HOLD
        return DELAY if delayed else PASS

    # -- run-time changes (the admin API and scripted schedules) ------------

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rules. Messages already judged keep their verdicts;
        links stay FIFO across the change."""
        self._table = RuleTable(tuple(rules))
        self._has_rules = bool(self._table.rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._table.rules

    def hold(self, src: str, dest: str) -> None:
        """Keep every message on src->dest back until `release(src, dest)`."""
        self.controls.hold(src, dest)

    def release(self, src: str, dest: str) -> None:
        self.controls.release(src, dest)

    def pause(self, service: str) -> None:
        """Deliver nothing to `service` until `resume(service)`."""
        self.controls.pause(service)

    def resume(self, service: str) -> None:
        self.controls.resume(service)

    # -- block device -------------------------------------------------------

    def bio_complete_at_s(self, direction: str, now_s: float) -> float:
        """When a bio submitted now completes. Independent samples complete
        out of order; a profile with device_reorder=false keeps them FIFO."""
        complete_at_s = now_s + self.profile.bio_latency_s(direction, self.rng)
        if not self.profile.device_reorder:
            complete_at_s = max(complete_at_s, self._bio_last_s)
            self._bio_last_s = complete_at_s
        self._bios += 1
        return complete_at_s

    # -- introspection ----------------------------------------------------

    def statistics(self) -> FaultStatistics:
        return FaultStatistics(
            seen=self._seen,
            delayed=self._delayed,
            held=self._held,
            reordered=self._reordered,
            bios=self._bios,
            kinds={**self._kinds, PASS: self._kinds[PASS] + self._fast_passed},
            rules=len(self._table.rules),
            held_links=len(self.controls.held_links()),
            paused_services=len(self.controls.paused_services()),
        )
