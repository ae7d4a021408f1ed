"""The 2009 thread, claim by claim (docs/HISTORY.md): each test runs the race a claim is
about under the version it is about and asserts what the kernel does -- derived from
the kernel source and the patches as posted (v5's and v6's vmscan hunks compile to the
empty stub), not from what the thread hoped.  Message-Ids are linux-mm's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from kernsim.cli import main
from kernsim.explore.history import (
    COLUMNS,
    ROWS,
    V5_HOLE_FILE,
    build_history,
    repo_file,
    simulate_scripted,
    v5_hole,
)
from kernsim.sim.run import SimResult, simulate

CLEAN, LEAK, STALE, CHARGED = "clean", "memsw LEAK", "stale slot", "slot pinned (charged)"


@cache
def run(race: str, variant: str, page_cluster: int | None = None) -> SimResult:
    """One catalogue race (scripted, seed 1) under ``variant``; cached: runs are pure."""
    return simulate(race, variant, 1, None, page_cluster, keep_trace=True)


def verdict(r: SimResult) -> str:
    if r.memsw_leak_bytes:
        return LEAK
    if r.swap_slots_used:
        return STALE if r.stale_swapcache_pages else CHARGED
    return CLEAN if not r.violations else "other"


@dataclass
class FreeSwapSection:
    """What one free_swap_and_cache() saw in its swap_lock section."""

    value: int = 0
    page: int = 0
    locked: bool = False


def free_swap_and_cache_results(r: SimResult) -> list[FreeSwapSection]:
    """What the zap's free_swap_and_cache() saw under swap_lock, read off its steps
    (swap_entry_free_locked, find_get_page, trylock_page, up to spin_unlock_swap_lock)."""
    assert r.world is not None
    done: list[FreeSwapSection] = []
    open_: dict[str, FreeSwapSection] = {}
    for e in r.world.engine.trace:
        if e.prim == "swap_entry_free_locked":
            open_[e.cpu] = FreeSwapSection(e.result.value)
        elif e.cpu in open_:
            if e.prim == "find_get_page":
                open_[e.cpu].page = int(e.result)
            elif e.prim == "trylock_page":
                open_[e.cpu].locked = e.result is True
            elif e.prim == "spin_unlock_swap_lock":
                done.append(open_.pop(e.cpu))
    return done


# --- vanilla 2.6.30: what the reports say the races do --------------------------------------


def test_type1_swap_entry_free_returns_1_not_0() -> None:
    """Nishimura's Type-1 diagram has ``swap_entry_free() == 0``; Kamezawa: "== 1?"
    (<20090317143903.a789cf57.kamezawa.hiroyu@jp.fujitsu.com>).  2.6.30's
    swap_entry_free() returns the value left, and the cache page's reference is part of
    it: 1, and find_get_page() finds the locked readahead page."""
    (res,) = free_swap_and_cache_results(run("type-1", "none"))
    assert res.value == 1 and res.page and not res.locked


def test_type1_is_charged_as_swap_and_off_the_memcg_lru() -> None:
    """Nishimura (<20090317135702.4222e62e.nishimura@mxp.nes.nec.co.jp>, v6/v7 cover
    letters): Type-1 pages are not linked to memcg's LRU (!PageCgroupUsed) and "have been
    charged as swap"; Balbir (<20090511065008.GA5588@balbir.in.ibm.com>): "They are
    accounted to memcg in type 1 leak"."""
    r = run("type-1", "none")
    assert r.stale_swapcache_pages == 1 and r.memsw_leak_bytes == 4096
    assert any("on no memcg LRU" in v.message for v in r.violations)


def test_type2_moves_no_counter_but_keeps_a_slot() -> None:
    """Nishimura (<20090427210856.d5f4109e.d-nishimura@mtf.biglobe.ne.jp>): "Type-2
    doesn't pressure memsw.usage, but you can see it by plotting grep SwapCached";
    Balbir (<20090508165636.GD4630@balbir.in.ibm.com>): "Type 2 is not a problem, since
    the accounting is already correct"; Nishimura
    (<20090511092241.f332a1d6.nishimura@mxp.nes.nec.co.jp>): "Both type-1 and type-2
    have the problem that swp_entry is not freed correctly"."""
    t2 = run("type-2", "none")
    assert t2.memsw_leak_bytes == 0 and t2.usage_bytes == t2.memsw_usage_bytes == 0
    assert t2.stale_swapcache_pages == 1 and t2.swap_slots_used == 1
    assert run("type-1", "none").swap_slots_used == 1


