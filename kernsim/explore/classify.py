"""Classification of a failing run against the known races (docs/KERNEL.md section 8).

For every leaked swap slot the trace is walked once, in order, looking for
the kernel events that make each known race:

- ``example-b``: free_swap_and_cache() found no cache page (page == 0)
  between a reader's swap_duplicate() and its add_to_swap_cache() of that entry;
- ``type-1``: free_swap_and_cache() found the readahead page but its
  trylock_page() failed, because the page was locked for read I/O (added by
  read_swap_cache_async() and not yet unlocked by end_swap_bio_read());
- ``example-a``: the same failed trylock on a page that is not under read
  I/O (reclaim holds its lock), then __remove_mapping() fails on that page;
- ``type-2``: add_to_swap() of a page already unmapped and uncharged;
- ``writeback`` (zap during swap-out writeback): free_swap_and_cache() finds
  the cache page and its trylock succeeds, but PageWriteback is set, so it
  skips the deletion; the page stays charged and cache-only.  v5's check in
  end_swap_bio_write() frees it later; none and upstream do not.

The last pattern seen for a slot is its race (a slot can be reused: only its
last life leaked).  A zap whose trylock fails after end_swap_bio_read() has
begun (v5's staleswap hint has already looked) is none of these: it is
reported ``NEW``, with that as its detail, like any failure no rule matches.
One NEW pattern has a fixed detail, ``V5_HOLE``: do_swap_page()'s
reuse_swap_page() deletes its page before its swap_free(), a readahead
re-adds the slot with a new page in between, v5's lockless check at
end_swap_bio_read() sees swap_map == 2, and the swap_free() leaves the new
page cache-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from kernsim.sim.engine import TraceEvent

if TYPE_CHECKING:
    from kernsim.explore.job import Run

CATALOGUE = ("example-a", "example-b", "type-1", "type-2")
#: Classes this module knows beyond the catalogue of docs/KERNEL.md.
KNOWN = (*CATALOGUE, "writeback")
V5_HOLE = (
    "v5 hole: reuse_swap_page() deletes the page before swap_free(); a readahead "
    "re-adds the slot and end_swap_bio_read()'s lockless check sees swap_map==2"
)
#: Violations that name leaked slots (the others name pages or nothing).
SLOT_KINDS = ("memsw_leak", "swap_slot_in_use", "slot_leak_after_global_reclaim", "swap_map")


@dataclass(frozen=True, slots=True)
class Match:
    cls: str
    slot: int
    page: int
    start: int  # trace index where the race begins (for the diagram)
    at: int  # trace index of the decisive event
    detail: str = ""
    also: tuple[int, ...] = ()  # other pages the diagram should draw


@dataclass(slots=True)
class _Walk:
    """What the walk over one slot's events has seen so far."""

    slot: int
    dup: dict[str, int] = field(default_factory=dict)  # reader CPU -> its swap_duplicate
    freed_nopage: dict[str, int] = field(default_factory=dict)  # reader CPU -> the free
    read_page: int = 0  # the page added for read I/O and still locked
    read_start: int = 0
    io_began: int = -1  # end_swap_bio_read() already ran on read_page (index)
    zap_failed: dict[int, int] = field(default_factory=dict)  # page -> failed free
    locked_at: dict[int, int] = field(default_factory=dict)  # page -> trylock_page()
    uncharged: set[int] = field(default_factory=set)
    added: dict[int, int] = field(default_factory=dict)  # page -> add_to_swap_cache()
    zap_locked: dict[int, tuple[int, str]] = field(default_factory=dict)  # page -> (i, cpu)
    matches: list[Match] = field(default_factory=list)


class FreeSwapSection(NamedTuple):
    """What free_swap_and_cache()'s swap_lock section saw and did, read off its steps."""

    value: int
    page: int
    locked: bool
    uncharge: int


