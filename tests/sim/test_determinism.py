"""Same seed, same trace, bit for bit; different seeds, different schedules."""

from __future__ import annotations

import pytest

from kernsim.sim.run import simulate

VARIANTS = ["none", "v5", "upstream"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("faults", ["none", "reorder-heavy"])
def test_same_seed_same_trace(variant: str, faults: str) -> None:
    for seed in range(12):
        a = simulate("race", variant, seed, faults, keep_trace=False)
        b = simulate("race", variant, seed, faults, keep_trace=False)
        assert a.trace_sha256 == b.trace_sha256
        assert a.to_dict() == b.to_dict()


def test_seeds_give_different_schedules() -> None:
    hashes = {simulate("race", "none", seed, keep_trace=False).trace_sha256 for seed in range(20)}
    assert len(hashes) == 20


def test_catalogue_is_deterministic_across_variants() -> None:
    for scenario in ["example-a", "example-b", "type-1", "type-2"]:
        for variant in VARIANTS:
            assert (
                simulate(scenario, variant, 3).trace_sha256
                == simulate(scenario, variant, 3).trace_sha256
            )


def test_trace_hash_does_not_depend_on_keeping_the_trace() -> None:
    a = simulate("race", "v5", 5, keep_trace=True)
    b = simulate("race", "v5", 5, keep_trace=False)
    assert a.trace_sha256 == b.trace_sha256
    assert a.world is not None and len(a.world.engine.trace) == a.events


def test_a_kernel_bug_in_the_model_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A BUG_ON firing inside a primitive ends the run with a `kernel_bug` violation
    naming the last events, and leaves no coroutine behind."""
    from tests.support.unitkit import break_unlock_page

    break_unlock_page(monkeypatch)
    r = simulate("type-1", "none", 1)
    bug = r.violations[-1]
    assert bug.kind == "kernel_bug" and "injected" in bug.message
    assert bug.events and not r.invariants_ok
    assert r.world is not None and r.world.engine.idle


def test_every_fault_profile_is_deterministic() -> None:
    """Same seed and same profile, same trace: for every profile in deploy/faults/."""
    from kernsim.faults import list_profiles

    profiles = list_profiles()
    assert {"none", "lan", "slow-disk", "reorder-heavy", "hdd"} <= set(profiles)
    for profile in profiles:
        for seed in (1, 2):
            a = simulate("race", "none", seed, profile, keep_trace=False)
            b = simulate("race", "none", seed, profile, keep_trace=False)
            assert a.trace_sha256 == b.trace_sha256, profile
