"""Race diagrams in the style of the LKML mails: one column per CPU, time going down.

Only the events that touch the leaked slot or its page are drawn, from where
the race begins (the reader's swap_duplicate(), reclaim's trylock_page())
to a few events after the decisive one; read-only peeks (page_flags) are left
out.  Below the columns: the state that leaked and the invariants it breaks.
"""

from __future__ import annotations

from typing import Any

from kernsim.explore.classify import Match, classify_matches, settled_trace
from kernsim.explore.job import Run
from kernsim.model.port import PRIMITIVES
from kernsim.sim.engine import TraceEvent

NOISE = frozenset({"page_flags", "reclaim_lru_sizes", "lru_add_drain", "lru_add_drain_all"})
AFTER = 6  # events drawn after the decisive one
CELL = 72  # widest cell, in characters

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


def race_events(trace: list[TraceEvent], m: Match) -> list[TraceEvent]:
    out: list[TraceEvent] = []
    after = 0
    pages = frozenset(p for p in (m.page, *m.also) if p)
    for i in range(m.start, len(trace)):
        ev = trace[i]
        if i > m.at:  # after the race, only what happens to the leaked page matters
            pages = frozenset({m.page})
        if i == m.at or touches(ev, m.slot, pages):
            out.append(ev)
            if i > m.at:
                after += 1
                if after >= AFTER:
                    break
    return out


def cell(ev: TraceEvent, func_shown: bool = False) -> str:
    """One event; its kernel function only where the column enters it (the function
    is already on the line above), and no ``= None`` for procedures."""
    args = ", ".join(map(str, ev.args))
    text = f"{ev.prim}({args})"
    if ev.result is not None:
        text += f" = {_result(ev.result)}"
    if func_shown:
        text = "  " + text
    elif ev.prim not in (ev.func, ev.func + "_locked"):  # free_swap_and_cache_locked
        text = f"{ev.func}: {text}"
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _cells(evs: list[TraceEvent]) -> list[str]:
    last: dict[str, str] = {}
    out = []
    for ev in evs:
        out.append(cell(ev, last.get(ev.cpu) == ev.func))
        last[ev.cpu] = ev.func
    return out


def _result(r: Any) -> str:
    if type(r).__name__ == "FreeSwapLocked":
        lock = "trylock ok" if r.locked else "trylock FAILS"
        found = f"page {r.page}, {lock}" if r.page else "no page"
        return f"map->{r.value:#x}, {found}"
    return str(tuple(r)) if isinstance(r, tuple) else str(r)


def draw(run: Run, m: Match) -> str:
    """The diagram of one race of ``run`` (a failing, shrunk run)."""
    assert run.result is not None
    evs = race_events(settled_trace(run), m)
    cpus: list[str] = []
    for ev in evs:
        if ev.cpu not in cpus:
            cpus.append(ev.cpu)
    heads = [f"CPU{i} ({c}: {_activity(evs, c)})" for i, c in enumerate(cpus)]
    texts = _cells(evs)
    rows = [[t if ev.cpu == c else "" for c in cpus] for ev, t in zip(evs, texts, strict=True)]
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
            lines.append(f"=> {v.kind}: {v.message}")
    return "\n".join(lines)


def _activity(evs: list[TraceEvent], cpu: str) -> str:
    for ev in evs:
        if ev.cpu == cpu and ev.func in ACTIVITY:
            return ACTIVITY[ev.func]
    return next(ev.func for ev in evs if ev.cpu == cpu)


def draw_all(run: Run) -> list[tuple[Match, str]]:
    return [(m, draw(run, m)) for m in classify_matches(run)]
