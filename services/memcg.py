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
from errno import EACCES, EBUSY, EINVAL, ENOENT
from typing import Any

from aiohttp import web
from kernsim.services.catalog import Codec
from kernsim.services.cgroupfs import FILES, Cgroupfs, CgroupfsError
from kernsim.services.owner import OwnerService
from kernsim.services.runtime.config import ServiceConfig
from kernsim.services.service import main
from kernsim.services.snapshot import memcg_snapshot
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kernsim.check.invariants import memsw_below_usage
from kernsim.model.memcontrol import RES_UNLIMITED, MemCgroup, MemcgState, mem_cgroup_resize_limit

#: The cgroups the service creates at start (the scenarios' tasks run in /A).
CGROUPS = ("/A",)
ERRNO_NAMES = {EINVAL: "EINVAL", EBUSY: "EBUSY", EACCES: "EACCES"}
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


class MemcgService(OwnerService):
    name = "memcg"

    def __init__(self, config: ServiceConfig) -> None:
        state = MemcgState()
        for name in CGROUPS:
            state.create(name)
        super().__init__(config, state)
        self.violations: list[list[str]] = []
        self.cgroupfs = Cgroupfs(self.state)
        self.node.handlers["cgroup_id"] = self._cgroup_id
        self.metrics.add(self._families)

    def _cgroup_id(self, env: Any) -> dict[str, Any]:
        from kernsim.protocol import InvalidArgument

        gid = self.state.by_name.get(env.body["name"])
        if gid is None:
            raise InvalidArgument(f"no cgroup {env.body['name']!r}", errno=ENOENT)
        return {"id": gid}

    def after_primitive(self, codec: Codec) -> None:
        self.cgroupfs.count_charges()
        # The simulation's continuous check: memsw.usage >= usage after every memcg primitive.
        if self.violations:
            return
        for msg in memsw_below_usage(self.state):
            self.violations.append(["memsw_below_usage", f"{msg} after {codec.type}"])

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
        app.router.add_get("/cgroup/", self._list_groups)
        app.router.add_get("/cgroup/{name}/", self._list_files)
        app.router.add_get("/cgroup/{name}/{file}", self._read)
        app.router.add_put("/cgroup/{name}/{file}", self._write)
        app.router.add_post("/cgroup/{name}/{file}", self._write)

    def _group(self, req: web.Request) -> MemCgroup:
        name = req.match_info["name"]
        gid = self.state.by_name.get("/" if name == "root" else f"/{name}")
        if gid is None:
            known = ", ".join(g.name for g in self.state.groups.values())
            raise web.HTTPNotFound(text=f"no such cgroup: {name} (known: {known}; / is root)\n")
        group: MemCgroup = self.state.groups[gid]
        return group

    async def _list_groups(self, req: web.Request) -> web.Response:
        names = [
            "root" if g.name == "/" else g.name.lstrip("/") for g in self.state.groups.values()
        ]
        return web.Response(text="".join(f"{n}/\n" for n in names))

    async def _list_files(self, req: web.Request) -> web.Response:
        self._group(req)
        return web.Response(text="".join(f"{f}\n" for f in FILES))

    async def _read(self, req: web.Request) -> web.Response:
        g, file = self._group(req), req.match_info["file"]
        try:
            return web.Response(text=self.cgroupfs.read(g, file))
        except CgroupfsError as exc:
            return _errno(exc.errno, ERRNO_NAMES.get(exc.errno, str(exc.errno)), str(exc), 400)
        except FileNotFoundError:
            raise web.HTTPNotFound(text=f"no file {file} in {g.name}\n") from None

    async def _write(self, req: web.Request) -> web.Response:
        g, file = self._group(req), req.match_info["file"]

        def resize(value: int, memsw: bool) -> int:
            return int(mem_cgroup_resize_limit(self.state, g.id, value, memsw))

        async def force_empty() -> int:
            tasks = await self.node.peer("tasks")
            await tasks.call("force_empty", {"id": g.id}, self.config.rpc_timeout_s * 4)
            return int(g.res.usage)

        try:
            await self.cgroupfs.write(g, file, await req.text(), resize, force_empty, memparse)
        except CgroupfsError as exc:
            name = ERRNO_NAMES.get(exc.errno, str(exc.errno))
            status = {EBUSY: 409, EACCES: 403}.get(exc.errno, 400)
            return _errno(exc.errno, name, str(exc), status)
        except FileNotFoundError:
            raise web.HTTPNotFound(text=f"no file {file} in {g.name}\n") from None
        return web.Response(text="")


def _errno(errno: int, name: str, text: str, status: int) -> web.Response:
    return web.json_response({"errno": errno, "error": name, "message": text}, status=status)


if __name__ == "__main__":
    main(MemcgService, sys.argv[1:])
