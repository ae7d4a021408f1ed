"""The usage / memsw.usage timeline drawn for a replayed failure."""

from __future__ import annotations

from pathlib import Path

from kernsim.explore.job import Job, execute
from kernsim.explore.timeline import CounterSampler, plot_usage


def test_sampler_follows_the_counters_and_plots_them(tmp_path: Path) -> None:
    sampler = CounterSampler()
    run = execute(Job("race", "none", seed=5, strategy="random"), observers=(sampler,))
    assert run.result is not None
    series = sampler.samples["/A"]
    times = [t for t, _, _ in series]
    assert times == sorted(times)
    assert max(u for _, u, _ in series) > 0
    assert all(m >= u for _, u, m in series)  # memsw.usage >= usage at every sample
    # The last sample is the state the run ended in.
    group = run.result.world.engine.memcg.groups[2] if run.result.world else None
    assert group is not None and series[-1][1:] == (group.res.usage, group.memsw.usage)
    png = tmp_path / "usage.png"
    assert plot_usage(png, sampler, "race seed 5")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_to_plot_is_not_an_error(tmp_path: Path) -> None:
    assert not plot_usage(tmp_path / "empty.png", CounterSampler(), "empty")
    assert not (tmp_path / "empty.png").exists()
