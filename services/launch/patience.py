"""Telling a slow service from a stuck one, on a machine that may be loaded.

A wall-clock deadline assumes a quiet machine: on a loaded one every process
gets a small share of a CPU, so six Python processes that import and start in
two seconds on a quiet machine may take a minute.  A process that is slow is
still given CPU time by the scheduler; one that is stuck (stopped by a signal,
or waiting for something that never comes) is not.  So a start is judged by
the CPU time each service uses (``utime + stime`` in /proc/PID/stat), not by
the wall time it takes: :class:`StartWatch` names a service that has not
answered its /healthz yet and is stopped, or has used no CPU for ``idle_s``
seconds; a hard bound (``max_s``) still ends a start that never finishes.

Once started, the same holds for the waits of a run (the workload to end, the
machine to quiesce): they take as long as the machine makes them, so they are
judged by the kernel's progress, the primitives mm and memcg have run
(:func:`until_done_or_stalled`): a wait fails when the kernel has made no step
for ``stall_s`` seconds, not when a wall-clock deadline a quiet machine would
meet has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TypeVar

from kernsim.services.launch.records import proc_stat, proc_state

T = TypeVar("T")
#: A starting service that has used no CPU for this long is stuck, not slow.
START_IDLE_S = 30.0
#: The longest start, however much CPU the services use (a start that never ends).
START_MAX_S = 600.0
#: How often a wait reads the kernel's progress.
PROGRESS_EVERY_S = 1.0


class Stalled(Exception):
    """The kernel made no step for the wait's ``stall_s`` seconds."""


def cpu_ticks(pid: int) -> int | None:
    """CPU time ``pid`` has used so far (user + system, in clock ticks), None when gone."""
    fields = proc_stat(pid)
    # State is field 3 of the line, utime 14, stime 15: 0, 11 and 12 after the name.
    return None if fields is None else int(fields[11]) + int(fields[12])


class StartWatch:
    """Which starting service, if any, is stuck rather than slow.

    ``check(now)`` is called while the start is awaited, with the services not yet
    healthy (``waiting``); it returns ``(service, why)`` for the first one that is
    stopped (state T) or whose CPU time has not grown for ``idle_s`` seconds, else
    None.  ``cpu`` and ``state`` read a pid's CPU ticks and state (tests give their
    own).
    """

    def __init__(
        self,
        pids: Mapping[str, int],
        now: float,
        idle_s: float = START_IDLE_S,
        cpu: Callable[[int], int | None] = cpu_ticks,
        state: Callable[[int], str | None] = proc_state,
    ) -> None:
        self.pids = dict(pids)
        self.idle_s = idle_s
        self._cpu, self._state = cpu, state
        #: Per service: the CPU ticks last seen and when they last grew.
        self._seen: dict[str, tuple[int | None, float]] = {
            name: (cpu(pid), now) for name, pid in self.pids.items()
        }

    def check(self, now: float, waiting: Collection[str]) -> tuple[str, str] | None:
        for name in waiting:
            pid = self.pids[name]
            if self._state(pid) == "T":
                return name, "is stopped (state T) before answering its health check"
            ticks, since = self._seen[name]
            new = self._cpu(pid)
            if new != ticks:
                self._seen[name] = (new, now)
            elif now - since > self.idle_s:
                return name, (
                    f"used no CPU for {self.idle_s:g} s before answering its health check"
                )
        return None


async def until_done_or_stalled(
    aw: Awaitable[T],
    progress: Callable[[], Awaitable[int]],
    stall_s: float,
    every_s: float = PROGRESS_EVERY_S,
) -> T:
    """Await ``aw``; raise Stalled when ``progress()`` (a count that grows while the
    kernel works) has not grown for ``stall_s`` seconds first."""
    loop = asyncio.get_running_loop()

    async def watch() -> None:
        last, since = await progress(), loop.time()
        while True:
            await asyncio.sleep(every_s)  # the reading period, not a wait for a state
            now = await progress()
            if now != last:
                last, since = now, loop.time()
            elif loop.time() - since > stall_s:
                return

    work, watcher = asyncio.ensure_future(aw), asyncio.ensure_future(watch())
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        watcher.result()  # a failed reading is the caller's to see
        raise Stalled(f"the kernel made no step for {stall_s:g} s")
    finally:
        for t in (work, watcher):
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