@pytest.mark.parametrize("race", ["example-a", "example-b", "type-1", "type-2"])
def test_global_reclaim_frees_every_stale_slot(race: str) -> None:
    """Kamezawa (<20090317143903.a789cf57...>): "this is not 'leak'... This is a 'delay'"
    -- stale swap cache stays "until global LRU found it": global reclaim
    frees every slot; nothing inside the memcg ever does."""
    r = run(race, "none")
    assert r.swap_slots_used >= 1
    assert r.swap_slots_used_after_global_reclaim == 0


def test_v1_trigger_never_fires_in_ex_b_and_type_2() -> None:
    """v1 marks PCG_STALE only when free_swap_and_cache()'s trylock_page() fails on a
    page it found.  Nishimura (<20090422143833.2e11e10b.nishimura@mxp.nes.nec.co.jp>): in
    Ex. B "find_get_page() -> cannot find. so PCG_STALE isn't set", and Type-2 (the
    page is mapped, not in the swap cache) never reaches free_swap_and_cache().  kernsim
    has no v1 variant; it checks the premise on vanilla's trace."""
    (b,) = free_swap_and_cache_results(run("example-b", "none"))
    assert b.value == 1 and b.page == 0  # the zap found no cache page to mark
    assert free_swap_and_cache_results(run("type-2", "none")) == []  # a present pte


# --- v4 (27 Apr 2009) ---------------------------------------------------------------------------


def test_v4_cannot_avoid_type2() -> None:
    """Nishimura on v4 (<20090427210856.d5f4109e.d-nishimura@mtf.biglobe.ne.jp>): "this
    cannot avoid type-2"; "yours looks good to me for type-1".  Type-2 fires neither v4
    trigger: no failed trylock in free_swap_and_cache(), no readahead page."""
    assert verdict(run("type-2", "v4")) == STALE
    r = run("type-2", "v4")
    assert r.world is not None
    assert "memcg_mark_swapent_stale" not in {e.prim for e in r.world.engine.trace}
    assert verdict(run("type-1", "v4")) == CLEAN


def test_v4_catches_ex_a_and_ex_b() -> None:
    """v4: entries whose trylock failed (Ex. A, Type-1) or whose readahead page nobody
    uses when added (Ex. B) are swept by the GC HZ/10 later."""
    assert verdict(run("example-a", "v4")) == CLEAN
    assert verdict(run("example-b", "v4")) == CLEAN


def test_v4_works_on_the_reproducer() -> None:
    """Kamezawa, v4 (<20090427181259.6efec90b.kamezawa.hiroyu@jp.fujitsu.com>): "Works
    very well under my test" -- the loop of three 1M tasks under a 2M limit, killed every
    3 s, whose memsw "increase[s] gradually" without the patch."""
    # Seed 1, two rounds, leaks memsw under vanilla (tests/sim/test_kamezawa.py runs it).
    v4 = simulate("kamezawa", "v4", 1, params={"rounds": 2}, keep_trace=False)
    assert v4.memsw_leak_bytes == 0
    assert "memsw_leak" not in {v.kind for v in v4.violations}


# --- v5 (30 Apr 2009) ---------------------------------------------------------------------------


@cache
def scripted_hole(variant: str, page_cluster: int | None = None) -> SimResult:
    """The v5 hole (docs/v5-hole.md) forced step by step under ``variant``."""
    result: SimResult = simulate_scripted(v5_hole, variant, page_cluster)
    return result


def test_v5_found_a_hole() -> None:
    """Kamezawa, v5 (<20090430163539.7a882cef.kamezawa.hiroyu@jp.fujitsu.com>): "I found a
    hole immediately after posted this".  kernsim's search found one (docs/v5-hole.md):
    forced step by step, its interleaving leaks memsw under v5 as posted: v5's lockless
    check reads swap_map == 2 for Q."""
    r = scripted_hole("v5")
    assert verdict(r) == LEAK
    assert r.world is not None
    hints = [e.result for e in r.world.engine.trace if e.prim == "mem_cgroup_staleswap_hint"]
    assert hints and all(hints)  # every completion looked "in use": nothing queued


def test_v4_misses_the_hole_too() -> None:
    """By its triggers v4 cannot see the hole: Q is added while A's pte still counts
    (page_swapcount() 1) and the last reference goes by swap_free(), not by
    free_swap_and_cache(), so no trylock fails.  Nobody in the thread said so."""
    r = scripted_hole("v4")
    assert verdict(r) == LEAK
    assert r.world is not None
    assert "memcg_mark_swapent_stale" not in {e.prim for e in r.world.engine.trace}


def test_v5_did_not_work_with_no_races() -> None:
    """v5 cover letter (lkml.iu.edu 0904.3/02992): "Works well for me. no extra resources
    and no races."  It misses Type-2 (no I/O, no __remove_mapping()) and the hole."""
    assert verdict(run("type-2", "v5")) == STALE
    assert verdict(scripted_hole("v5")) == LEAK


