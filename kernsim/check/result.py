"""What a run found, as `kernsim sim`, `kernsim explore` and `kernsim run` all report it.

The verdict splits what the checker found into three parts:

- the memsw leak: memory.memsw.usage_in_bytes above memory.usage_in_bytes once
  every task is gone (Kamezawa's acceptance test).  Always a failure: the charge
  sits in swap_cgroup for slots that no memcg LRU holds a page of;
- the swap slots still pinned, each either given back by the variant's own
  design without global reclaim (a charged cache page sits on its memcg's LRU,
  so memcg reclaim frees it; a stale cache-only slot under a variant with
  ``reuses_cache_only_slots``, 2.6.31's scan_swap_map(), is reused once swap is
  more than half full), or given back only by global reclaim (2.6.30's stale
  cache-only slots), or by nothing at all (a slot no cache page holds);
- every other invariant.

A run *fails* on a memsw leak, on a slot that only global reclaim (or
nothing) gives back, and on any other broken invariant.  Slots the variant gives
back by design are reported (verdict ``pinned``), not failed; ``--strict``
fails on them too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from kernsim.check.invariants import Violation
from kernsim.check.settle import Findings
from kernsim.variants import VARIANTS

#: The verdict words, worst first.
LEAK, VIOLATED, PINNED, OK = "LEAK", "VIOLATED", "pinned", "ok"


def by_design(v: Violation, variant: str) -> bool:
    """Whether ``variant``'s own design gives back the slot of swap_slot_in_use ``v``
    without global reclaim."""
    if v.pin == "charged":
        return True  # on its memcg's LRU: memcg reclaim's shrink_page_list() frees it
    cls = VARIANTS.get(variant)
    return v.pin == "stale" and cls is not None and cls.reuses_cache_only_slots


def failing(violations: list[Violation], variant: str) -> list[Violation]:
    """The violations that fail a run: all but the slots the variant gives back by design."""
    return [v for v in violations if not (v.kind == "swap_slot_in_use" and by_design(v, variant))]


R = TypeVar("R", bound="RunResult")


@dataclass(slots=True)
class RunResult(Findings):
    """What settle_and_check found (the state after kill-all and settle, the slots left
    after global reclaim, the violations), and what the run was: the scenario, the
    variant, the seed, the profile, its counters.  Subclasses add how the run was made
    (a trace hash, or wall time)."""

    scenario: str
    variant: str
    seed: int
    faults: str
    events: int
    virtual_s: float
    vmscan_results: dict[str, int]

    @classmethod
    def build(cls: type[R], findings: Findings, **run: Any) -> R:
        """The one way a result is made: what settle_and_check found, plus ``run``: the
        fields above and whatever the subclass adds."""
        return cls(**{f.name: getattr(findings, f.name) for f in fields(Findings)}, **run)

    @property
    def invariants_ok(self) -> bool:
        """Every invariant held, the slots given back by design included."""
        return not self.violations

    @property
    def memsw_leak_bytes(self) -> int:
        """memory.memsw.usage_in_bytes above memory.usage_in_bytes (0 when not above)."""
        return max(0, self.memsw_usage_bytes - self.usage_bytes)

    @property
    def failures(self) -> list[Violation]:
        return failing(self.violations, self.variant)

    @property
    def failed(self) -> bool:
        """Exit status 1: a leak the variant never gives back by itself, or another
        broken invariant."""
        return bool(self.failures)

    def pinned(self) -> dict[str, int]:
        """Slots still in use at quiescence, by how they are held, and how they come back."""
        pins = [v for v in self.violations if v.kind == "swap_slot_in_use"]
        design = sum(by_design(v, self.variant) for v in pins)
        return {
            "stale": sum(v.pin == "stale" for v in pins),
            "charged": sum(v.pin == "charged" for v in pins),
            "unreferenced": sum(v.pin == "unreferenced" for v in pins),
            "given_back_by_design": design,
            "not_given_back_by_design": len(pins) - design,
        }

    @property
    def verdict(self) -> str:
        """``LEAK`` (memsw, or slots only global reclaim frees), ``VIOLATED`` (another
        invariant), ``pinned`` (only slots the variant gives back by design), ``ok``."""
        fails = self.failures
        if any(v.kind in ("memsw_leak", "swap_slot_in_use") for v in fails):
            return LEAK
        if fails:
            return VIOLATED
        return PINNED if self.violations else OK

    def to_dict(self) -> dict[str, Any]:
        violations = []
        for v in self.violations:
            d = v.to_dict()
            if v.kind == "swap_slot_in_use":
                d["given_back_by_design"] = by_design(v, self.variant)
            violations.append(d)
        other = sorted({v.kind for v in self.failures} - {"memsw_leak", "swap_slot_in_use"})
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "seed": self.seed,
            "faults": self.faults,
            "page_cluster": self.page_cluster,
            "events": self.events,
            "virtual_s": round(self.virtual_s, 9),
            "verdict": self.verdict,
            "failed": self.failed,
            "invariants_ok": self.invariants_ok,
            "memsw_leak_bytes": self.memsw_leak_bytes,
            "swap_slots_pinned": self.pinned(),
            "other_failures": other,
            "usage_bytes": self.usage_bytes,
            "memsw_usage_bytes": self.memsw_usage_bytes,
            "stale_swapcache_pages": self.stale_swapcache_pages,
            "swap_slots_used": self.swap_slots_used,
            "swap_slots_used_after_global_reclaim": self.swap_slots_used_after_global_reclaim,
            "oom_kills": self.oom_kills,
            "vmscan_results": dict(sorted(self.vmscan_results.items())),
            "violations": violations,
        }
