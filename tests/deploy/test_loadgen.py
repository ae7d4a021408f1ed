"""deploy/loadgen.py's wait for a quiet cluster: a slow round goes on, a stuck one fails.

kamezawa's kills wait for the tasks' progress, so a round has no fixed length; the
load generator fails it only when nothing new starts for KERNSIM_SETTLE_S.  The
tasks service is replaced by a scripted answer to ``quiesce_status`` and ``activity``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.support.livestack import DEPLOY


def loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kernsim_loadgen", DEPLOY / "loadgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class ScriptedTasks:
    """``quiesce_status`` false for ``busy_polls`` polls; ``activity`` counts a new start
    on each of the first ``progress_polls`` polls, then stays put."""

    def __init__(self, busy_polls: int, progress_polls: int) -> None:
        self.busy_polls, self.progress_polls = busy_polls, progress_polls
        self.polls = self.started = 0

    async def call(self, type_: str, body: Any = None, to: str = "tasks") -> dict[str, Any]:
        if type_ == "quiesce_status":
            self.polls += 1
            return {"quiescent": self.polls > self.busy_polls}
        assert type_ == "activity"
        if self.polls <= self.progress_polls:
            self.started += 1
        return {"busy": 1, "started": self.started}


def generator(tasks: ScriptedTasks, settle_s: float) -> Any:
    mod = loadgen()
    gen = mod.LoadGen.__new__(mod.LoadGen)
    gen.load = mod.LoadConfig(settle_s=settle_s)
    gen.call = tasks.call
    return gen


def test_a_round_that_keeps_starting_work_is_waited_for_past_settle_s() -> None:
    # 12 polls of 0.2 s (2.4 s) busy, new work on every one: longer than settle_s.
    tasks = ScriptedTasks(busy_polls=12, progress_polls=12)
    asyncio.run(generator(tasks, settle_s=0.5).until_quiet("the workload"))
    assert tasks.polls == 13


def test_a_round_that_starts_nothing_new_fails_after_settle_s() -> None:
    tasks = ScriptedTasks(busy_polls=10_000, progress_polls=3)
    with pytest.raises(TimeoutError, match="nothing new started for 0 s"):
        asyncio.run(generator(tasks, settle_s=0.4).until_quiet("the workload"))
    assert 3 < tasks.polls < 20


def test_defaults_are_sixty_seconds_of_load_and_ten_of_rest() -> None:
    cfg = loadgen().LoadConfig.from_env({})
    assert (cfg.load_s, cfg.rest_s, cfg.settle_s) == (60.0, 10.0, 120.0)


class ScriptedStats:
    """``statistics`` of memcg, mm and the code-path services, after a rest."""

    def __init__(self, abandoned: dict[str, int]) -> None:
        self.abandoned = abandoned

    async def call(self, type_: str, body: Any = None, to: str = "tasks") -> dict[str, Any]:
        assert type_ == "statistics"
        if to == "memcg":
            a = {"memsw_usage_bytes": 12288, "usage_bytes": 0, "tasks": 0}
            return {"stats": {"cgroups": {"/A": a}}}
        if to == "mm":
            return {"stats": {"stale_swapcache_pages": 3, "mm": {"swap_slots_used": 3}}}
        return {"stats": {"abandoned_texts": ["x"] * self.abandoned.get(to, 0)}}


def test_the_rest_line_says_when_a_reading_is_not_the_kernels() -> None:
    gen = generator(ScriptedTasks(0, 0), settle_s=1)
    gen.call = ScriptedStats({}).call
    clean = asyncio.run(gen.verdict(4))
    assert clean.startswith("rest after round 4: memsw-usage 12288 B (12 KiB)")
    assert "NOT the kernel's" not in clean
    gen.call = ScriptedStats({"tasks": 2, "vmscan": 1}).call
    line = asyncio.run(gen.verdict(5))
    assert line.endswith("; NOT the kernel's: 3 code paths abandoned half-way (RPC failed)")
