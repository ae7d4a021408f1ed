"""A service keeps nothing of a task after it exits (the soak's slow growth).

Every object the six services hold is walked after two workload rounds have
ended and the cluster is quiet: no dict key or set member may still name a task
of those rounds (``task7``; a task's CPU and pagevecs are named after it), and
mm keeps no mm_struct.  Before this test, the tasks service counted CPU names
per task forever and mm kept an empty pagevec list per CPU that ever ran.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.inprocess import InProcessCluster

TASK_NAME = re.compile(r"^task\d+$")


def reachable_keys(roots: list[Any], limit: int = 3_000_000) -> Iterator[Any]:
    """Every dict key and set member reachable from ``roots`` through kernsim objects
    and containers (objects of other libraries, e.g. the event loop, are not entered)."""
    seen: set[int] = set()
    todo = deque(roots)
    while todo and len(seen) < limit:
        obj = todo.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            yield from obj
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (set, frozenset)):
            yield from obj
            todo.extend(obj)
        elif isinstance(obj, (list, tuple, deque)):
            todo.extend(obj)
        elif type(obj).__module__.startswith("kernsim."):
            todo.extend(getattr(obj, "__dict__", {}).values())
            for cls in type(obj).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if hasattr(obj, slot):
                        todo.append(getattr(obj, slot))


@pytest.fixture(scope="module")
def cluster(inprocess_cluster: InProcessCluster) -> InProcessCluster:
    return inprocess_cluster


def run_round(c: InProcessCluster, seed: int) -> None:
    tasks: Any = c.services["tasks"]

    async def one() -> None:
        await tasks.start_workload({"scenario": "kamezawa", "duration_s": 2.0, "seed": seed})
        for _ in range(1200):  # a deadline of 120 s, polled
            if (await tasks.quiesce_status())["quiescent"]:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the cluster did not quiesce within 120 s")

    c.run(one(), 180)


def test_no_state_names_an_exited_task(cluster: InProcessCluster) -> None:
    run_round(cluster, 1)
    run_round(cluster, 2)
    tasks: Any = cluster.services["tasks"]
    assert tasks.statistics()["tasks_started"] >= 6, "the rounds ran no tasks"
    assert tasks.statistics()["tasks"] == 0
    left = sorted(
        {k for k in reachable_keys(list(cluster.services.values())) if isinstance(k, str)}
        & {f"task{n}" for n in range(1, tasks.statistics()["tasks_started"] + 1)}
    )
    assert not left, f"state still keyed by exited tasks: {left[:10]}"
    assert not cluster.services["mm"].state.mms, "mm_structs outlived their tasks"
