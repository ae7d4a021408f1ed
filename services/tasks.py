"""The ``tasks`` service: the user processes of cgroup /A, and the load generator.

Commands: ``start_workload`` (set the scenario's limits, run its controller),
``kill_all`` (pkill), ``quiesce_status`` (no workload, no task, and every
code-path service idle twice running with no new work in between),
``force_empty`` (memory.force_empty's reclaim, run from a shell as the writer's
process runs it).  The memcg OOM killer reaches a task here through ``post oom_kill``.

The same commands over HTTP on the admin port (services/tasks_http.py), for a
shell script: ``POST /workload``, ``POST /kill_all``, ``GET /workload``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Coroutine
from errno import EBUSY, EINVAL
from typing import Any

from aiohttp import web
from kernsim.protocol import Envelope, InvalidArgument
from kernsim.services.remote_cpu import RemoteCpu
from kernsim.services.runner import RunnerService
from kernsim.services.runtime import Body
from kernsim.services.runtime.config import ServiceConfig
from kernsim.services.service import main
from kernsim.services.tasks_http import add_task_routes

from kernsim.check.spec import workload_params
from kernsim.model.memcontrol import (
    MEM_CGROUP_RECLAIM_RETRIES,
    mem_cgroup_lru_size,
    mem_cgroup_resize_limit,
)
from kernsim.model.swap import lru_add_drain_all
from kernsim.model.vmscan import try_to_free_mem_cgroup_pages
from kernsim.sim.scenarios import get_scenario
from kernsim.workloads import CONTROLLERS, TaskGroup

#: The services whose code paths must all have finished for the cluster to be quiet.
RUNNERS = ("blockdev", "workqueue", "vmscan")
#: The longest workload ``start_workload`` accepts: a week of load.
MAX_DURATION_S = 7 * 86400.0


class TasksService(RunnerService, TaskGroup[RemoteCpu]):
    name = "tasks"
    cpu_base = "shell"
    exit_poll_s = 0.005

    def __init__(self, config: ServiceConfig) -> None:
        super().__init__(config)
        self.rng = random.Random(config.seed)
        self.tasks: dict[int, RemoteCpu] = {}
        #: Thread groups: each task's mm (the pid of the task that exec'd it).
        self.mm_of: dict[int, int] = {}
        self.memcg_id = 0
        self.next_task = 1
        self.exited = 0
        self.oom_killed = 0
        self.workload: asyncio.Task[None] | None = None
        self.host.local["oom_kill"] = self.oom_kill
        h = self.node.handlers
        h["start_workload"] = self._start_workload
        h["kill_all"] = lambda env: {"killed": self.kill_all()}
        h["quiesce_status"] = self._quiesce_status
        h["force_empty"] = self._force_empty
        h["activity"] = lambda env: {
            "busy": self.host.busy + len(self.tasks),
            "started": self.host.started + self.next_task - 1,
        }

    # --- kernsim.workloads.TaskGroup: a task's CPU on the event loop -----------------

    def _new_cpu(self, name: str, task: int) -> RemoteCpu:
        # A task's CPU name is its own (task7): not counted per name, see CpuHost.new_cpu.
        return self.host.new_cpu(name, memcg=self.memcg_id, task=task, unique=True)

    def _start(self, cpu: RemoteCpu, life: Coroutine[Any, Any, None]) -> None:
        self.node.spawn(self._guard(life, cpu))

    def _signal(self, cpu: RemoteCpu, memdie: bool) -> None:
        cpu.kill(memdie=memdie)

    def sleep(self, delay_s: float) -> Awaitable[None]:
        return asyncio.sleep(delay_s)

    # --- commands -------------------------------------------------------------------------

    async def _start_workload(self, env: Envelope) -> Body:
        return await self.start_workload(env.body)

    async def start_workload(self, b: Body) -> Body:
        if self.workload is not None and not self.workload.done():
            raise InvalidArgument("a workload is already running", errno=EBUSY)
        duration_s = float(b["duration_s"])
        if not 0.0 < duration_s <= MAX_DURATION_S:  # also refuses NaN and inf
            raise InvalidArgument(
                f"duration_s {duration_s} outside (0, {MAX_DURATION_S}]", errno=EINVAL
            )
        try:
            sc = get_scenario(b["scenario"])
        except ValueError as exc:
            raise InvalidArgument(str(exc), errno=EINVAL) from None
        if sc.name not in CONTROLLERS:
            raise InvalidArgument(f"scenario {sc.name!r} has no cluster workload", errno=EINVAL)
        self.rng = random.Random(b["seed"])
        memcg = await self.node.peer("memcg")
        self.memcg_id = (await memcg.call("cgroup_id", {"name": "/A"}))["id"]
        shell = self.host.new_cpu("shell")
        # Written as the cgroupfs files would be: memsw first when raising it.
        for limit, memsw in ((sc.memsw_limit_bytes, True), (sc.limit_bytes, False)):
            if limit is not None:
                err = await shell.call(mem_cgroup_resize_limit, self.memcg_id, limit, memsw)
                if err:
                    raise InvalidArgument(f"could not set the limit: errno {-err}", errno=-err)
        run = CONTROLLERS[sc.name](self, workload_params(sc.name, duration_s=duration_s))
        self.workload = self.node.spawn(self._guard(run))
        return {}

    async def _force_empty(self, env: Envelope) -> Body:
        """mem_cgroup_force_empty(free_all): reclaim the group's pages until none is charged,
        MEM_CGROUP_RECLAIM_RETRIES passes without progress at most (memcg checks the tasks)."""
        memcg_id = int(env.body["id"])
        shell = self.host.new_cpu("shell")
        await shell.call(lru_add_drain_all)
        retries = MEM_CGROUP_RECLAIM_RETRIES
        while retries and await shell.call(mem_cgroup_lru_size, memcg_id) > 0:
            if not await try_to_free_mem_cgroup_pages(shell, memcg_id, False):
                retries -= 1
                await shell.sleep(0.1)  # congestion_wait(WRITE, HZ/10): writeback may finish
        await shell.call(lru_add_drain_all)
        return {}

    def add_routes(self, app: web.Application) -> None:
        add_task_routes(app, self)

    async def _guard(self, run: Awaitable[None], cpu: RemoteCpu | None = None) -> None:
        """Run a task's life (``cpu``) or the workload: a failure is noted, named."""
        try:
            await run
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            who = cpu.name if cpu is not None else "workload"
            self.host.note_failure(f"{who}: {type(exc).__name__}: {exc}", exc)
        finally:
            if cpu is not None:
                self.reap(cpu)

    async def _quiesce_status(self, env: Envelope) -> Body:
        return await self.quiesce_status()

    async def quiesce_status(self) -> Body:
        workload = self.workload is not None and not self.workload.done()
        busy, started = await self._busy_round()
        quiet = not workload and not self.tasks and busy == 0
        if quiet:
            # A second look: work posted between two polls shows up as a new start.
            busy, started_again = await self._busy_round()
            quiet = busy == 0 and started_again == started
        return {"quiescent": quiet, "tasks": len(self.tasks), "busy": busy, "workload": workload}

    async def _busy_round(self) -> tuple[int, int]:
        """(code paths queued or running, code paths ever started), over the runners and here."""
        busy, started = self.host.busy, self.host.started
        for name in RUNNERS:
            conn = await self.node.peer(name)
            act = await conn.call("activity", {})
            busy += act["busy"]
            started += act["started"]
        return busy, started

    def statistics(self) -> dict[str, Any]:
        return {
            **super().statistics(),
            "tasks": len(self.tasks),
            "tasks_started": self.next_task - 1,
            "tasks_exited": self.exited,
            "oom_killed": self.oom_killed,
            "workload_running": self.workload is not None and not self.workload.done(),
        }


if __name__ == "__main__":
    main(TasksService, sys.argv[1:])
