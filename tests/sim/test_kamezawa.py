"""The mail's reproducer: a memsw leak under vanilla 2.6.30, none under 2.6.31's fix."""

from __future__ import annotations

from kernsim.sim.run import simulate

SEEDS = [1, 2, 4]


def test_kamezawa_leaks_memsw_under_none_and_never_under_upstream() -> None:
    none = [simulate("kamezawa", "none", s, params={"rounds": 2}, keep_trace=False) for s in SEEDS]
    upstream = [
        simulate("kamezawa", "upstream", s, params={"rounds": 2}, keep_trace=False) for s in SEEDS
    ]
    assert any(r.memsw_leak_bytes > 0 for r in none), [r.to_dict() for r in none]
    for r in none:
        assert r.memsw_leak_bytes % 4096 == 0
        if r.memsw_leak_bytes:
            assert not r.invariants_ok
            assert "memsw_leak" in {v.kind for v in r.violations}
            # The leaked memsw is charged to swap slots held by stale cache pages.
            assert r.stale_swapcache_pages * 4096 >= r.memsw_leak_bytes
    assert all(r.memsw_leak_bytes == 0 for r in upstream), [r.to_dict() for r in upstream]
    for r in none + upstream:
        # Nothing is lost for good: global reclaim frees every slot.
        assert r.swap_slots_used_after_global_reclaim == 0
        assert "memsw_accounting" not in {v.kind for v in r.violations}