def fold_free_swap_and_cache(trace: list[TraceEvent]) -> list[TraceEvent]:
    """The trace with each free_swap_and_cache() swap_lock section (swap_entry_free_locked,
    find_get_page, trylock_page, page_cache_release, spin_unlock_swap_lock, one step each)
    summed up in one ``free_swap_and_cache_locked`` event at the index of its first step;
    the steps themselves stay where they are, so indices still point into ``trace``."""
    out = list(trace)
    open_: dict[str, tuple[int, TraceEvent, int, bool]] = {}
    for i, ev in enumerate(trace):
        if ev.prim == "swap_entry_free_locked":
            open_[ev.cpu] = (i, ev, 0, False)
        elif ev.cpu in open_:
            start, first, page, locked = open_[ev.cpu]
            if ev.prim == "find_get_page":
                open_[ev.cpu] = (start, first, int(ev.result), False)
            elif ev.prim == "trylock_page":
                open_[ev.cpu] = (start, first, page, ev.result is True)
            elif ev.prim == "spin_unlock_swap_lock":
                del open_[ev.cpu]
                res = FreeSwapSection(first.result.value, page, locked, first.result.uncharge)
                out[start] = TraceEvent(
                    first.t, first.cpu, first.func, "free_swap_and_cache_locked", first.args, res
                )
    return out


def classify_trace(trace: list[TraceEvent], slot: int) -> Match:
    trace = fold_free_swap_and_cache(trace)
    w = _Walk(slot)
    for i, ev in enumerate(trace):
        _step(w, i, ev)
    if w.matches:
        return w.matches[-1]
    return _describe_new(trace, slot)


def _describe_new(trace: list[TraceEvent], slot: int) -> Match:
    """A failure no catalogue rule matches: name the last reference drop and what came
    before it, so that a reader sees where to look."""
    add = hint = drop = -1
    page = 0
    for i, ev in enumerate(trace):
        a = ev.args
        if ev.prim == "add_to_swap_cache" and a[1] == slot and ev.result == 0:
            add, page, hint = i, a[0], -1
        elif ev.prim == "mem_cgroup_staleswap_hint" and a[0] == page and ev.result is True:
            hint = i
        elif ev.prim in ("swap_free", "free_swap_and_cache_locked") and a[0] == slot:
            drop = i
    if add < 0 or drop < 0:
        return Match("NEW", slot, page, max(add, 0), max(drop, add, 0), "no known pattern")
    start = next((i for i in range(add, -1, -1) if _dup_of(trace[i], slot)), add)
    reuse = _reused_before(trace, slot, add, trace[drop].cpu)
    if reuse is not None and 0 <= hint < drop:
        return Match("NEW", slot, page, min(reuse[0], start), drop, V5_HOLE, (reuse[1],))
    detail = f"{trace[drop].func}() drops a reference to the slot"
    if 0 <= hint < drop:
        detail += " after end_swap_bio_read()'s stale check saw it still in use"
    return Match("NEW", slot, page, start, drop, detail)


def _reused_before(
    trace: list[TraceEvent], slot: int, add: int, cpu: str
) -> tuple[int, int] | None:
    """Where ``cpu``'s reuse_swap_page() deleted another page of ``slot`` from the swap
    cache before ``add`` (its trace index and that page), if it did."""
    for i in range(add - 1, -1, -1):
        ev = trace[i]
        if ev.cpu != cpu or ev.prim != "__delete_from_swap_cache" or ev.result[0] != slot:
            continue
        old = int(ev.args[0])
        for j in range(i - 1, -1, -1):
            prev = trace[j]
            if prev.cpu == cpu and prev.prim == "reuse_swap_page_check" and prev.args[0] == old:
                return (j, old) if prev.result is True else None
        return None
    return None


def _dup_of(ev: TraceEvent, slot: int) -> bool:
    return ev.prim in ("swap_duplicate", "swapcache_prepare") and ev.args[0] == slot


