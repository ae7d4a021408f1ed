"""Race diagrams read like the LKML mails: kernel words, folded loops, every CPU drawn."""

from __future__ import annotations

from kernsim.explore.diagram import fold
from kernsim.explore.report import parse_diagrams
from kernsim.model.filemap import PageFlags
from kernsim.model.swapfile import SwapEntryFreed
from kernsim.sim.engine import TraceEvent
from kernsim.sim.words import call


def ev(cpu: str, func: str, prim: str, *args: object, result: object = None) -> TraceEvent:
    return TraceEvent(0.0, cpu, func, prim, args, result)


def test_page_flags_read_as_pg_names() -> None:
    flags = PageFlags(True, False, True, False, True, True, True, 2, 1)
    assert call("page_flags", (2,), flags) == (
        "page_flags(2) = PG_locked|PG_swapcache|PG_uptodate, mapped, count 2"
    )
    # A trace restored from data holds a plain tuple: the same words.
    assert call("page_flags", (2,), tuple(flags)) == call("page_flags", (2,), flags)


def test_no_python_reprs() -> None:
    assert call("unlock_page", (2,), None) == "unlock_page(2)"
    freed = SwapEntryFreed(1, 0, True)
    assert call("swap_entry_free_locked", (3,), freed) == (
        "swap_entry_free_locked(3) = map->0x1, cache only"
    )
    assert call("trylock_page", (8,), False) == "trylock_page(8) = False"


def test_a_spin_folds_into_one_block_with_its_count() -> None:
    spin = [
        ev("task2", "shrink_page", "trylock_page", 2, result=True),
        ev("task2", "finish_page", "unlock_page", 2),
        ev("task2", "finish_page", "putback_lru_page", 2, False, result=False),
    ]
    zap = ev("task1", "zap_page_range", "zap_pte", 1, 1, result=(2, 1, False))
    folded = fold([*spin * 22, zap])
    assert [(e.prim, reps, n) for e, reps, n in folded] == [
        ("trylock_page", 1, 1),
        ("unlock_page", 1, 1),
        ("putback_lru_page", 22, 3),
        ("zap_pte", 1, 1),
    ]
    # Events of two CPUs taking turns are not a loop of one.
    turns = [spin[0], zap, spin[0], zap]
    assert [reps for _, reps, _ in fold(turns)] == [1, 1, 1, 1]


def test_the_html_table_comes_from_the_text_columns() -> None:
    text = "\n".join(
        [
            "type-2",
            "(scenario race, variant none, seed 5; slot 5, page 2)",
            "",
            "CPU0 (task1: exit)      | CPU1 (task2: shrink_page_list)",
            "------------------------+-------------------------------",
            "zap_pte(1, 1) = (1, 2)  |",
            "                        | add_to_swap_cache(2, 5) = 0  <- race",
            "",
            "=> swap_slot_in_use: swap slot 5 still in use",
        ]
    )
    [d] = parse_diagrams(text)
    assert d["title"] == "type-2"
    assert d["heads"] == ["CPU0 (task1: exit)", "CPU1 (task2: shrink_page_list)"]
    assert [r["cells"] for r in d["rows"]] == [
        ["zap_pte(1, 1) = (1, 2)", ""],
        ["", "add_to_swap_cache(2, 5) = 0"],
    ]
    assert [r["race"] for r in d["rows"]] == [False, True]
    assert d["verdicts"] == ["swap_slot_in_use: swap slot 5 still in use"]
