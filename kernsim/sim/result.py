"""What a run found, as `kernsim sim` and `kernsim run` both report it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernsim.sim.checker import Violation


@dataclass(slots=True)
class RunResult:
    """The state after kill-all and settle, the slots left after global reclaim, and the
    violations.  Subclasses add how the run was made (a trace hash, or wall time)."""

    scenario: str
    variant: str
    seed: int
    faults: str
    page_cluster: int
    events: int
    virtual_s: float
    usage_bytes: int
    memsw_usage_bytes: int
    stale_swapcache_pages: int
    swap_slots_used: int
    swap_slots_used_after_global_reclaim: int
    oom_kills: int
    vmscan_results: dict[str, int]
    violations: list[Violation] = field(default_factory=list)

    @property
    def invariants_ok(self) -> bool:
        return not self.violations

    @property
    def memsw_leak_bytes(self) -> int:
        """memory.memsw.usage_in_bytes above memory.usage_in_bytes (0 when not above)."""
        return max(0, self.memsw_usage_bytes - self.usage_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "seed": self.seed,
            "faults": self.faults,
            "page_cluster": self.page_cluster,
            "events": self.events,
            "virtual_s": round(self.virtual_s, 9),
            "invariants_ok": self.invariants_ok,
            "memsw_leak_bytes": self.memsw_leak_bytes,
            "usage_bytes": self.usage_bytes,
            "memsw_usage_bytes": self.memsw_usage_bytes,
            "stale_swapcache_pages": self.stale_swapcache_pages,
            "swap_slots_used": self.swap_slots_used,
            "swap_slots_used_after_global_reclaim": self.swap_slots_used_after_global_reclaim,
            "oom_kills": self.oom_kills,
            "vmscan_results": dict(sorted(self.vmscan_results.items())),
            "violations": [v.to_dict() for v in self.violations],
        }
