"""The invariants of swap accounting, as pure functions over the model's state.

Each function reads an ``MmState`` and/or a ``MemcgState`` and returns what it
found; none runs code paths or reads a clock, so the simulation (its live
state) and the cluster (state rebuilt from the services' snapshots) check with
the very same code.

Continuously (after every memcg primitive): :func:`memsw_below_usage` --
memsw.usage >= usage for every group (counters never go negative: ResCounter
refuses).  Now and then: :func:`swap_map_problems` with ``exact=False`` --
swap_map[e] is at least the swap ptes pointing at e plus the swap cache's
reference (in-flight code paths may hold more).

At quiescence (all tasks killed, I/O, work and pagevec drains done), the
table :data:`QUIESCENT`, in this order:

- ``memsw_leak``: memory.memsw.usage_in_bytes > memory.usage_in_bytes
  (Kamezawa's acceptance test);
- ``memsw_accounting``: memsw == usage + one page per swap_cgroup record;
- ``swap_slot_in_use``: "there is no _used_ swp_entry" -- each slot still in
  use, with its cache page and how it is pinned (``Violation.pin``): ``stale``
  (cache-only, charged to nobody: no memcg LRU will ever see it), ``charged``
  (cache-only, the page still charged and on its memcg's LRU, so memcg reclaim
  frees it), or ``unreferenced`` (no cache page, or more references than the
  cache holds: nothing frees it).  Whether the variant gives a pinned slot back
  by its own design is decided in kernsim.check.result;
- ``swap_map``: swap_map equals the references that exist;
- ``page_ref_leak``: a page holds more references than its mappings and the
  swap cache explain;
- ``page_cgroup_leak``: a page freed still charged;

and after global reclaim (until a pass frees nothing more), :func:`global_reclaim_violations`:
``slot_leak_after_global_reclaim``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernsim.model.memcontrol import MemCgroup, MemcgState
from kernsim.model.mm import MmState
from kernsim.model.mm_types import PAGE_SIZE, SWAP_COUNT_MASK, SWAP_HAS_CACHE


@dataclass(slots=True)
class Violation:
    kind: str
    message: str
    pages: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    at_s: float = 0.0
    events: list[str] = field(default_factory=list)
    #: swap_slot_in_use only: "stale", "charged" or "unreferenced" (see PINS).
    pin: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "message": self.message,
            "pages": self.pages,
            "slots": self.slots,
            "at_s": round(self.at_s, 9),
            "events": self.events,
        }
        if self.pin:
            d["pin"] = self.pin
        return d


#: How a slot still in use at quiescence is held (Violation.pin of swap_slot_in_use).
PINS = ("stale", "charged", "unreferenced")


# --- continuous ------------------------------------------------------------------


def memsw_below_usage(memcg: MemcgState) -> list[str]:
    """Groups whose memsw.usage is below their usage (memsw counts every page usage does)."""
    return [
        f"{g.name}: memsw.usage {g.memsw.usage} < usage {g.res.usage}"
        for g in memcg.groups.values()
        if g.memsw.usage < g.res.usage
    ]


def swap_refs(mm: MmState) -> dict[int, int]:
    """Swap ptes per swap entry, over every task's page tables."""
    refs: dict[int, int] = {}
    for mms in mm.mms.values():
        for pte in mms.ptes.values():
            if not pte.present:
                refs[pte.val] = refs.get(pte.val, 0) + 1
    return refs


def swap_map_problems(mm: MmState, exact: bool) -> list[tuple[int, str]]:
    """Slots whose swap_map disagrees with the ptes and the swap cache."""
    refs = swap_refs(mm)
    out: list[tuple[int, str]] = []
    swap_map = mm.swap.swap_map
    # A slot that is free and referenced by nothing is consistent; only look at the rest.
    entries = set(refs) | set(mm.swapper_space)
    if exact:
        entries.update(e for e, v in enumerate(swap_map) if v and e)
    for entry in sorted(entries):
        value = swap_map[entry]
        cached = entry in mm.swapper_space
        ptes = refs.get(entry, 0)
        if mm.config.swap_has_cache:
            count, has_cache = value & SWAP_COUNT_MASK, bool(value & SWAP_HAS_CACHE)
            bad = (
                count != ptes or has_cache != cached
                if exact
                else count < ptes or (cached and not has_cache)
            )
        else:
            want = ptes + cached
            bad = value != want if exact else value < want
        if bad:
            out.append(
                (
                    entry,
                    f"swap_map[{entry}]={value:#x} but {ptes} swap ptes, "
                    f"{'a' if cached else 'no'} swap cache page",
                )
            )
    return out


# --- what the state holds ----------------------------------------------------------


def is_cache_only(mm: MmState, entry: int) -> bool:
    value = mm.swap.swap_map[entry]
    return value == (SWAP_HAS_CACHE if mm.config.swap_has_cache else 1)


def stale_swapcache_pages(mm: MmState, memcg: MemcgState) -> list[int]:
    """Swap-cache pages referenced by nothing but the cache and charged to nobody."""
    return sorted(
        pfn
        for entry, pfn in mm.swapper_space.items()
        if is_cache_only(mm, entry)
        and not ((pc := memcg.page_cgroup.get(pfn)) is not None and pc.used)
    )


