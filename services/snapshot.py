"""The checker's view of mm and memcg state, as msgpack-safe data and back.

kernsim.check.invariants read an MmState and a MemcgState.  The services send
the fields they read (as lists: msgpack map keys must be strings) and the
launcher (Cluster.state) rebuilds the two objects, so the cluster runs the very same checks
as the simulation.
"""

from __future__ import annotations

from typing import Any

from kernsim.model.memcontrol import MemCgroup, MemcgState, PageCgroup
from kernsim.model.mm import MmConfig, MmState
from kernsim.model.mm_types import MmStruct, Page, Pte


def mm_snapshot(mm: MmState) -> dict[str, Any]:
    cfg = mm.config
    return {
        "config": [cfg.total_pages, cfg.swap_pages, cfg.page_cluster, cfg.swap_has_cache],
        "swap_map": list(mm.swap.swap_map),
        "swap_cgroup": list(mm.swap.swap_cgroup),
        "nr_swap_pages": mm.swap.nr_swap_pages,
        "swapper_space": [[e, pfn] for e, pfn in mm.swapper_space.items()],
        "mms": [
            [t, m.memcg, [[a, p.present, p.val] for a, p in m.ptes.items()]]
            for t, m in mm.mms.items()
        ],
        "pages": [
            [p.pfn, p.count, p.mapcount, p.swapcache, p.private, p.locked, p.writeback]
            for p in mm.pages.values()
        ],
        "stats": dict(mm.stats),
    }


def mm_restore(data: dict[str, Any]) -> MmState:
    total, swap, cluster, has_cache = data["config"]
    mm = MmState(MmConfig(total, swap, cluster, has_cache))
    mm.swap.swap_map = list(data["swap_map"])
    mm.swap.swap_cgroup = list(data["swap_cgroup"])
    mm.swap.nr_swap_pages = data["nr_swap_pages"]
    mm.swapper_space = {e: pfn for e, pfn in data["swapper_space"]}
    for task, memcg, ptes in data["mms"]:
        mms = MmStruct(task, memcg)
        mms.ptes = {a: Pte(present, val) for a, present, val in ptes}
        mm.mms[task] = mms
    for pfn, count, mapcount, swapcache, private, locked, writeback in data["pages"]:
        mm.pages[pfn] = Page(
            pfn,
            count,
            mapcount,
            locked=locked,
            writeback=writeback,
            swapcache=swapcache,
            private=private,
        )
    mm.stats = dict(data["stats"])
    return mm


def memcg_snapshot(mc: MemcgState) -> dict[str, Any]:
    return {
        "groups": [
            [
                g.id,
                g.name,
                g.res.usage,
                g.memsw.usage,
                g.res.limit,
                g.memsw.limit,
                g.res.failcnt,
                g.oom_kills,
            ]
            for g in mc.groups.values()
        ],
        "page_cgroup": [[pfn, pc.memcg, pc.used] for pfn, pc in mc.page_cgroup.items()],
    }


def memcg_restore(data: dict[str, Any]) -> MemcgState:
    mc = MemcgState(groups={0: MemCgroup(0, "placeholder")})
    mc.groups.clear()
    for gid, name, usage, memsw, limit, memsw_limit, failcnt, ooms in data["groups"]:
        g = MemCgroup(gid, name)
        g.res.usage, g.memsw.usage = usage, memsw
        g.res.limit, g.memsw.limit = limit, memsw_limit
        g.res.failcnt, g.oom_kills = failcnt, ooms
        mc.groups[gid] = g
        mc.by_name[name] = gid
    mc.page_cgroup = {pfn: PageCgroup(memcg, used) for pfn, memcg, used in data["page_cgroup"]}
    return mc
