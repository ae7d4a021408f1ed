"""The thread's history as a matrix: every race kernsim knows against every version posted.

``kernsim matrix --history``.  Rows are the races: the catalogue's scripted ones
(``example-a``, ``example-b``, ``type-1``, ``type-2``) and the v5 hole that schedule
search found (docs/v5-hole.md), both replayed from its file and forced step by step
(:func:`v5_hole`).  Columns are vanilla 2.6.30,
each version of the fix kernsim models as posted (v4, v5, v6, v7; Nishimura's type-2 patch
with page-cluster 0, the configuration he tested), 2.6.31, and 2.6.30 with
page_cluster=0.  Every cell is one deterministic run; docs/HISTORY.md says, claim by
claim, what the thread expected of each cell.

The v5 hole row replays the recorded switches under each column; the switches are
anchored to kernel events, so where a variant changes the events (no readahead, an
extra hook) the rest of the schedule runs in time order: the cell says what *that*
schedule does under the column, not whether some other schedule could still leak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kernsim.explore.executors import run_all

CATALOGUE = ("example-a", "example-b", "type-1", "type-2")
V5_HOLE = "v5-hole"
V5_HOLE_SCRIPTED = "v5-hole (scripted)"
ROWS = (*CATALOGUE, V5_HOLE, V5_HOLE_SCRIPTED)
#: The replay file of the v5 hole, relative to the repository root.
V5_HOLE_FILE = Path("docs") / "replays" / "race-v5-hole-seed48.json"


@dataclass(frozen=True, slots=True)
class HistoryColumn:
    label: str
    variant: str
    page_cluster: int | None = None
    what: str = ""


COLUMNS = (
    HistoryColumn("none", "none", None, "vanilla 2.6.30"),
    HistoryColumn("v4", "v4", None, "27 Apr 2009, as posted"),
    HistoryColumn("v5", "v5", None, "30 Apr 2009, as posted"),
    HistoryColumn("v6", "v6", None, "8 May 2009, as posted"),
    HistoryColumn("v7", "v7", None, "12 May 2009, as posted"),
    HistoryColumn("type2-fix+pc0", "type2-fix", 0, "Nishimura's patch, page-cluster 0"),
    HistoryColumn("upstream", "upstream", None, "2.6.31"),
    HistoryColumn("page_cluster=0", "none", 0, "2.6.30, no readahead"),
)


@dataclass(frozen=True, slots=True)
class HistoryTask:
    row: str
    column: str
    variant: str
    page_cluster: int | None
    replay: str = ""  # the v5 hole's replay file, for that row


def repo_file(rel: Path) -> Path:
    """``rel`` in the source tree this module was loaded from, else in the working directory."""
    here = Path(__file__).resolve().parents[2] / rel
    return here if here.is_file() else rel


def verdict_of(memsw_leak: int, slots_used: int, stale: int, kinds: list[str]) -> str:
    """One cell in words: memsw LEAK > stale slot > slot pinned (charged page) > other > clean."""
    if memsw_leak > 0:
        return "memsw LEAK"
    if slots_used > 0:
        return "stale slot" if stale > 0 else "slot pinned (charged)"
    if kinds:
        return "other: " + ", ".join(kinds)
    return "clean"


def run_history_task(task: HistoryTask) -> dict[str, Any]:
    """Top-level (it may cross process boundaries): one cell's run."""
    from kernsim.sim.run import SimResult, simulate

    result: SimResult | None
    try:
        if task.row == V5_HOLE:
            result = _replay(task)
        elif task.row == V5_HOLE_SCRIPTED:
            result = simulate_scripted(v5_hole, task.variant, task.page_cluster)
        else:
            result = simulate(task.row, task.variant, 1, None, task.page_cluster, keep_trace=False)
    except (AssertionError, RuntimeError, ValueError, OSError) as exc:
        return {"verdict": f"n/a ({type(exc).__name__}: {exc})", "error": str(exc)}
    if result is None:
        return {"verdict": "n/a (livelock)", "error": "livelock"}
    kinds = sorted({v.kind for v in result.violations})
    return {
        "verdict": verdict_of(
            result.memsw_leak_bytes, result.swap_slots_used, result.stale_swapcache_pages, kinds
        ),
        "memsw_leak_bytes": result.memsw_leak_bytes,
        "swap_slots_used": result.swap_slots_used,
        "stale_swapcache_pages": result.stale_swapcache_pages,
        "kinds": kinds,
        "events": result.events,
    }


def _replay(task: HistoryTask) -> Any:
    from kernsim.explore import replayfile
    from kernsim.explore.job import execute

    job, _ = replayfile.read(Path(task.replay))
    run = execute(replace(job, variant=task.variant, page_cluster=task.page_cluster))
    return run.result


