"""The cost of one kernel step against a bare seeded coroutine scheduler, same run.

The bare scheduler is the floor for any simulation built like kernsim's: a few
coroutines that each await a request object over and over, and a loop that
picks a runnable one with a seeded random.Random and send()s it the answer.
No state, no trace, no invariant checks.

The same scheduler with each request awaited through 11 nested coroutine
frames (the mean depth of a ``race`` step) is measured beside it, as a
reference for what the model's call depth alone costs.

A kernel step is one primitive of the ``race`` scenario under the explorer's
random walk (``Job(strategy="random")``, ``execute()``): pick a CPU among the
due ones, run the primitive on the model, record the event, run the invariant
checker; setting up and checking each schedule is counted in.  Two more
measurements of the same schedules, in the same rounds, say where it goes:

- the search's step: ``run_schedule()``, what a search runs per schedule (its
  racing pairs for coverage, the collector paused for the schedule);
- the step with the chooser's picks replayed from a list recorded beforehand
  (the same schedules, step for step): the engine and the model without the
  strategy's decisions.

    python bench/bench_step.py [--schedules N] [--rounds R]

Writes bench/results/step.json.  Rounds alternate the two measurements and
the best of each is kept: the machine is shared.  Both are timed in CPU time
of this process (``time.process_time``), so other processes' load does not
count as a step's cost.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from kernsim.explore.job import Job, chooser_rng, execute, run_schedule
from kernsim.explore.strategies import RandomWalk

OUT = Path(__file__).parent / "results" / "step.json"
#: The mean number of coroutine frames a `race` step's request travels through
#: (from the task's life down to the code path that awaits the primitive).
AWAIT_DEPTH = 11


class _Ask:
    __slots__ = ("arg",)

    def __init__(self, arg: int) -> None:
        self.arg = arg

    def __await__(self) -> Generator[_Ask, Any, Any]:
        return (yield self)


async def _worker(n: int, depth: int = 1) -> int:
    if depth > 1:  # await through ``depth`` coroutine frames, as a kernel code path does
        return await _worker(n, depth - 1)
    total = 0
    for i in range(n):
        total += await _Ask(i)
    return total


def bare_steps_per_s(cpus: int = 4, steps: int = 200_000, seed: int = 1, depth: int = 1) -> float:
    """A seeded scheduler of ``cpus`` coroutines: pick one at random, answer it.

    With ``depth`` > 1 each request travels through that many nested coroutine
    frames (a reference for the model's call depth, not the floor itself)."""
    rng = random.Random(seed)
    ready = [_worker(steps // cpus, depth) for _ in range(cpus)]
    pending: list[Any] = [None] * cpus
    done = 0
    t0 = time.process_time()
    while ready:
        i = int(rng.random() * len(ready))
        try:
            req = ready[i].send(pending[i] and pending[i].arg + 1)
            pending[i] = req
            done += 1
        except StopIteration:
            ready[i] = ready[-1]
            pending[i] = pending[-1]
            ready.pop()
            pending.pop()
    return done / (time.process_time() - t0)


def kernel_steps_per_s(schedules: int) -> tuple[float, int]:
    steps = 0
    t0 = time.process_time()
    for seed in range(schedules):
        run = execute(Job("race", "none", seed, "random"))
        assert run.result is not None
        steps += run.result.events
    return steps / (time.process_time() - t0), steps


def search_steps_per_s(schedules: int) -> float:
    steps = 0
    t0 = time.process_time()
    for seed in range(schedules):
        steps += run_schedule(Job("race", "none", seed, "random")).events
    return steps / (time.process_time() - t0)


class _Recording(RandomWalk):
    """The random walk, writing down each pick."""

    log: list[int]

    def choose(self, engine: Any, ready: Any) -> int:
        i = super().choose(engine, ready)
        self.log.append(i)
        return i


class _Played(RandomWalk):
    """Makes the picks of a recording, without deciding anything."""

    picks: Any

    def choose(self, engine: Any, ready: Any) -> int:
        return int(next(self.picks))


def _chooser(cls: type[RandomWalk], seed: int) -> Any:
    # The job's own random source, so that the recording is the random walk's run itself.
    job = Job("race", "none", seed, "random")
    return lambda _: cls(chooser_rng(job), job.window_s)


def record_picks(schedules: int) -> list[list[int]]:
    logs = []
    for seed in range(schedules):
        rec: list[_Recording] = []

        def make(rng: Any, seed: int = seed, rec: list[_Recording] = rec) -> _Recording:
            chooser = _chooser(_Recording, seed)(rng)
            chooser.log = []
            rec.append(chooser)
            return chooser  # type: ignore[no-any-return]

        base = execute(Job("race", "none", seed, "random"))
        again = execute(Job("race", "none", seed, "random"), strategy=make)
        assert again.result_hash() == base.result_hash(), "the recording is not the random walk"
        logs.append(rec[0].log)
    return logs


def replayed_steps_per_s(logs: list[list[int]]) -> float:
    steps = 0
    t0 = time.process_time()
    for seed, log in enumerate(logs):

        def make(rng: Any, seed: int = seed, log: list[int] = log) -> _Played:
            chooser = _chooser(_Played, seed)(rng)
            chooser.picks = iter(log)
            return chooser  # type: ignore[no-any-return]

        run = execute(Job("race", "none", seed, "random"), strategy=make)
        assert run.result is not None
        steps += run.result.events
    return steps / (time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bare, deep, kernel, search, played = 0.0, 0.0, 0.0, 0.0, 0.0
    steps = 0
    logs = record_picks(args.schedules)
    for _ in range(args.rounds):
        bare = max(bare, bare_steps_per_s())
        deep = max(deep, bare_steps_per_s(depth=AWAIT_DEPTH))
        rate, steps = kernel_steps_per_s(args.schedules)
        kernel = max(kernel, rate)
        search = max(search, search_steps_per_s(args.schedules))
        played = max(played, replayed_steps_per_s(logs))
    result = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}, shared 2 cores",
        "bare_scheduler_steps_per_s": round(bare),
        "bare_step_us": round(1e6 / bare, 2),
        f"bare_step_at_await_depth_{AWAIT_DEPTH}_us": round(1e6 / deep, 2),
        "kernel_steps_per_s": round(kernel),
        "kernel_step_us": round(1e6 / kernel, 2),
        "kernel_step_vs_bare": round(bare / kernel, 2),
        "search_step_us": round(1e6 / search, 2),
        "search_step_vs_bare": round(bare / search, 2),
        "step_with_picks_replayed_us": round(1e6 / played, 2),
        "step_with_picks_replayed_vs_bare": round(bare / played, 2),
        "race_steps_per_schedule": round(steps / args.schedules, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