def test_v5_catches_the_readahead_races_at_read_completion() -> None:
    """v5: "page's swapcount is checked after I/O (without locks)": Ex. B and Type-1 end
    with swap_map == 1 on an unmapped cache page, so the worker frees them."""
    assert verdict(run("example-b", "v5")) == CLEAN
    assert verdict(run("type-1", "v5")) == CLEAN


def test_v5_vmscan_hook_is_compiled_out() -> None:
    """v5 cover: "2. vmscan.c calls try_to_free_swap() when __remove_mapping() fails" --
    but that hunk is under #ifdef CONFIG_CGROUP_MEM_RES_CTRL, which no Kconfig defines:
    the empty stub compiles, so Ex. A ends under v5 as under vanilla."""
    assert verdict(run("example-a", "v5")) == verdict(run("example-a", "none")) == CHARGED


# --- no readahead -------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "page_cluster"), [("none", 0), ("v6", None), ("v7", None)])
def test_no_readahead_removes_the_readahead_races(variant: str, page_cluster: int | None) -> None:
    """Kamezawa (<20090430184738.752858ea.kamezawa.hiroyu@jp.fujitsu.com>): "'Don't do
    swapin-readahead, at all' will remove following race completely" (free_swap_and_cache
    against read_swapcache_async); Nishimura (Type-1): "can be avoided by setting
    /proc/sys/vm/page-cluster to 0"; on v6 (<20090508230107.8dd680b3...>): "disabling
    readahead would be the easiest way to avoid type-1"."""
    for race in ("example-b", "type-1"):
        assert verdict(run(race, variant, page_cluster)) == CLEAN
    if variant == "v6":  # its writeback worker empties the hole's start state first
        with pytest.raises(AssertionError, match="P is not in the swap cache"):
            simulate_scripted(v5_hole, variant, page_cluster)
    else:
        assert verdict(scripted_hole(variant, page_cluster)) == CLEAN


# --- v6 (8 May 2009) ----------------------------------------------------------------------------


def test_v6_still_misses_type2() -> None:
    """Nishimura on v6 (<20090508230107.8dd680b3.d-nishimura@mtf.biglobe.ne.jp>): "this
    patch still cannot avoid type-2 in some cases (for example, if stale swap cache hits
    'goto keep_locked' before pageout() is called)... In fact, I can see some leak";
    Kamezawa had hoped freeing after writeback would remove "another half"
    (<20090430180426.25ae2fa6.kamezawa.hiroyu@jp.fujitsu.com>).  Type-2 never writes."""
    assert verdict(run("type-2", "v6")) == STALE


def test_v6_does_not_handle_remove_mapping() -> None:
    """v6 2/2: "Handle racy case of __remove_mapping() in vmscan.c" -- the same
    CONFIG_CGROUP_MEM_RES_CTRL typo as v5: no hook.  Its writeback worker instead takes
    Ex. A's page out of the swap cache 0.1 s after the write, before the catalogue's race
    starts; the race's reclaim then gives the orphaned, uncharged page a new slot, and
    pageout() meets the rotate pagevec's reference (PAGE_KEEP): a stale slot of v6's
    own making."""
    r = run("example-a", "v6")
    assert verdict(r) == STALE and r.memsw_leak_bytes == 0


# --- Nishimura's type-2 patch (1 May 2009) and v7 (12 May 2009) ----------------------------


def test_type2_patch_with_page_cluster_0_leaks_nothing() -> None:
    """Nishimura (<20090508230107.8dd680b3...>): "no leak can be seen with my patch and
    with setting page-cluster to 0".  Every stale race is closed; Ex. A's page is still
    charged (on the memcg LRU), so memcg reclaim can free it: no leak in his sense."""
    for race in ("example-b", "type-1", "type-2"):
        assert verdict(run(race, "type2-fix", 0)) == CLEAN
    assert verdict(run("example-a", "type2-fix", 0)) == CHARGED
    assert verdict(scripted_hole("type2-fix", 0)) == CLEAN


def test_v7_closes_type1_type2_and_the_hole_but_not_ex_a() -> None:
    """v7 cover (<20090512104401.28edc0a8.kamezawa.hiroyu@jp.fujitsu.com>): "Result is
    good under my test", the test being "memsw.usage_in_bytes == usage_in_bytes and there
    is no _used_ swp_entry".  memsw always agrees; but Ex. A leaves a used slot (a charged
    page no task maps): v7 has nothing for it."""
    for race in ("example-b", "type-1", "type-2"):
        assert verdict(run(race, "v7")) == CLEAN
    assert verdict(scripted_hole("v7")) == CLEAN
    a = run("example-a", "v7")
    assert a.memsw_leak_bytes == 0 and a.swap_slots_used == 1 and verdict(a) == CHARGED


