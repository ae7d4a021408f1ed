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