def _step(w: _Walk, i: int, ev: TraceEvent) -> None:
    prim, a = ev.prim, ev.args
    first: Any = a[0] if a else None
    if prim == "alloc_page" and isinstance(ev.result, tuple):
        _forget_page(w, ev.result[0])
    elif prim in ("swap_duplicate", "swapcache_prepare") and first == w.slot:
        if ev.func == "swap_duplicate_for_cache":
            w.dup[ev.cpu] = i
    elif prim == "free_swap_and_cache_locked" and first == w.slot:
        _on_free(w, i, ev)
    elif prim == "add_to_swap_cache" and a[1] == w.slot and ev.result == 0:
        _on_add(w, i, ev)
    elif prim in ("set_page_uptodate", "mem_cgroup_staleswap_hint") and first == w.read_page:
        if w.io_began < 0:
            w.io_began = i
    elif prim == "unlock_page" and ev.func == "end_swap_bio_read" and first == w.read_page:
        w.read_page, w.io_began = 0, -1
    elif prim == "page_flags" and w.zap_locked.get(first, (0, ""))[1] == ev.cpu:
        _on_zap_flags(w, i, ev)
    elif prim == "trylock_page" and ev.result is True:
        w.locked_at[first] = i
    elif prim == "__mem_cgroup_commit_charge" and ev.result is True:
        w.uncharged.discard(first)
    elif prim == "mem_cgroup_uncharge_page" and ev.result is True:
        w.uncharged.add(first)
    elif prim == "mem_cgroup_uncharge_swapcache" and ev.result:
        w.uncharged.add(first)  # deleted from the cache, uncharged
    elif prim == "remove_mapping_freeze" and first in w.zap_failed and not ev.result[0]:
        page = int(first)
        start = min(w.locked_at.get(page, i), w.zap_failed[page])
        w.matches.append(Match("example-a", w.slot, page, start, w.zap_failed.pop(page)))


def _on_zap_flags(w: _Walk, i: int, ev: TraceEvent) -> None:
    """free_swap_and_cache() owns the lock and looks at the flags: under writeback
    it must leave the page in the swap cache."""
    page = int(ev.args[0])
    w.zap_locked.pop(page)
    if ev.result.writeback:
        start = w.added.get(page, i)
        w.matches.append(Match("writeback", w.slot, page, start, i))


def _forget_page(w: _Walk, pfn: int) -> None:
    w.zap_locked.pop(pfn, None)
    w.added.pop(pfn, None)
    w.zap_failed.pop(pfn, None)
    w.locked_at.pop(pfn, None)
    w.uncharged.discard(pfn)


def _on_free(w: _Walk, i: int, ev: TraceEvent) -> None:
    page, locked = ev.result.page, ev.result.locked
    if locked:
        w.zap_locked[page] = (i, ev.cpu)
    elif page == 0:
        for cpu in w.dup:
            w.freed_nopage[cpu] = i
    elif not locked and page == w.read_page:
        if w.io_began >= 0:
            w.matches.append(
                Match(
                    "NEW",
                    w.slot,
                    page,
                    w.read_start,
                    i,
                    "zap's trylock fails after end_swap_bio_read() began, before unlock_page()",
                )
            )
        else:
            w.matches.append(Match("type-1", w.slot, page, w.read_start, i))
    elif not locked:
        w.zap_failed[page] = i


def _on_add(w: _Walk, i: int, ev: TraceEvent) -> None:
    page, new_page = ev.args[0], ev.args[2]
    w.added[page] = i
    if new_page:  # read_swap_cache_async(): the page is locked for read I/O
        start = w.dup.pop(ev.cpu, i)
        freed = w.freed_nopage.pop(ev.cpu, None)
        if freed is not None and freed > start:
            w.matches.append(Match("example-b", w.slot, page, start, freed))
        w.read_page, w.read_start, w.io_began = page, start, -1
    elif page in w.uncharged:  # add_to_swap() in shrink_page_list()
        start = w.locked_at.get(page, i)
        w.matches.append(Match("type-2", w.slot, page, start, i))


def leaked_slots(run: Run) -> list[int]:
    assert run.result is not None
    return sorted({s for v in run.result.violations if v.kind in SLOT_KINDS for s in v.slots})


def settled_trace(run: Run) -> list[TraceEvent]:
    """The trace up to the check (without the global reclaim that follows it)."""
    assert run.result is not None and run.result.world is not None
    trace = run.result.world.engine.trace
    for i in range(run.load_events, len(trace)):
        if trace[i].cpu == "reclaim" and trace[i].func == "global_reclaim":
            return trace[:i]
    return trace


def classify_matches(run: Run) -> list[Match]:
    trace = settled_trace(run)
    slots = leaked_slots(run)
    if not slots:
        assert run.result is not None
        kinds = ",".join(sorted({v.kind for v in run.result.violations}))
        return [Match("NEW", 0, 0, 0, len(trace) - 1, f"no leaked slot ({kinds})")]
    return [classify_trace(trace, s) for s in slots]


def classify_run(run: Run) -> list[str]:
    """The distinct classes of a failing run, sorted."""
    return sorted({m.cls for m in classify_matches(run)})
