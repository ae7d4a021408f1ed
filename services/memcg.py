"""The ``memcg`` service: the memcg accountant, and its cgroupfs files over HTTP.

Serves every primitive registered with owner ``memcg``.  The cgroupfs files
read the same MemcgState the primitives change, between two primitives, so
a file, /metrics and /statistics read at one instant agree.

    GET /cgroup/A/memory.usage_in_bytes         -> "4096\\n"
    PUT /cgroup/A/memory.limit_in_bytes  "2M"   -> 200, or 400 {"errno": 22} (EINVAL)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from kernsim.services.catalog import Codec
from kernsim.services.config import ServiceConfig
from kernsim.services.owner import OwnerService
from kernsim.services.service import main
from kernsim.services.snapshot import memcg_snapshot
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kernsim.model.memcontrol import (
    EBUSY,
    EINVAL,
    RES_UNLIMITED,
    MemCgroup,
    MemcgState,
    mem_cgroup_resize_limit,
)

#: The cgroups the service creates at start (the scenarios' tasks run in /A).
CGROUPS = ("/A",)
ERRNO_NAMES = {EINVAL: "EINVAL", EBUSY: "EBUSY"}
_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def memparse(text: str) -> int:
    """lib/cmdline.c memparse() as res_counter_memparse_write_strategy() uses it.

    ``-1`` means unlimited; anything else that is not a number with an optional
    K/M/G suffix raises ValueError (the write fails with EINVAL).
    """
    s = text.strip()
    if s == "-1":
        return RES_UNLIMITED
    mult = 1
    if s and s[-1].lower() in _SUFFIX:
        mult = _SUFFIX[s[-1].lower()]
        s = s[:-1]
    # simple_strtoull() reads ASCII 0-9 only; str.isdigit() also takes "٣" and "１".
    if not s.isascii() or not s.isdigit():
        raise ValueError(f"not a size: {text!r}")
    return int(s) * mult


def memory_stat(g: MemCgroup) -> str:
    """memory.stat as 2.6.30 prints it, for the anon-only model (no page cache)."""
    rows = [
        ("cache", 0),
        ("rss", g.res.usage),
        ("swap", g.memsw.usage - g.res.usage),
        ("pgpgin", g.stat.get("pgpgin", 0)),
        ("pgpgout", g.stat.get("pgpgout", 0)),
        ("active_anon", g.res.usage),
        ("hierarchical_memory_limit", g.res.limit),
        ("hierarchical_memsw_limit", g.memsw.limit),
    ]
    return "".join(f"{k} {v}\n" for k, v in rows)


class MemcgService(OwnerService):
    name = "memcg"

    def __init__(self, config: ServiceConfig) -> None:
        state = MemcgState()
        for name in CGROUPS:
            state.create(name)
        super().__init__(config, state)
        self.violations: list[list[str]] = []
        self.node.handlers["cgroup_id"] = self._cgroup_id
        self.metrics.add(self._families)

    def _cgroup_id(self, env: Any) -> dict[str, Any]:
        from kernsim.protocol import InvalidArgument

        gid = self.state.by_name.get(env.body["name"])
        if gid is None:
            raise InvalidArgument(f"no cgroup {env.body['name']!r}", errno=2)
        return {"id": gid}

    def after_primitive(self, codec: Codec) -> None:
        # The simulation's continuous check: memsw.usage >= usage after every memcg primitive.
        if self.violations:
            return
        for g in self.state.groups.values():
            if g.memsw.usage < g.res.usage:
                self.violations.append(
                    [
                        "memsw_below_usage",
                        f"{g.name}: memsw.usage {g.memsw.usage} < usage {g.res.usage} "
                        f"after {codec.type}",
                    ]
                )

    def snapshot(self) -> dict[str, Any]:
        return {**memcg_snapshot(self.state), "violations": list(self.violations)}

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "cgroups": self.state.statistics()}

    def _families(self) -> Iterable[Metric]:
        groups = list(self.state.groups.values())

        def fam(name: str, doc: str, value: Any, counter: bool = False) -> Metric:
            cls = CounterMetricFamily if counter else GaugeMetricFamily
            f = cls(name, doc, labels=["cgroup"])
            for g in groups:
                f.add_metric([g.name], value(g))
            return f

        yield fam("kernsim_memcg_usage_bytes", "memory.usage_in_bytes.", lambda g: g.res.usage)
        yield fam(
            "kernsim_memcg_memsw_usage_bytes",
            "memory.memsw.usage_in_bytes.",
            lambda g: g.memsw.usage,
        )
        yield fam(
            "kernsim_memcg_memsw_leak_bytes",
            "memsw.usage - usage (0 when not above).",
            lambda g: max(0, g.memsw.usage - g.res.usage),
        )
        yield fam("kernsim_memcg_limit_bytes", "memory.limit_in_bytes.", lambda g: g.res.limit)
        yield fam("kernsim_memcg_failcnt", "memory.failcnt.", lambda g: g.res.failcnt, True)
        yield fam("kernsim_memcg_oom", "memcg OOM kills.", lambda g: g.oom_kills, True)
        yield fam(
            "kernsim_memcg_tasks", "Tasks in the cgroup (its tasks file).", lambda g: len(g.tasks)
        )

    # --- cgroupfs ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/cgroup/{name}/{file}", self._read)
        app.router.add_put("/cgroup/{name}/{file}", self._write)

    def _group(self, req: web.Request) -> MemCgroup:
        name = req.match_info["name"]
        gid = self.state.by_name.get("/" if name == "root" else f"/{name}")
        if gid is None:
            raise web.HTTPNotFound(text=f"no cgroup {name}\n")
        group: MemCgroup = self.state.groups[gid]
        return group

    async def _read(self, req: web.Request) -> web.Response:
        g = self._group(req)
        files: dict[str, Any] = {
            "memory.usage_in_bytes": g.res.usage,
            "memory.memsw.usage_in_bytes": g.memsw.usage,
            "memory.limit_in_bytes": g.res.limit,
            "memory.memsw.limit_in_bytes": g.memsw.limit,
            "memory.max_usage_in_bytes": g.res.max_usage,
            "memory.memsw.max_usage_in_bytes": g.memsw.max_usage,
            "memory.failcnt": g.res.failcnt,
            "memory.memsw.failcnt": g.memsw.failcnt,
        }
        file = req.match_info["file"]
        if file in files:
            return web.Response(text=f"{files[file]}\n")
        if file == "memory.stat":
            return web.Response(text=memory_stat(g))
        if file == "tasks":
            return web.Response(text="".join(f"{t}\n" for t in sorted(g.tasks)))
        raise web.HTTPNotFound(text=f"no file {file}\n")

    async def _write(self, req: web.Request) -> web.Response:
        g = self._group(req)
        file = req.match_info["file"]
        memsw = {"memory.limit_in_bytes": False, "memory.memsw.limit_in_bytes": True}.get(file)
        if memsw is None:
            # cgroupfs files without a write handler are mode 0444: the open fails.
            return _errno(13, "EACCES", f"{file} is not writable", 403)
        try:
            value = memparse(await req.text())
        except ValueError as exc:
            return _errno(EINVAL, "EINVAL", str(exc), 400)
        err = mem_cgroup_resize_limit(self.state, g.id, value, memsw)
        if err:
            name = ERRNO_NAMES.get(-err, str(-err))
            return _errno(-err, name, f"write {file}: {name}", 409 if -err == EBUSY else 400)
        return web.Response(text="")


def _errno(errno: int, name: str, text: str, status: int) -> web.Response:
    return web.json_response({"errno": errno, "error": name, "message": text}, status=status)


if __name__ == "__main__":
    main(MemcgService, sys.argv[1:])
