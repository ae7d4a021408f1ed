"""A shrunk race reads like the mail: one screen (<= 25 rows) for every class kernsim knows.

Each class starts from a stored failing schedule (a failure of a documented search);
the shrunk schedule must replay to the same violation kinds and the same class, with
no more kernel events than it started with, and its diagram must fit on a screen.
"""

from __future__ import annotations

import pytest

from kernsim.explore.classify import KNOWN
from kernsim.explore.diagram import draw_all
from kernsim.explore.job import Job, execute, run_schedule
from kernsim.explore.shrink import BUDGET, shrink

SCREEN = 25
#: class -> (scenario, variant, seed, strategy, window): a failure of that class.
STORED = {
    "example-a": ("race", "none", 3, "random", 0.0002),
    "example-b": ("race", "none", 75, "random", 0.001),
    "example-b-eexist": ("race", "none", 24320, "delay", 0.001),
    "type-1": ("race", "none", 445, "random", 0.001),
    "type-2": ("race", "none", 11, "random", 0.0002),
    "writeback": ("race", "none", 1, "pos", 0.0002),
    "gather-trylock": ("race", "v5", 502, "random", 0.001),
    "v5-write-window": ("race", "v5", 58, "delay", 0.001),
    "v5-read-window": ("race", "v5", 1379, "pos", 0.001),
    "v5-hole": ("race", "v5", 48, "random", 0.001),
    "reuse-window": ("race", "upstream", 197, "random", 0.0002),
    "threads-zap-swapin": ("race-threads", "none", 7, "delay", 0.0002),
    "readahead-eexist": ("race", "none", 252, "delay", 200 * 1e-6),
    "zap-delete-window": ("race-fork", "none", 1214, "delay", 0.001),
    "fork-cow-zap": ("race-fork", "none", 324, "random", 200 * 1e-6),
    "fork-cow-both": ("race-fork", "none", 1078, "pos", 0.001),
    "fork-cow-type-2": ("race-fork", "none", 1163, "pos", 200 * 1e-6),
    "fork-zap-gather": ("race-fork", "none", 5669, "delay", 0.001),
    "fork-cow-reclaim": ("race-fork", "none", 14201, "delay", 0.001),
}


def test_every_known_class_has_a_stored_failure() -> None:
    assert set(STORED) == set(KNOWN)


@pytest.mark.parametrize("cls", sorted(STORED))
def test_the_shrunk_diagram_fits_on_one_screen(cls: str) -> None:
    scenario, variant, seed, strategy, window_s = STORED[cls]
    job = Job(scenario, variant, seed, strategy, window_s=window_s)
    o = run_schedule(job)
    assert o.failed and cls in o.classes
    sh = shrink(job, o)
    assert 0 < sh.runs <= BUDGET
    assert sh.outcome.kinds == o.kinds
    assert cls in sh.outcome.classes and set(sh.outcome.classes) <= set(o.classes)
    assert sh.outcome.events <= o.events
    # The shrunk job replays to that very outcome, and its diagram fits on a screen.
    run = execute(sh.job)
    assert run.result is not None and run.result.sha256() == sh.outcome.trace_sha256
    drawn = [(m.cls, d) for m, d in draw_all(run)]
    assert any(c == cls for c, _ in drawn)
    for c, d in drawn:
        assert len(d.splitlines()) <= SCREEN, f"{c}: {len(d.splitlines())} rows\n{d}"
