"""Race diagrams in the style of the LKML mails: one column per CPU, time going down.

Only the events that touch the leaked slot or its page are drawn, from where
the race begins (the reader's swap_duplicate(), reclaim's trylock_page())
to a few events after the decisive one; read-only peeks (page_flags) are left
out.  Below the columns: the state that leaked and the invariants it breaks.
"""

from __future__ import annotations

from typing import Any

from kernsim.explore.classify import (
    Match,
    classify_matches,
    classify_trace,
    leaked_slots,
    settled_trace,
)
from kernsim.explore.job import Run
from kernsim.model.port import PRIMITIVES
from kernsim.sim.engine import TraceEvent
from kernsim.sim.words import call

NOISE = frozenset({"page_flags", "reclaim_lru_sizes", "lru_add_drain", "lru_add_drain_all"})
AFTER = 6  # events drawn after the decisive one
CELL = 90  # widest cell, in characters

#: What a CPU is doing, named after the first kernel function of its that is drawn.
ACTIVITY = {
    "exit_mmap": "exit",
    "swap_free_and_uncharge": "swap_free",
    "zap_page_range": "exit",
    "free_swap_and_cache": "exit",
    "swapin_readahead": "swapin_readahead",
    "read_swap_cache_async": "swapin_readahead",
    "swap_duplicate_for_cache": "swapin_readahead",
    "do_swap_page": "do_swap_page",
    "do_wp_page": "do_wp_page",
    "shrink_page": "shrink_page_list",
    "add_to_swap": "shrink_page_list",
    "end_swap_bio_read": "end_swap_bio_read",
    "end_swap_bio_write": "end_swap_bio_write",
    "mem_cgroup_check_stale_swap": "v5 stale-swap worker",
}


def touches(ev: TraceEvent, slot: int, pages: frozenset[int]) -> bool:
    if ev.prim in NOISE:
        return False
    first: Any = ev.args[0] if ev.args else None
    obj = PRIMITIVES[ev.prim].obj
    if (obj == "swp" and first == slot) or (obj == "page" and first in pages):
        return True
    if ev.prim == "add_to_swap_cache":
        return bool(ev.args[1] == slot)
    r: Any = ev.result
    if ev.prim == "find_get_page":
        return r in pages
    # zap_pte() returns (2, entry, _) for a swap pte, (1, pfn, _) for a present one.
    if ev.prim == "zap_pte" and isinstance(r, tuple):
        return bool(r[:2] == (2, slot) or (r[0] == 1 and r[1] in pages))
    return False


#: How far back (trace events) to look for the other CPUs of a race.
LOOKBACK = 4000
#: Events drawn per CPU that acted on the page before the race began.
BEFORE = 8
#: A block of up to this many events repeated back to back is drawn once, then ``... xN``.
FOLD_BLOCK = 8


def race_events(trace: list[TraceEvent], m: Match) -> list[TraceEvent]:
    out: list[TraceEvent] = []
    after = 0
    pages = frozenset(p for p in (m.page, *m.also) if p)
    steps = frozenset(m.steps)
    for i in range(m.start, len(trace)):
        ev = trace[i]
        if i > m.at:  # after the race, only what happens to the leaked page matters
            pages = frozenset({m.page})
        # A step of the race's pattern is drawn even when it is a read-only peek: the
        # zap's page_flags() that finds PG_writeback decides the writeback races.
        if i == m.at or i in steps or touches(ev, m.slot, pages):
            out.append(ev)
            if i > m.at:
                after += 1
                if after >= AFTER:
                    break
    return _earlier_cpus(trace, m, out) + out


def _earlier_cpus(trace: list[TraceEvent], m: Match, drawn: list[TraceEvent]) -> list[TraceEvent]:
    """A race drawn on one CPU misses its other side, which acted before the race began
    (type-2: the zap unmapped and uncharged the page before reclaim's trylock_page()):
    the last events of the CPU that touched the page or the slot last before it."""
    cpus = {ev.cpu for ev in drawn}
    if len(cpus) > 1:
        return []
    pages = frozenset(p for p in (m.page, *m.also) if p)
    other = ""
    picked: list[int] = []
    for i in range(m.start - 1, max(-1, m.start - LOOKBACK), -1):
        ev = trace[i]
        if ev.prim == "alloc_page" and isinstance(ev.result, tuple) and ev.result[0] in pages:
            break  # the page's life began here
        if ev.cpu in cpus or not touches(ev, m.slot, pages) or (other and ev.cpu != other):
            continue
        other = ev.cpu
        picked.append(i)
        if len(picked) >= BEFORE:
            break
    return [trace[i] for i in sorted(picked)]


def _key(ev: TraceEvent) -> tuple[Any, ...]:
    return (ev.cpu, ev.func, ev.prim, ev.args, call("", (), ev.result))