def v5_hole(world: Any) -> None:
    """The v5 hole (docs/v5-hole.md) forced step by step, as the catalogue forces its races.

    A's page P is in the swap cache (written, unmapped) on slot eA; B's page is swapped out
    on the next slot eB.  CPU0 (A) write-faults eA: reuse_swap_page() deletes P from the
    swap cache, whose swap_free() leaves eA at 1 (A's pte).  CPU1 (B) faults eB; its
    readahead finds no page for eA, takes a reference (1 -> 2) and adds Q.  Q's read
    completes (v5's lockless check reads 2: in use).  Then A's do_swap_page() goes on to
    its own swap_free(eA): 2 -> 1, and Q is the slot's only user, uncharged.
    """
    from kernsim.model.memory import do_swap_page
    from kernsim.sim.scripting import Run, Script, call

    s = Script(world)
    a, b = s.task("A"), s.task("B")
    pa = s.fault(a, 0)
    kswapd = s.kthread()
    s.run(kswapd, s.reclaim(kswapd, [pa], drain=True, age=True))  # P stays cached
    s.swap_out([s.fault(b, 0)])
    ea, eb = s.pte(a, 0).val, s.pte(b, 0).val
    assert not s.pte(a, 0).present, "setup: A's page is still mapped"
    assert pa in s.mm.swapper_space.values(), "setup: P is not in the swap cache"
    assert ea < eb, "setup: Q must be B's first readahead read"
    n = world.engine._names.get("irq", 0)
    q_irq = "irq" if n == 0 and "irq" not in world.engine.cpus else f"irq{n}"
    free = ("swap_free", "swapcache_free")
    s.race(
        [
            Run("A", through=call(free, a0=ea)),  # reuse_swap_page() deleted P
            Run("B", through=call("add_to_swap_cache", a1=ea)),  # readahead adds Q
            Run("B"),  # B submits its reads and sleeps on its own page
            Run(q_irq),  # Q's read completes: end_swap_bio_read()
        ],
        [(a, do_swap_page(a, a.task, 0, ea, True)), (b, do_swap_page(b, b.task, 0, eb, True))],
    )
    s.exit_all()


def simulate_scripted(race: Any, variant: str, page_cluster: int | None) -> Any:
    """simulate() for a scripted race that is not in the catalogue: the catalogue's
    machine, limit and fault profile, seed 1."""
    from kernsim.check.spec import fault_profile
    from kernsim.model.memcontrol import MemcgBug
    from kernsim.model.mm import KernelBug
    from kernsim.sim.run import build_world, check

    world = build_world("type-1", variant, 1, fault_profile("type-1"), page_cluster)
    try:
        race(world)
        return check(world, "type-1")
    except (KernelBug, MemcgBug) as exc:
        raise RuntimeError(f"kernel bug: {exc}") from exc


def build_history(jobs: int = 1, replay: Path | None = None) -> dict[str, Any]:
    """Run every cell; the summary the Markdown, JSON and HTML are made from."""
    start = time.perf_counter()
    replay_file = str(replay if replay is not None else repo_file(V5_HOLE_FILE))
    tasks = [
        HistoryTask(row, c.label, c.variant, c.page_cluster, replay_file if row == V5_HOLE else "")
        for row in ROWS
        for c in COLUMNS
    ]
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for task, cell in zip(tasks, run_all(run_history_task, tasks, jobs), strict=True):
        cells[(task.row, task.column)] = cell
    cols = [c.label for c in COLUMNS]
    return {
        "columns": cols,
        "column_notes": {c.label: c.what for c in COLUMNS},
        "rows": [{"race": row, "cells": {c: cells[(row, c)] for c in cols}} for row in ROWS],
        "v5_hole_replay": replay_file,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }


def all_clean(h: dict[str, Any]) -> bool:
    return all(c["verdict"] == "clean" for r in h["rows"] for c in r["cells"].values())


def to_markdown(h: dict[str, Any]) -> str:
    cols = h["columns"]
    lines = [
        "# The thread's history, reproduced",
        "",
        "One deterministic run per cell: the catalogue races are scripted, the v5 hole "
        "replays its recorded schedule. memsw LEAK = memsw.usage > usage after every task "
        "is gone; stale slot = a swap slot held by an uncharged cache page on no memcg LRU; "
        "slot pinned (charged) = a slot held by a page memcg reclaim could still free; "
        f"clean. Took {h['elapsed_s']} s.",
        "",
        "| race | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in h["rows"]:
        lines.append(f"| {row['race']} | " + " | ".join(row["cells"][c]["verdict"] for c in cols)
                     + " |")  # fmt: skip
    lines += ["", "Columns:", ""]
    lines += [f"- `{c}`: {h['column_notes'][c]}" for c in cols]
    return "\n".join(lines) + "\n"


def write_history(out: Path, h: dict[str, Any], command: str | None = None) -> list[Path]:
    import json

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "history.md", out / "history.json", out / "history.html"]
    paths[0].write_text(to_markdown(h), encoding="utf-8")
    paths[1].write_text(json.dumps(h, indent=1) + "\n", encoding="utf-8")
    paths[2].write_text(to_html(h, command), encoding="utf-8")
    return paths


def _css(verdict: str) -> str:
    if verdict.startswith("memsw LEAK"):
        return "leak"
    if verdict == "clean":
        return "clean"
    return "other" if verdict.startswith("n/a") else "pin"


def to_html(h: dict[str, Any], command: str | None = None) -> str:
    """The history matrix as one page, from the data (the same cells as the Markdown)."""
    from kernsim.explore.report import RACES, header, render

    cols = h["columns"]
    rows = [
        {"race": row["race"],
         "cells": [{"text": row["cells"][c]["verdict"], "css": _css(row["cells"][c]["verdict"])}
                   for c in cols]}
        for row in h["rows"]
    ]  # fmt: skip
    sentences = [(k, v) for k, v in RACES.items() if k != "NEW"]
    sentences.append(("v5-hole", "do_swap_page()'s reuse_swap_page() deletes the page before "
                      "swap_free(); a readahead re-adds the slot and v5's lockless check at the "
                      "end of the read sees swap_map == 2 (docs/v5-hole.md)."))  # fmt: skip
    intro = to_markdown(h).split("\n\n")[1]
    return render("history.html.j2", title="kernsim matrix --history", intro=intro,
                  columns=cols, rows=rows, notes=[(c, h["column_notes"][c]) for c in cols],
                  sentences=sentences, **header(command))  # fmt: skip
