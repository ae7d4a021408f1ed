"""The tasks service's HTTP commands on its admin port: run and kill the cgroup's tasks.

The mail's acceptance test is a shell script ("run tasks, kill them all, compare
memsw.usage with usage, check no swap entry is in use"); these routes let curl do
the first two steps (deploy/acceptance.sh is that script):

    POST /workload  {"scenario": "kamezawa", "duration_s": 9, "seed": 1}
                    -> 202 {"started": true}; 409 while one runs; 400 bad arguments
    GET  /workload  -> {"running": false, "tasks": 0, "quiescent": true, ...}
    POST /kill_all  -> {"killed": 3}   (pkill: SIGKILL to every task of /A)

``quiescent`` is the same test the launcher waits for before it checks the
invariants: no workload, no task, and no code path queued or running anywhere.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web
from kernsim.protocol import InvalidArgument, ProtocolError

if TYPE_CHECKING:
    from kernsim.services.tasks import TasksService


def _error(status: int, message: str, errno: int | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if errno is not None:
        body["errno"] = errno
    return web.json_response(body, status=status)


def workload_body(raw: str) -> dict[str, Any]:
    """The JSON body of POST /workload, checked field by field; ValueError names the field."""
    try:
        b = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(b, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(b) - {"scenario", "duration_s", "seed"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    scenario = b.get("scenario", "kamezawa")
    duration = b.get("duration_s", 9.0)
    seed = b.get("seed", 1)
    if not isinstance(scenario, str):
        raise ValueError("scenario must be a string")
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ValueError("duration_s must be a number of seconds")
    if not math.isfinite(duration) or duration <= 0:
        raise ValueError("duration_s must be a positive number of seconds")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError("seed must be a whole number >= 0")
    return {"scenario": scenario, "duration_s": float(duration), "seed": seed}


def add_task_routes(app: web.Application, svc: TasksService) -> None:
    async def start(req: web.Request) -> web.Response:
        try:
            body = workload_body(await req.text())
        except ValueError as exc:
            return _error(400, str(exc), 22)
        try:
            await svc.start_workload(body)
        except InvalidArgument as exc:
            return _error(409 if exc.errno == 16 else 400, exc.text, exc.errno)
        except ProtocolError as exc:
            return _error(503, f"a peer did not answer: {exc}")
        return web.json_response({"started": True, **body}, status=202)

    async def status(_req: web.Request) -> web.Response:
        try:
            q = await svc.quiesce_status()
        except ProtocolError as exc:
            return _error(503, f"a peer did not answer: {exc}")
        return web.json_response({"running": q["workload"], **q})

    async def kill_all(_req: web.Request) -> web.Response:
        return web.json_response({"killed": svc.kill_all()})

    app.router.add_post("/workload", start)
    app.router.add_get("/workload", status)
    app.router.add_post("/kill_all", kill_all)
