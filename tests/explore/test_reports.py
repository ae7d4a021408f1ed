"""The explore report page: what made it, what each race is, its verdict, no empty parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import escape as html_escape

from kernsim.explore.patterns import BY_NAME
from kernsim.explore.report import write_explore_report
from kernsim.sim.engine import TRACE_IDENTITY

DIAGRAM = "\n".join(
    [
        "type-2",
        "(scenario race, variant none, seed 5; slot 5, page 2)",
        "",
        "CPU0 (task1: exit)      | CPU1 (task2: shrink_page_list)",
        "------------------------+-------------------------------",
        "zap_pte(1, 1) = (1, 2)  |",
        "                        | add_to_swap_cache(2, 5) = 0  <- race",
        "",
        "=> swap_slot_in_use: swap slot 5 still in use (swap_map=0x1): stale cache page 2 "
        "(cache-only, uncharged, on no memcg LRU) [only global reclaim gives it back]",
    ]
)


def summary(races: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "scenario": "race", "variant": "none", "strategy": "random", "depth": None,
        "window_s": 0.0002, "schedules_run": 10, "failures": len(races), "livelocks": 0,
        "divergences": 0, "first_failure_at": 3 if races else None, "elapsed_s": 1.0,
        "schedules_per_s": 10.0, "failures_curve": [[4, 1]] if races else [], "races": races,
        **extra,
    }  # fmt: skip


def race() -> dict[str, Any]:
    return {
        "class": "type-2", "detail": "", "kinds": ["swap_slot_in_use"], "count": 1, "seed": 5,
        "events": 10, "events_before_shrinking": 20, "switches": 2,
        "switches_before_shrinking": 9, "shrink_attempts": 7, "replay": "r.json",
        "usage_plot": None, "diagram": DIAGRAM,
    }  # fmt: skip


def test_the_page_says_what_made_it_and_what_each_race_is(tmp_path: Path) -> None:
    page = write_explore_report(tmp_path, summary([race()]), command="kernsim explore -x")
    html = page.read_text(encoding="utf-8")
    assert "made by <code>kernsim explore -x</code>" in html
    assert f"trace identity <code>{TRACE_IDENTITY}</code>" in html
    assert "kernsim 0." in html or "kernsim unknown" in html
    assert str(html_escape(BY_NAME["type-2"].summary)) in html
    assert "LEAK: a slot only global reclaim gives back" in html
    assert '<tr class="race"><td></td><td>add_to_swap_cache(2, 5) = 0</td></tr>' in html
    assert "7 shrink attempts" in html and "kernsim replay r.json" in html
    assert "first failure at schedule</th><td>#3" in html


def test_no_race_no_empty_heading_and_a_hint(tmp_path: Path) -> None:
    s = summary([], strategy="pct", depth=3)
    html = write_explore_report(tmp_path, s, command="kernsim explore").read_text()
    assert "<h2>Races</h2>" not in html and "No schedule broke an invariant" in html
    assert "--strategy random" in html
    assert "first failure at schedule</th><td>none" in html


def test_coverage_is_shown_when_the_search_reports_it(tmp_path: Path) -> None:
    s = summary([race()], coverage={"distinct_interleavings": 42}, coverage_curve=[[10, 42]])
    html = write_explore_report(tmp_path, s, command="kernsim explore").read_text()
    assert "<h2>Coverage</h2>" in html and "distinct interleavings" in html
    assert (
        "<h2>Coverage</h2>"
        not in write_explore_report(tmp_path, summary([race()]), command="c").read_text()
    )


def test_terminal_summary_names_the_replay_file_or_how_to_get_one() -> None:
    from kernsim.cli.explore import render

    with_file = render(summary([race()], coverage=12))
    assert "shrink: 7 attempts; replay: r.json" in with_file
    without = render(summary([{**race(), "replay": None}], coverage=12))
    assert "replay file: with --out DIR" in without and "None" not in without
