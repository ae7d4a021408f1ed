"""Footprints: the kernel objects a primitive touches (a page, a swap slot, a memcg, ...).

Two steps of different CPUs *conflict* when their footprints share an object:
swapping them may change what the kernel does.  Steps on disjoint objects
commute.  Schedule search (POS, PCT's change points, the systematic search's
sleep sets), race classification and coverage all rest on this one relation.

A primitive's footprint is derived from its registration in
``kernsim.model.port`` (``PrimitiveInfo.obj`` names what its first argument
is) plus the small table ``EXTRA`` for primitives that name a second object,
and ``GLOBAL`` for primitives without an object argument (the LRU, the free
page pool, the swap allocator).  A primitive on a page also touches the swap
slot the page caches, and one on a slot the page in the swap cache for it:
``scheduling_footprint`` resolves these through the current state before the
step runs (conservative: more conflicts, never fewer); the trace's view
(``kernsim.explore.coverage.objects_of``) reads them from a step's result.

A renamed primitive needs at most one line here (its row of ``EXTRA``,
``GLOBAL`` or ``BY_RESULT``); primitives registered with an object kind need none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernsim.model.mm import MmState
    from kernsim.sim.cpu import SimCpu

#: An object: (kind, id).  Kinds: page, slot, memcg, mm (a task's page tables),
#: and the global ones below (id 0).
Obj = tuple[str, int]

#: PrimitiveInfo.obj -> our object kind.
KIND = {"page": "page", "swp": "slot", "memcg": "memcg", "task": "mm"}

#: Primitives that name a second object: name -> ((argument index, kind), ...).
EXTRA: dict[str, tuple[tuple[int, str], ...]] = {
    "add_to_swap_cache": ((1, "slot"),),
    "mem_cgroup_commit_charge": ((1, "memcg"),),
    "__mem_cgroup_commit_charge": ((1, "memcg"),),
    "mem_cgroup_swapin_target": ((1, "memcg"),),
    "try_get_mem_cgroup_from_swapcache": ((1, "memcg"),),
    # do_swap_page()'s pte_same(): is the pte still the swap entry of this slot?
    "pte_same": ((2, "slot"),),
}

#: Primitives with no object argument: the global object each one touches.
GLOBAL: dict[str, str] = {
    "alloc_page": "zone",
    "free_page": "zone",
    "__pagevec_free": "zone",
    "zone_free_pages": "zone",
    "zone_nr_scan": "zone",
    "kswapd_sleep": "zone",
    "get_swap_page": "swap_info",
    "vm_swap_full": "swap_info",
    "lru_add_drain": "lru",
    "lru_add_drain_all": "lru",
    "isolate_lru_pages": "lru",
    "isolate_lru_pages_of": "lru",
    "putback_lru_page": "lru",
    "release_pages": "lru",
    "lru_cache_add": "lru",
    "reclaim_lru_sizes": "lru",
    "select_bad_process": "tasks",
    "spin_lock_swap_lock": "swap_lock",
    "spin_unlock_swap_lock": "swap_lock",
    "scan_swap_map_reuse": "swap_info",
    # v5's stale swap list and v4's GC buffer
    "stale_swap_check_queue": "stale_swap_list",
    "stale_swap_check_pop": "stale_swap_list",
    "stale_swap_check_start": "stale_swap_list",
    "stale_swap_check_reschedule": "stale_swap_list",
    "ssc_gc_start": "stale_swap_list",
    "ssc_next": "stale_swap_list",
    "ssc_forget": "stale_swap_list",
    "ssc_reschedule": "stale_swap_list",
}

#: A primitive with no object argument and no row in GLOBAL touches this: it then
#: conflicts with every other such primitive of its owner (conservative).
UNKNOWN = "global"

#: Primitives whose result names the object they acted on: free_swap_and_cache's
#: swap_lock section finds the cache page, zap_pte() unmaps a page or a slot.
BY_RESULT = frozenset({"free_swap_and_cache_locked", "zap_pte"})

#: Every memcg primitive also reads or writes the res_counters (charge, uncharge,
#: the limit check): one object for all of them.
COUNTERS: Obj = ("res_counter", 0)


def static_objects(name: str, owner: str, obj: str, args: tuple[Any, ...]) -> list[Obj]:
    """The objects named by a primitive's arguments (no state needed)."""
    plan = _STATIC.get(name)
    if plan is None:
        plan = _STATIC[name] = _static_plan(name, owner, obj)
    slots, fixed = plan
    out: list[Obj] = []
    n = len(args)
    for i, k in slots:
        if i < n and isinstance(args[i], int):
            out.append((k, args[i]))
    out.extend(fixed)
    return out


#: name -> (the (argument index, kind) of its object arguments, the objects it always
#: touches): worked out once per primitive, as every step of POS and delay asks.
_STATIC: dict[str, tuple[tuple[tuple[int, str], ...], tuple[Obj, ...]]] = {}


def _static_plan(
    name: str, owner: str, obj: str
) -> tuple[tuple[tuple[int, str], ...], tuple[Obj, ...]]:
    kind = KIND.get(obj)
    slots = (((0, kind),) if kind is not None else ()) + EXTRA.get(name, ())
    fixed: list[Obj] = []
    g = GLOBAL.get(name)
    if g is not None:
        fixed.append((g, 0))
    elif kind is None:
        fixed.append((f"{UNKNOWN}:{owner}", 0))
    if owner == "memcg":
        fixed.append(COUNTERS)
    return slots, tuple(fixed)


def scheduling_footprint(cpu: SimCpu, mm: MmState) -> frozenset[Obj]:
    """What ``cpu``'s pending step will touch, resolved through the current state.

    A step that is not a primitive (a coroutine starting, a sleep ending) touches
    nothing shared: it only runs the code path up to its next primitive."""
    req = cpu.pending
    if req is None or req.kind != 0:  # engine.CALL
        return frozenset()
    info = req.info
    objs = static_objects(info.name, info.owner, info.obj, req.args)
    more: list[Obj] = []
    for kind, ident in objs:
        if kind == "page":
            page = mm.pages.get(ident)
            if page is not None and page.swapcache:
                more.append(("slot", page.private))
        elif kind == "slot":
            pfn = mm.swapper_space.get(ident)
            if pfn:
                more.append(("page", pfn))
        elif kind == "mm" and len(req.args) > 1:
            pte = mm.mms.get(ident)
            p = pte.ptes.get(req.args[1]) if pte is not None else None
            if p is not None:
                more.append(("page" if p.present else "slot", p.val))
    return frozenset(objs + more)
