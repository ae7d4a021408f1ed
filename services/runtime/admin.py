"""The admin HTTP API every service serves: /healthz, /metrics, /statistics, /faults,
/openapi.json (the API described as OpenAPI 3.1, services/openapi.py).

Services add their own routes (memcg's cgroupfs files) before the app starts.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from kernsim.services.runtime import openapi
from kernsim.services.runtime.faultlayer import FaultLayer, parse_change
from kernsim.services.runtime.metrics import Metrics
from prometheus_client import CONTENT_TYPE_LATEST

from kernsim.faults import Profile


def build_app(
    service: str,
    metrics: Metrics,
    statistics: Callable[[], dict[str, Any]],
    fault: FaultLayer,
    token: str | None = None,
) -> web.Application:
    """The admin app; with a ``token``, every request that changes something must carry it."""
    app = web.Application(
        middlewares=[require_token(token)] if token else [], client_max_size=MAX_BODY_BYTES
    )

    async def healthz(_req: web.Request) -> web.Response:
        return web.json_response({"service": service, "ok": True})

    async def metrics_view(_req: web.Request) -> web.Response:
        resp = web.Response(body=metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def statistics_view(_req: web.Request) -> web.Response:
        return web.json_response(statistics())

    async def faults_get(_req: web.Request) -> web.Response:
        return web.json_response(fault.describe())

    async def faults_put(req: web.Request) -> web.Response:
        text = await req.text()  # aiohttp answers 413 past client_max_size
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
            # Off the loop: a shipped profile is read from its file.
            change = await asyncio.to_thread(parse_change, doc)
        except RecursionError:
            return web.json_response({"error": "JSON nested too deeply"}, status=400)
        except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            return web.json_response({"error": str(exc)}, status=400)
        fault.apply(change)
        return web.json_response(fault.describe())

    async def openapi_view(req: web.Request) -> web.Response:
        return web.json_response(openapi.document(service, req.app))

    async def index(req: web.Request) -> web.Response:
        # Every route, the service's own included (they are added before the app starts).
        routes = sorted(
            {f"{r.method} {r.resource.canonical}" for r in req.app.router.routes()
             if r.resource is not None and r.method != "HEAD"}
        )  # fmt: skip
        return web.json_response({"service": service, "endpoints": routes})

    app.router.add_get("/", index)
    app.router.add_get("/openapi.json", openapi_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/statistics", statistics_view)
    app.router.add_get("/faults", faults_get)
    app.router.add_put("/faults", faults_put)
    return app


#: The largest request body the admin API reads (a PUT /faults document, a limit).
MAX_BODY_BYTES = 64 << 10
#: Methods that only read; every other method changes state (faults, limits, workloads).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_token(token: str) -> Any:
    """Middleware: mutating requests need ``Authorization: Bearer <token>`` (constant-time)."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(req: web.Request, handler: Handler) -> web.StreamResponse:
        if req.method not in SAFE_METHODS:
            given = req.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response(
                    {"error": "unauthorized", "message": "this request needs the shared token"},
                    status=401,
                )
        return await handler(req)

    return middleware


async def start_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); return the runner and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    return runner, bound


__all__ = ["SAFE_METHODS", "Profile", "build_app", "require_token", "start_app"]