def slots_in_use(mm: MmState) -> list[int]:
    return [e for e, v in enumerate(mm.swap.swap_map) if e and v]


# --- at quiescence -----------------------------------------------------------------


def memsw_leak(mm: MmState, memcg: MemcgState, g: MemCgroup) -> list[Violation]:
    """memory.memsw.usage_in_bytes above memory.usage_in_bytes with no task left."""
    leak = g.memsw.usage - g.res.usage
    if leak <= 0:
        return []
    charged = [e for e, r in enumerate(mm.swap.swap_cgroup) if r == g.id]
    return [
        Violation(
            "memsw_leak",
            f"{g.name}: memory.memsw.usage_in_bytes "
            f"{g.memsw.usage} > memory.usage_in_bytes {g.res.usage} "
            f"(leak {leak} bytes) with no task left; swap_cgroup "
            f"charges it to slots {charged}",
            slots=charged,
            pages=[mm.swapper_space[e] for e in charged if e in mm.swapper_space],
        )
    ]


def memsw_accounting(mm: MmState, memcg: MemcgState, g: MemCgroup) -> list[Violation]:
    """memsw == usage + one page per swap_cgroup record of the group."""
    records = sum(1 for r in mm.swap.swap_cgroup if r == g.id)
    if g.memsw.usage == g.res.usage + records * PAGE_SIZE:
        return []
    return [
        Violation(
            "memsw_accounting",
            f"{g.name}: memsw {g.memsw.usage} != "
            f"usage {g.res.usage} + {records} swap_cgroup records",
        )
    ]


def swap_slot_in_use(mm: MmState, memcg: MemcgState) -> list[Violation]:
    """Every slot still in use, with how it is pinned."""
    stale = set(stale_swapcache_pages(mm, memcg))
    out = []
    for entry in slots_in_use(mm):
        pfn = mm.swapper_space.get(entry, 0)
        pin, what = _pinned_by(mm, entry, pfn, pfn in stale)
        out.append(
            Violation(
                "swap_slot_in_use",
                f"swap slot {entry} still in use (swap_map={mm.swap.swap_map[entry]:#x}): {what}",
                pages=[pfn] if pfn else [],
                slots=[entry],
                pin=pin,
            )
        )
    return out


def _pinned_by(mm: MmState, entry: int, pfn: int, stale: bool) -> tuple[str, str]:
    """How slot ``entry`` is held once every task is gone: (pin, words)."""
    if not pfn:
        return "unreferenced", "no cache page"
    if not is_cache_only(mm, entry):
        return "unreferenced", f"cache page {pfn}, and references nobody holds"
    if stale:
        return "stale", f"stale cache page {pfn} (cache-only, uncharged, on no memcg LRU)"
    return "charged", f"cache page {pfn}, still charged to its memcg (on its memcg LRU)"


def swap_map_exact(mm: MmState, memcg: MemcgState) -> list[Violation]:
    """swap_map equals the references that exist (no code path holds one any more)."""
    return [Violation("swap_map", msg, slots=[e]) for e, msg in swap_map_problems(mm, exact=True)]


def page_ref_leak(mm: MmState, memcg: MemcgState) -> list[Violation]:
    """Pages holding more references than their mappings and the swap cache explain."""
    out = []
    for pfn, page in mm.pages.items():
        want = page.mapcount + page.swapcache
        if page.count > want:
            out.append(
                Violation(
                    "page_ref_leak",
                    f"page {pfn} has {page.count} references, "
                    f"only {want} explained (mappings + swap cache)",
                    pages=[pfn],
                    slots=[page.private] if page.private else [],
                )
            )
    return out


def page_cgroup_leak(mm: MmState, memcg: MemcgState) -> list[Violation]:
    """Pages freed while still charged."""
    return [
        Violation("page_cgroup_leak", f"page {pfn} was freed still charged", pages=[pfn])
        for pfn, pc in memcg.page_cgroup.items()
        if pc.used and pfn not in mm.pages
    ]


GroupCheck = Callable[[MmState, MemcgState, MemCgroup], list[Violation]]
StateCheck = Callable[[MmState, MemcgState], list[Violation]]
#: The quiescence checks, in report order: per memcg first, then over the whole state.
QUIESCENT_PER_GROUP: tuple[GroupCheck, ...] = (memsw_leak, memsw_accounting)
QUIESCENT: tuple[StateCheck, ...] = (swap_slot_in_use, swap_map_exact, page_ref_leak,
                                     page_cgroup_leak)  # fmt: skip


def quiescent_violations(mm: MmState, memcg: MemcgState) -> list[Violation]:
    """The checks that only hold once everything has settled and every task is gone."""
    out: list[Violation] = []
    for g in memcg.groups.values():
        for group_check in QUIESCENT_PER_GROUP:
            out += group_check(mm, memcg, g)
    for check in QUIESCENT:
        out += check(mm, memcg)
    return out


def global_reclaim_violations(mm: MmState) -> list[Violation]:
    """After a full pass of global reclaim: slots that even it could not free."""
    used = slots_in_use(mm)
    if not used:
        return []
    return [
        Violation(
            "slot_leak_after_global_reclaim",
            f"{len(used)} swap slots still in use after global reclaim",
            slots=used,
            pages=[mm.swapper_space[e] for e in used if e in mm.swapper_space],
        )
    ]
