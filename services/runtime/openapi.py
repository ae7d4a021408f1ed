"""The admin HTTP API described as OpenAPI 3.1, served at ``GET /openapi.json``.

The document lists the routes the service's app really has (each service adds
its own: memcg's cgroupfs files, the tasks commands), with the description and
examples below; a route without one here is still listed, with its method.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

_JSON = "application/json"
_TEXT = "text/plain"

_FAULTS_DOC: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "profile": {
            "type": "string",
            "description": "a shipped profile name (deploy/faults/NAME.toml)",
            "examples": ["hdd"],
        },
        "rules": {
            "type": "array",
            "items": {"type": "object"},
            "description": "fault rules as a profile's [[rules]] tables",
        },
        "hold": {"$ref": "#/components/schemas/Links"},
        "release": {"$ref": "#/components/schemas/Links"},
        "pause": {"type": "array", "items": {"type": "string"}, "examples": [["mm"]]},
        "resume": {"type": "array", "items": {"type": "string"}, "examples": [["mm"]]},
    },
}


def _op(summary: str, ok: str, media: str = _JSON, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": ok, "content": {media: {"schema": {}}}}},
    }
    op.update(extra)
    return op


def _body(schema: dict[str, Any], example: Any, media: str = _JSON) -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": schema, "example": example}}}


def _errors(*codes: str) -> dict[str, Any]:
    why = {
        "400": "bad input (JSON {error, errno?})",
        "403": "EACCES: the file has no write handler",
        "404": "no such cgroup or file",
        "409": "EBUSY",
        "503": "a peer service did not answer",
    }
    ref = {"$ref": "#/components/schemas/Error"}
    return {c: {"description": why[c], "content": {_JSON: {"schema": ref}}} for c in codes}


_CGROUP = [
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}},
]

#: (method, path) -> operation.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/"): _op("this service's endpoints", '{"service": NAME, "endpoints": ["GET /", ...]}'),
    ("get", "/healthz"): _op("liveness", '{"service": NAME, "ok": true}'),
    ("get", "/metrics"): _op("Prometheus metrics (kernsim_ prefix)", "exposition text", _TEXT),
    ("get", "/statistics"): _op("the service's counters as JSON", "counters"),
    ("get", "/openapi.json"): _op("this document", "OpenAPI 3.1"),
    ("get", "/faults"): _op(
        "the fault layer: profile, held links, paused services, queued messages", "state"
    ),
    ("put", "/faults"): {
        **_op("change the fault layer (kernsim faults does it for every service)", "new state"),
        "requestBody": _body(
            {"$ref": "#/components/schemas/FaultChange"},
            {"profile": "hdd", "hold": [["tasks", "mm"]], "pause": ["memcg"]},
        ),
        "responses": {
            "200": {"description": "the new state", "content": {_JSON: {"schema": {}}}},
            **_errors("400"),
        },
    },
    ("get", "/cgroup/"): _op("the memory cgroups, one NAME/ a line (root/ is /)", "list", _TEXT),
    ("get", "/cgroup/{name}/"): {
        **_op("the files of a cgroup (memory.*, tasks)", "list", _TEXT),
        "parameters": _CGROUP[:1],
        "responses": {"200": {"description": "file names"}, **_errors("404")},
    },
    ("get", "/cgroup/{name}/{file}"): {
        **_op("read a cgroupfs file as 2.6.30 prints it", "the file's text", _TEXT),
        "parameters": _CGROUP,
        "responses": {"200": {"description": "e.g. 2097152"}, **_errors("400", "404")},
    },
    ("put", "/cgroup/{name}/{file}"): {
        **_op("write a cgroupfs file (limit sizes, reset triggers, force_empty, ...)", "written"),
        "parameters": _CGROUP,
        "requestBody": _body({"type": "string"}, "2M", _TEXT),
        "responses": {"200": {"description": "written"}, **_errors("400", "403", "404", "409")},
    },
    ("post", "/cgroup/{name}/{file}"): {
        **_op("the same as PUT (echo > file)", "written"),
        "parameters": _CGROUP,
        "requestBody": _body({"type": "string"}, "0", _TEXT),
        "responses": {"200": {"description": "written"}, **_errors("400", "403", "404", "409")},
    },
    ("post", "/workload"): {
        **_op("start the scenario's workload in /A", "started"),
        "requestBody": _body(
            {
                "type": "object",
                "properties": {
                    "scenario": {"type": "string", "default": "kamezawa"},
                    "duration_s": {"type": "number", "exclusiveMinimum": 0, "default": 9},
                    "seed": {"type": "integer", "minimum": 0, "default": 1},
                },
                "additionalProperties": False,
            },
            {"scenario": "kamezawa", "duration_s": 9, "seed": 1},
        ),
        "responses": {
            "202": {"description": "started", "content": {_JSON: {"schema": {}}}},
            **_errors("400", "409", "503"),
        },
    },
    ("get", "/workload"): _op("running, tasks, busy code paths, quiescent", "status"),
    ("post", "/kill_all"): _op("SIGKILL every task of /A (pkill)", '{"killed": N}'),
}


def document(service: str, app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        method = route.method.lower()
        if method == "head":
            continue
        info = route.get_info()
        path = info.get("path") or info.get("formatter")
        if not path:
            continue
        op = OPERATIONS.get((method, path)) or _op(f"{method.upper()} {path}", "ok")
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"kernsim {service} admin API",
            "version": "1",
            "description": "Served on the service's admin port; with a token, every request "
            "that changes something needs Authorization: Bearer TOKEN.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "errno": {"type": "integer"},
                        "message": {"type": "string"},
                    },
                },
                "Links": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                    "examples": [[["tasks", "mm"]]],
                },
                "FaultChange": _FAULTS_DOC,
            }
        },
    }
