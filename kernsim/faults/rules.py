"""Rules (what to do to which messages) and verdicts (what was done to one).

A rule matches a message by `src`, `dest` and `msg_type`, each an exact name
or "*". The first rule that matches wins; a message no rule matches passes
with zero delay. Nothing here ever drops a message: kernsim never loses a
kernel event silently, it only makes it late.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

from kernsim.faults.latency import Latency

ANY = "*"

# Verdict kinds, also the `kind` label of kernsim_faults_injected_total.
PASS = "pass"
DELAY = "delay"
HOLD = "hold"
PAUSED = "paused"
KINDS = (PASS, DELAY, HOLD, PAUSED)


@dataclass(frozen=True, slots=True)
class Rule:
    """One fault rule. Defaults: matches everything, adds no delay, FIFO.

    - `latency`: delay added to matching messages; None adds none (a rule
      with no latency placed first exempts its messages from later rules).
    - `reorder`: False keeps the link FIFO (a message is never delivered
      before one sent earlier on the same src->dest link); True lets a short
      sampled delay overtake a long one.
    - `probability`: the rule applies to this fraction of matching messages,
      drawn from the model's rng; a message it skips goes on to later rules.
    """

    src: str = ANY
    dest: str = ANY
    msg_type: str = ANY
    latency: Latency | None = None
    reorder: bool = False
    probability: float = 1.0

    def __post_init__(self) -> None:
        for name in ("src", "dest", "msg_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}: must be a non-empty string, got {value!r}")
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"probability: must be a number within [0, 1], got {p!r}")

    def matches(self, src: str, dest: str, msg_type: str) -> bool:
        return (
            (self.src == ANY or self.src == src)
            and (self.dest == ANY or self.dest == dest)
            and (self.msg_type == ANY or self.msg_type == msg_type)
        )


class Verdict(NamedTuple):
    """What the fault model decided for one message.

    `deliver_at_s` is when the message becomes deliverable on the caller's
    clock; `held` is True when a held link or a paused destination keeps it
    back beyond that (the DelayQueue does the keeping). `kind` is one of
    "pass", "delay", "hold", "paused".

    A NamedTuple rather than a frozen dataclass: one is built per message,
    and a frozen dataclass costs about 3x as much to build (~390 ns vs
    ~130 ns), which was half of the no-rules on_send budget.
    """

    deliver_at_s: float
    held: bool
    kind: str


class RuleTable:
    """Ordered rules plus a cache of which rules can match a given
    (src, dest, msg_type). Services and message types are few, so the cache
    stays small and turns matching into one dict lookup on the hot path."""

    __slots__ = ("_cache", "rules")

    def __init__(self, rules: tuple[Rule, ...] = ()) -> None:
        self.rules = rules
        self._cache: dict[tuple[str, str, str], tuple[Rule, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def candidates(self, src: str, dest: str, msg_type: str) -> tuple[Rule, ...]:
        key = (src, dest, msg_type)
        found = self._cache.get(key)
        if found is None:
            found = tuple(r for r in self.rules if r.matches(src, dest, msg_type))
            self._cache[key] = found
        return found

    def select(self, src: str, dest: str, msg_type: str, rng: random.Random) -> Rule | None:
        """The first matching rule whose probability draw succeeds, or None.

        One rng draw per candidate with 0 < probability < 1 that is reached,
        so the draw count depends only on the inputs and the seed."""
        for rule in self.candidates(src, dest, msg_type):
            p = rule.probability
            if p >= 1.0 or (p > 0.0 and rng.random() < p):
                return rule
        return None