def fold(evs: list[TraceEvent]) -> list[tuple[TraceEvent, int, int]]:
    """Events with (repeats, block length): a block repeated back to back on one CPU
    (reclaim spinning on trylock_page()/putback_lru_page()) is kept once, its last event
    counting the repeats."""
    keys = [_key(ev) for ev in evs]
    out: list[tuple[TraceEvent, int, int]] = []
    i = 0
    while i < len(evs):
        best_len, best_reps = 1, 1
        for n in range(1, FOLD_BLOCK + 1):
            block = keys[i : i + n]
            if len(block) < n or len({k[0] for k in block}) != 1:
                break
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == block:
                reps += 1
            if reps > 1 and reps * n > best_reps * best_len:
                best_len, best_reps = n, reps
        out.extend((ev, 1, 1) for ev in evs[i : i + best_len - 1])
        out.append((evs[i + best_len - 1], best_reps, best_len))
        i += best_len * best_reps
    return out


def cell(ev: TraceEvent, func_shown: bool = False) -> str:
    """One event; its kernel function only where the column enters it (the function
    is already on the line above), and no ``= None`` for procedures."""
    text = call(ev.prim, ev.args, ev.result)
    if func_shown:
        text = "  " + text
    elif ev.prim not in (ev.func, ev.func + "_locked"):  # free_swap_and_cache_locked
        text = f"{ev.func}: {text}"
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _cells(evs: list[tuple[TraceEvent, int, int]], at: TraceEvent | None) -> list[str]:
    last: dict[str, str] = {}
    out = []
    for ev, reps, n in evs:
        text = cell(ev, last.get(ev.cpu) == ev.func)
        if reps > 1:
            text += f"  ... x{reps}" if n == 1 else f"  ... last {n} lines x{reps}"
        if ev is at:
            text += "  <- race"
        out.append(text)
        last[ev.cpu] = ev.func
    return out


def draw(run: Run, m: Match) -> str:
    """The diagram of one race of ``run`` (a failing, shrunk run)."""
    assert run.result is not None
    trace = settled_trace(run)
    evs = fold(race_events(trace, m))
    cpus: list[str] = []
    for ev, _, _ in evs:
        if ev.cpu not in cpus:
            cpus.append(ev.cpu)
    plain = [ev for ev, _, _ in evs]
    heads = [f"CPU{i} ({c}: {_activity(plain, c)})" for i, c in enumerate(cpus)]
    texts = _cells(evs, trace[m.at] if 0 <= m.at < len(trace) else None)
    rows = [
        [t if ev.cpu == c else "" for c in cpus] for (ev, _, _), t in zip(evs, texts, strict=True)
    ]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(heads)]
    job = run.job
    lines = [
        f"{m.cls}{': ' + m.detail if m.detail else ''}",
        f"(scenario {job.scenario}, variant {job.variant}, seed {job.seed}; "
        f"slot {m.slot}, page {m.page})",
        "",
        " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip(),
        "-+-".join("-" * w for w in widths),
    ]
    for r in rows:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    lines.append("")
    for v in run.result.violations:
        if m.slot in v.slots or (m.page and m.page in v.pages):
            lines.append(f"=> {v.kind}: {v.message}{_comes_back(v, job.variant)}")
    return "\n".join(lines)


def _comes_back(v: Any, variant: str) -> str:
    """Whether ``variant`` gives a pinned slot back by its own design (see
    kernsim.check.result)."""
    from kernsim.sim.render import how_back

    if v.kind != "swap_slot_in_use" or not v.pin:
        return ""
    return f" [{how_back(v, variant)}]"


def _activity(evs: list[TraceEvent], cpu: str) -> str:
    for ev in evs:
        if ev.cpu == cpu and ev.func in ACTIVITY:
            return ACTIVITY[ev.func]
    return next(ev.func for ev in evs if ev.cpu == cpu)


def draw_all(run: Run) -> list[tuple[Match, str]]:
    """One diagram per leaked slot; several are numbered ("leaked slot 1 of 2")."""
    matches = classify_matches(run)
    out = []
    for i, m in enumerate(matches, start=1):
        text = draw(run, m)
        if len(matches) > 1:
            title, _, rest = text.partition("\n")
            text = f"{title}  [leaked slot {i} of {len(matches)}]\n{rest}"
        out.append((m, text))
    return out


#: ``kernsim sim -v`` draws at most this many leaked slots per run.
MAX_DRAWN = 4


def draw_result(result: Any, limit: int = MAX_DRAWN) -> list[str]:
    """The diagrams of a simulate() result that kept its trace (``kernsim sim -v``)."""
    import random

    from kernsim.explore.job import Job
    from kernsim.explore.strategies import Chooser

    if not result.violations or result.world is None:
        return []
    run = Run(Job(result.scenario, result.variant, result.seed), result,
              Chooser(random.Random(0)))  # fmt: skip
    slots = leaked_slots(run)
    if not slots:
        return [draw(run, m) for m in classify_matches(run)]
    trace = settled_trace(run)  # each slot's walk reads the whole trace: draw a few
    out = [draw(run, classify_trace(trace, s)) for s in slots[:limit]]
    if len(slots) > limit:
        out.append(f"({len(slots) - limit} more leaked slots not drawn; "
                   "`kernsim explore` shrinks a race to its smallest schedule)")  # fmt: skip
    return out
