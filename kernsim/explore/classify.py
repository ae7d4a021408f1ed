"""Classification of a failing run by its racing steps.

For every leaked swap slot the trace is cut down to the slot's last life:
the steps on the slot since it was last allocated, and the steps on every
page that cached it in that life, from the page's last allocation until it
joins another slot's swap cache or is allocated again.  The
steps of that life are matched against the named patterns of
``kernsim.explore.patterns`` (each an ordered sequence of racing steps of
different CPUs, citing where the race was described).  The pattern whose
last step comes latest is the race (a slot's leak is decided by the last
race on it); at the same step, the longer pattern wins, then the one
specific to the variant.  A ``fallback`` pattern counts only when no other
matches.

No pattern matching makes the failure ``NEW``: its detail then lists the
racing pairs of the slot's life (the step of another CPU each step followed,
see ``kernsim.explore.coverage``), closest to the leak first.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

from kernsim.explore.coverage import Pair, objects_of, step_name
from kernsim.explore.footprint import Obj
from kernsim.explore.patterns import ANY, BY_NAME, CATALOGUE, PATTERNS, Pattern
from kernsim.sim.engine import TraceEvent

if TYPE_CHECKING:
    from kernsim.explore.job import Run

__all__ = ["CATALOGUE", "KNOWN", "V5_HOLE", "Match", "classify_matches", "classify_run"]

#: Every class a pattern names.
KNOWN = tuple(dict.fromkeys(p.cls for p in PATTERNS))
V5_HOLE = BY_NAME["v5-hole"].summary
#: Violations that name leaked slots (the others name pages or nothing).
SLOT_KINDS = ("memsw_leak", "swap_slot_in_use", "slot_leak_after_global_reclaim", "swap_map")
#: Racing pairs a NEW failure's detail lists.
NEW_PAIRS = 4
#: Partial matches one pattern may try on one slot (a bound on backtracking).
SEARCH_BUDGET = 20_000


@dataclass(frozen=True, slots=True)
class Match:
    cls: str
    slot: int
    page: int
    start: int  # trace index where the race begins (for the diagram)
    at: int  # trace index of the decisive event
    detail: str = ""
    also: tuple[int, ...] = ()  # other pages the diagram should draw
    pairs: tuple[Pair, ...] = ()  # the racing pairs of the match (or, for NEW, of the life)
    cite: str = ""
    steps: tuple[int, ...] = ()  # trace indices of the pattern's steps (drawn even if noise)


def slot_life(trace: list[TraceEvent], slot: int) -> list[tuple[int, Obj]]:
    """(trace index, object) of every step on ``slot``'s last life or its pages; the
    object is the page a step touched when it touched one of them, else the slot."""
    begin = 0
    for i, ev in enumerate(trace):
        if ev.prim == "get_swap_page" and ev.result == slot:
            begin = i
    pages: dict[int, int] = {}  # pfn -> where its last allocation was
    born: dict[int, int] = {}
    # pfn -> where the page stopped being this slot's: it joined another slot's swap
    # cache, or it was allocated again.  Its later steps belong to that other life
    # (a page reclaim writes out to slot 5, then, faulted back in, to slot 7).
    until: dict[int, int] = {}
    for i, ev in enumerate(trace):
        if ev.prim == "alloc_page" and isinstance(ev.result, tuple):
            pfn = ev.result[0]
            born[pfn] = i
            if pfn in pages and pfn not in until:
                until[pfn] = i
        elif ev.prim == "add_to_swap_cache" and ev.result == 0:
            pfn = ev.args[0]
            if i >= begin and ev.args[1] == slot:
                pages[pfn] = born.get(pfn, 0)
                until.pop(pfn, None)
            elif pfn in pages and pfn not in until:
                until[pfn] = i
    out: list[tuple[int, Obj]] = []
    for i, ev in enumerate(trace):
        hit: Obj | None = None
        for kind, ident in objects_of(ev):
            if kind == "page" and ident in pages and pages[ident] <= i < until.get(ident, i + 1):
                hit = (kind, ident)
                break
            if kind == "slot" and ident == slot and i >= begin:
                hit = (kind, ident)
        if hit is not None:
            out.append((i, hit))
    return out


def match_pattern(
    pat: Pattern, trace: list[TraceEvent], life: list[tuple[int, Obj]]
) -> list[int] | None:
    """The positions in ``life`` of the match of ``pat`` that ends latest, or None."""
    names = [step_name(trace[i]) for i, _ in life]
    alts = [frozenset(st.name.split("|")) for st in pat.steps]
    unless = [frozenset(n for u in st.unless for n in u.split("|")) for st in pat.steps]
    best: list[int] | None = None
    budget = [SEARCH_BUDGET]

    def extend(
        k: int, at: int, roles: dict[str, str], pages: dict[str, int], got: list[int]
    ) -> None:
        nonlocal best
        if k == len(pat.steps):
            if best is None or got[-1] > best[-1]:
                best = list(got)
            return
        step = pat.steps[k]
        for pos in range(at, len(life)):
            if budget[0] <= 0:
                return
            if k and names[pos] in unless[k]:
                return  # a forbidden step since the last one: no later match either
            if names[pos] not in alts[k]:
                continue
            budget[0] -= 1
            cpu = trace[life[pos][0]].cpu
            if not _bind_role(roles, step.role, cpu):
                continue
            obj = life[pos][1]
            if step.page and (obj[0] != "page" or pages.get(step.page, obj[1]) != obj[1]):
                continue
            r2 = {**roles, step.role: cpu} if step.role != ANY else roles
            p2 = {**pages, step.page: obj[1]} if step.page else pages
            extend(k + 1, pos + 1, r2, p2, [*got, pos])

    extend(0, 0, {}, {}, [])
    return best if best is None else tighten(pat, trace, life, best)


def tighten(
    pat: Pattern, trace: list[TraceEvent], life: list[tuple[int, Obj]], got: list[int]
) -> list[int]:
    """The match of ``pat`` that ends where ``got`` ends and starts latest: each earlier
    step the last one before the next (a backward search).  The forward search takes
    the earliest step that fits (a do_swap_page()'s reuse_swap_page() where the same
    task's do_wp_page() decides again a few steps later); the race is the last time
    the steps met, and its diagram starts there."""
    names = [step_name(trace[i]) for i, _ in life]
    alts = [frozenset(st.name.split("|")) for st in pat.steps]
    unless = [frozenset(n for u in st.unless for n in u.split("|")) for st in pat.steps]
    budget = [SEARCH_BUDGET]

    def back(k: int, nxt: int, roles: dict[str, str], pages: dict[str, int]) -> list[int] | None:
        if k < 0:
            return []
        step = pat.steps[k]
        for pos in range(nxt - 1, -1, -1):
            if budget[0] <= 0:
                return None
            cpu, obj = trace[life[pos][0]].cpu, life[pos][1]
            if (
                names[pos] in alts[k]
                and not (k and names[pos] in unless[k])
                and _bind_role(roles, step.role, cpu)
                and not (step.page and (obj[0] != "page" or pages.get(step.page, obj[1]) != obj[1]))
            ):
                budget[0] -= 1
                r2 = {**roles, step.role: cpu} if step.role != ANY else roles
                p2 = {**pages, step.page: obj[1]} if step.page else pages
                rest = back(k - 1, pos, r2, p2)
                if rest is not None:
                    return [*rest, pos]
            if names[pos] in unless[k + 1]:
                return None  # a forbidden step: no earlier one comes before the next step
        return None

    last, st = got[-1], pat.steps[-1]
    cpu, obj = trace[life[last][0]].cpu, life[last][1]
    roles = {st.role: cpu} if st.role != ANY else {}
    pages = {st.page: obj[1]} if st.page else {}
    found = back(len(pat.steps) - 2, last, roles, pages)
    return got if found is None else [*found, last]


def _bind_role(roles: dict[str, str], role: str, cpu: str) -> bool:
    if role == ANY:
        return True
    bound = roles.get(role)
    if bound is not None:
        return bound == cpu
    return cpu not in roles.values()


class FreeSwapSection(NamedTuple):
    """free_swap_and_cache()'s swap_lock section, read off its steps."""

    value: int
    page: int
    locked: bool
    uncharge: int


def fold_free_swap_and_cache(trace: list[TraceEvent]) -> list[TraceEvent]:
    """A model that takes swap_lock across steps (swap_entry_free_locked, find_get_page,
    trylock_page, page_cache_release, spin_unlock_swap_lock) has no single
    ``free_swap_and_cache_locked`` step: sum each such section up in one, at the index
    of its decisive step -- the trylock_page() when a page was found (busy or locked),
    else the find_get_page() that found none, else the swap_entry_free() -- so that the
    patterns see the section where its outcome was decided, relative to the other
    CPUs' steps.  The other steps stay, so indices still point into ``trace``.  A trace
    with the single step is returned as it is."""
    out = trace
    # cpu -> (index of the decisive step so far, the swap_entry_free_locked event, page,
    # trylock result)
    open_: dict[str, tuple[int, TraceEvent, int, bool]] = {}
    for i, ev in enumerate(trace):
        if ev.prim == "swap_entry_free_locked":
            open_[ev.cpu] = (i, ev, 0, False)
        elif ev.cpu in open_:
            at, first, page, locked = open_[ev.cpu]
            if ev.prim == "find_get_page":
                open_[ev.cpu] = (i, first, int(ev.result), False)
            elif ev.prim == "trylock_page":
                open_[ev.cpu] = (i, first, page, ev.result is True)
            elif ev.prim == "spin_unlock_swap_lock":
                del open_[ev.cpu]
                res = FreeSwapSection(first.result.value, page, locked, first.result.uncharge)
                if out is trace:
                    out = list(trace)
                out[at] = TraceEvent(trace[at].t, first.cpu, first.func,
                                     "free_swap_and_cache_locked", first.args, res)  # fmt: skip
    return out


def classify_trace(trace: list[TraceEvent], slot: int, variant: str = "") -> Match:
    trace = fold_free_swap_and_cache(trace)
    life = slot_life(trace, slot)
    found: list[tuple[tuple[bool, int, int, bool], Pattern, list[int]]] = []
    for pat in PATTERNS:
        if pat.variants and variant and variant not in pat.variants:
            continue
        got = match_pattern(pat, trace, life)
        if got is not None:
            rank = (not pat.fallback, life[got[-1]][0], len(pat.steps), bool(pat.variants))
            found.append((rank, pat, got))
    if not found:
        return _new(trace, slot, life)
    _, pat, got = max(found, key=lambda f: f[0])
    idx = [life[g][0] for g in got]
    pages = [life[g][1][1] for g, st in zip(got, pat.steps, strict=True) if st.page]
    pairs = tuple(
        (life[b][1][0], step_name(trace[life[a][0]]), step_name(trace[life[b][0]]))
        for (a, sa), (b, sb) in pairwise(zip(got, pat.steps, strict=True))
        if trace[life[a][0]].cpu != trace[life[b][0]].cpu and ANY not in (sa.role, sb.role)
    )
    page = pages[-1] if pages else 0
    also = tuple(sorted({p for p in pages if p != page}))
    return Match(pat.cls, slot, page, idx[0], idx[-1], pat.summary, also, pairs, pat.cite,
                 tuple(idx))  # fmt: skip


def _new(trace: list[TraceEvent], slot: int, life: list[tuple[int, Obj]]) -> Match:
    """No pattern matched: list the racing pairs of the slot's life, latest first."""
    last: dict[Obj, int] = {}
    pairs: list[Pair] = []
    page = 0
    for i, o in life:
        j = last.get(o)
        if j is not None and trace[j].cpu != trace[i].cpu:
            pairs.append((o[0], step_name(trace[j]), step_name(trace[i])))
        last[o] = i
        if o[0] == "page":
            page = o[1]
    every = list(dict.fromkeys(reversed(pairs)))
    recent = every[:NEW_PAIRS]
    detail = "no known pattern; racing pairs: " + (
        "; ".join(f"{a} -> {b} ({k})" for k, a, b in recent) if recent else "none"
    )
    start = life[0][0] if life else 0
    at = life[-1][0] if life else max(len(trace) - 1, 0)
    return Match("NEW", slot, page, start, at, detail, (), tuple(every))


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
    return [classify_trace(trace, s, run.job.variant) for s in slots]


def classify_run(run: Run) -> list[str]:
    """The distinct classes of a failing run, sorted."""
    return sorted({m.cls for m in classify_matches(run)})