# --- 2.6.31: "memcg fix swap accounting" (28 May - 2 June 2009) ----------------------------


@pytest.mark.parametrize("race", ["example-b", "type-1"])
def test_upstream_uncharges_memsw_at_count_zero(race: str) -> None:
    """Balbir (<20090508165636.GD4630@balbir.in.ibm.com>): "In type 1, the problem can be
    solved by unaccounting the pages in swap_entry_free"; 0/4
    (<20090528135455.0c83bedc.kamezawa.hiroyu@jp.fujitsu.com>): "uncharging account when
    swap's refcnt goes to 0 even if there is an unused swap-cache".  memsw is right; the
    slot stays with its stale page until global reclaim or vm_swap_full() reuse."""
    r = run(race, "upstream")
    assert r.memsw_leak_bytes == 0 and verdict(r) == STALE
    assert r.swap_slots_used_after_global_reclaim == 0


def test_upstream_on_the_v5_hole_keeps_memsw_right() -> None:
    """docs/v5-hole.md: under 2.6.31 the hole pins a slot (Q, cache only) but leaks no
    memsw: A's swap_free() takes the count to 0 and uncharges at once."""
    r = scripted_hole("upstream")
    assert r.memsw_leak_bytes == 0 and verdict(r) == STALE


# --- kernsim matrix --history ----------------------------------------------------------------

#: The kernel's answer per cell, from the tests above.  v5/example-a depends on the model
#: running only what the compiler builds of v5 (the vmscan hunk is compiled out).
EXPECTED = {  # none, v4, v5, v6, v7, type2-fix+pc0, upstream, page_cluster=0
    "example-a": [CHARGED, CLEAN, CHARGED, STALE, CHARGED, CHARGED, CHARGED, CHARGED],
    "example-b": [LEAK, CLEAN, CLEAN, CLEAN, CLEAN, CLEAN, STALE, CLEAN],
    "type-1": [LEAK, CLEAN, CLEAN, CLEAN, CLEAN, CLEAN, STALE, CLEAN],
    "type-2": [STALE, STALE, STALE, STALE, CLEAN, CLEAN, STALE, STALE],
    # v6: its writeback worker takes P out of the swap cache 0.1 s after the write, so
    # the scripted start state does not exist (and without readahead the race cannot).
    "v5-hole (scripted)": [LEAK, LEAK, LEAK, "n/a", CLEAN, CLEAN, STALE, CLEAN],
}


def test_history_matrix_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``kernsim matrix --history --out DIR --json``: exit 1 (some cell is not clean), the
    cells the kernel gives, and the three files."""
    status = main(["matrix", "--history", "--jobs", "1", "--out", str(tmp_path), "--json"])
    assert status == 1
    h = json.loads(capsys.readouterr().out)
    assert h["columns"] == [c.label for c in COLUMNS]
    assert [r["race"] for r in h["rows"]] == list(ROWS)
    for row in h["rows"]:
        got = [row["cells"][c]["verdict"] for c in h["columns"]]
        if row["race"] in EXPECTED:
            got = ["n/a" if g.startswith("n/a (AssertionError: setup: P") else g for g in got]
            assert got == EXPECTED[row["race"]], row["race"]
    # The replayed row is what one recorded schedule does under each column; it moves with
    # the model, so only its shape is checked here (the scripted row has the verdicts).
    replayed = next(r for r in h["rows"] if r["race"] == "v5-hole")["cells"]
    assert all(isinstance(c["verdict"], str) and c["verdict"] for c in replayed.values())
    md = (tmp_path / "history.md").read_text(encoding="utf-8")
    assert "| type-2 | stale slot | stale slot | stale slot | stale slot | clean |" in md
    assert json.loads((tmp_path / "history.json").read_text(encoding="utf-8")) == h
    html = (tmp_path / "history.html").read_text(encoding="utf-8")
    assert '<table class="matrix" id="history">' in html
    assert '<td class="leak">memsw LEAK</td>' in html and "kernsim matrix --history" in html


def test_history_matrix_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``kernsim matrix --history --out DIR`` (as in docs/HISTORY.md): the Markdown table
    on stdout, the files it wrote, exit 1."""
    assert repo_file(V5_HOLE_FILE).is_file()
    assert main(["matrix", "--history", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "| race | none | v4 | v5 | v6 | v7 | type2-fix+pc0 | upstream | page_cluster=0 |" in out
    assert f"written: {tmp_path / 'history.md'}" in out
    assert build_history(jobs=1)["columns"][0] == "none"
