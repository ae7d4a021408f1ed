"""The results of `kernsim sim` and `kernsim run` as text: a table with the runs side by
side (up to three), or one row per run as each finishes, then the violations grouped by
kind (every one with ``-v``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kernsim.check.invariants import Violation
from kernsim.check.result import by_design

#: (label, key of RunResult.to_dict() or a derived name).
ROWS = [
    ("seed", "seed"),
    ("verdict", "verdict"),
    ("memsw leak (bytes)", "memsw_leak_bytes"),
    ("memory.usage_in_bytes", "usage_bytes"),
    ("memory.memsw.usage_in_bytes", "memsw_usage_bytes"),
    ("stale swap cache pages", "stale_swapcache_pages"),
    ("swap slots in use", "swap_slots_used"),
    ("  given back by design", "by_design"),
    ("  only by global reclaim", "not_by_design"),
    ("  after global reclaim", "swap_slots_used_after_global_reclaim"),
    ("other invariants broken", "other_failures"),
    ("memcg OOM kills", "oom_kills"),
    ("kernel events", "events"),
    ("virtual seconds", "virtual_s"),
    ("trace sha256", "trace_sha256"),
]
#: At most this many runs side by side; more are streamed one row each.
SIDE_BY_SIDE = 3
STREAM_COLUMNS = ("seed", "variant", "verdict", "leak B", "pinned", "by design", "other",
                  "events", "trace")  # fmt: skip
STREAM_WIDTHS = (6, 9, 8, 8, 7, 10, 6, 9, 12)

#: How each kind of pin comes back, in words.
PIN_WORDS = {
    "stale": "stale cache-only",
    "charged": "still charged",
    "unreferenced": "held by no cache page",
}


#: The trace column of a run that keeps no trace (the cluster's).
NO_TRACE = "(cluster)"


def _cell(d: dict[str, Any], key: str) -> str:
    pins = d["swap_slots_pinned"]
    if key == "by_design":
        return str(pins["given_back_by_design"])
    if key == "not_by_design":
        return str(pins["not_given_back_by_design"])
    if key == "other_failures":
        return ", ".join(d["other_failures"]) or "none"
    if key == "trace_sha256":
        return str(d.get(key, NO_TRACE))[:12]
    # The cluster runs on the real clock: its row shows the run's wall seconds.
    v = d["wall_s"] if key == "virtual_s" and "wall_s" in d else d[key]
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render_table(results: Sequence[Any], verbose: bool = False) -> str:
    """The runs side by side, one column each, then their violations grouped by kind."""
    if not results:
        return ""
    first = results[0]
    lines = [
        f"scenario {first.scenario}, faults {first.faults}, page_cluster {first.page_cluster}",
        "",
    ]
    cols = [r.to_dict() for r in results]
    rows = [["", *[c["variant"] for c in cols]]]
    for label, key in ROWS:
        if key == "virtual_s" and "wall_s" in cols[0]:
            label = "seconds of load (wall)"  # the cluster runs on the real clock
        rows.append([label, *[_cell(c, key) for c in cols]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in results:
        if r.violations:
            lines += ["", *render_violations(r, verbose)]
    return "\n".join(lines)


def stream_header() -> str:
    return "  ".join(c.rjust(w) for c, w in zip(STREAM_COLUMNS, STREAM_WIDTHS, strict=True))


def stream_row(r: Any) -> str:
    """One run as one line, for many runs (a seed range)."""
    d = r.to_dict()
    pins = d["swap_slots_pinned"]
    pinned = pins["given_back_by_design"] + pins["not_given_back_by_design"]
    cells = (d["seed"], d["variant"], d["verdict"], d["memsw_leak_bytes"], pinned,
             pins["given_back_by_design"], len(d["other_failures"]), d["events"],
             str(d.get("trace_sha256", NO_TRACE))[:12])  # fmt: skip
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, STREAM_WIDTHS, strict=True))


def render_violations(r: Any, verbose: bool = False) -> list[str]:
    """``violations under V, seed S: VERDICT`` and one line per kind (every violation,
    with its trace events, under ``verbose``)."""
    lines = [f"violations under {r.variant}, seed {r.seed}: {r.verdict}"]
    kinds: dict[str, list[Violation]] = {}
    for v in r.violations:
        kinds.setdefault(v.kind, []).append(v)
    for kind, vs in kinds.items():
        lines.append(f"  {kind} x{len(vs)}{_group_detail(kind, vs, r)}")
        if verbose:
            for v in vs:
                lines.append(f"    {v.message}")
                lines.extend(f"        {e}" for e in v.events)
    if not verbose and any(len(vs) > 1 for vs in kinds.values()):
        lines.append("  (-v lists each one)")
    return lines


#: More runs of consecutive slots than this are shown as their lowest and highest.
RANGES_SHOWN = 6


def slot_range(slots: list[int]) -> str:
    """``slot 7``, ``slots 1-3, 9, 2121``, or ``slots 12-2476`` when scattered wide."""
    if not slots:
        return ""
    ordered = sorted(set(slots))
    if len(ordered) == 1:
        return f"slot {ordered[0]}"
    runs: list[list[int]] = []
    for s in ordered:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    if len(runs) > RANGES_SHOWN:
        return f"slots {ordered[0]}-{ordered[-1]}"
    return "slots " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _group_detail(kind: str, vs: list[Violation], r: Any) -> str:
    slots = sorted({s for v in vs for s in v.slots})
    where = slot_range(slots)
    if kind == "memsw_leak":
        if not slots:
            return f" ({r.memsw_leak_bytes} B)"
        many = f"{len(slots)} slots: " if len(slots) > 1 else ""
        return f" ({r.memsw_leak_bytes} B, charged to {many}{where})"
    if kind == "swap_slot_in_use":
        parts = []
        for pin, words in PIN_WORDS.items():
            group = [v for v in vs if v.pin == pin]
            if not group:
                continue
            design = by_design(group[0], r.variant)
            how = _how(pin, design)
            if len(group) > 1:
                how = how.replace(" it", " them")
            parts.append(f"{len(group)} {words} ({how})")
        return f": {', '.join(parts)}; {where}"
    if len(vs) == 1:
        return f": {vs[0].message}"
    return f" ({where})" if where else f": {vs[0].message} (and {len(vs) - 1} more)"


def how_back(v: Violation, variant: str) -> str:
    """How the slot of a swap_slot_in_use violation comes back under ``variant``."""
    return _how(v.pin, by_design(v, variant))


def _how(pin: str, design: bool) -> str:
    if pin == "charged":
        return "memcg reclaim gives it back"
    if pin == "stale" and design:
        return "scan_swap_map() reuses it"
    if pin == "stale":
        return "only global reclaim gives it back"
    return "nothing gives it back"
