"""Models mm/memcontrol.c (2.6.30): res/memsw counters, page_cgroup, charge and uncharge.

The state here is what the ``memcg`` service owns: one MemCgroup per cgroup
(its res_counter ``res`` = memory.usage_in_bytes and ``memsw`` =
memory.memsw.usage_in_bytes), and page_cgroup (PCG_USED and the owner) per
page.  The memcg LRU is the list of USED pages of a group in charge order;
the zone half of the LRU (PageLRU) lives on mm, and mem_cgroup_isolate_pages()
is split along that line (see vmscan).

The swap_cgroup array is kept by mm beside swap_map (see mm.SwapInfo): the
memsw charge it stands for is here.

Simplifications: no hierarchy (use_hierarchy=0, the 2.6.30 default), so
mem_cgroup_hierarchical_reclaim() only ever reclaims from the group over its
limit; no shmem or page cache charges (anon pages only).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from errno import EBUSY, EINVAL
from typing import Any

from kernsim.model import swapfile, vmscan
from kernsim.model.filemap import page_flags
from kernsim.model.mm_types import PAGE_SIZE
from kernsim.model.oom_kill import select_bad_process
from kernsim.model.port import Cpu, primitive

MEM_CGROUP_RECLAIM_RETRIES = 5
RES_UNLIMITED = (1 << 63) - 1

#: res_counter_charge() results.
CHARGE_OK = 0
CHARGE_FAIL_RES = 1
CHARGE_FAIL_MEMSW = 2


class MemcgBug(AssertionError):
    """A memcg counter or page_cgroup broke a rule the kernel relies on."""


@dataclass(slots=True)
class ResCounter:
    """struct res_counter (kernel/res_counter.c), in bytes."""

    usage: int = 0
    limit: int = RES_UNLIMITED
    max_usage: int = 0
    failcnt: int = 0

    def charge(self, nbytes: int) -> bool:
        if self.usage + nbytes > self.limit:
            self.failcnt += 1
            return False
        self.usage += nbytes
        self.max_usage = max(self.max_usage, self.usage)
        return True

    def uncharge(self, nbytes: int) -> None:
        if self.usage < nbytes:  # the kernel WARN_ONs and clamps; we refuse to hide it
            raise MemcgBug(f"res_counter_uncharge below zero ({self.usage} - {nbytes})")
        self.usage -= nbytes


@dataclass(slots=True)
class MemCgroup:
    id: int
    name: str
    res: ResCounter = field(default_factory=ResCounter)
    memsw: ResCounter = field(default_factory=ResCounter)
    #: The memcg LRU: USED pages in charge order; the first key is reclaimed first.
    lru: OrderedDict[int, None] = field(default_factory=OrderedDict)
    tasks: set[int] = field(default_factory=set)
    oom_kills: int = 0
    #: mem_cgroup_get() references, one per swap_cgroup record pointing here.
    swap_refs: int = 0
    stat: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class PageCgroup:
    memcg: int
    used: bool = True


@dataclass(slots=True)
class MemcgState:
    groups: dict[int, MemCgroup] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    page_cgroup: dict[int, PageCgroup] = field(default_factory=dict)
    woken: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.groups:
            self.create("/")

    def create(self, name: str) -> int:
        if name in self.by_name:
            raise ValueError(f"cgroup {name!r} exists")
        css_id = len(self.groups) + 1
        self.groups[css_id] = MemCgroup(css_id, name)
        self.by_name[name] = css_id
        return css_id

    def group(self, css_id: int) -> MemCgroup:
        try:
            return self.groups[css_id]
        except KeyError:
            raise MemcgBug(f"no memcg with css id {css_id}") from None

    def statistics(self) -> dict[str, Any]:
        return {
            g.name: {
                "usage_bytes": g.res.usage,
                "memsw_usage_bytes": g.memsw.usage,
                "limit_bytes": g.res.limit,
                "memsw_limit_bytes": g.memsw.limit,
                "failcnt": g.res.failcnt,
                "memsw_failcnt": g.memsw.failcnt,
                "oom_kills": g.oom_kills,
                "lru_pages": len(g.lru),
                "tasks": len(g.tasks),
                "swap_refs": g.swap_refs,
            }
            for g in self.groups.values()
        }


def _clear_used(mc: MemcgState, pfn: int, pc: PageCgroup) -> MemCgroup:
    mem = mc.group(pc.memcg)
    pc.used = False
    mem.lru.pop(pfn, None)
    del mc.page_cgroup[pfn]
    return mem


@primitive("memcg", "memcg")
def res_counter_charge(mc: MemcgState, memcg_id: int) -> int:
    """The counter part of __mem_cgroup_try_charge(): res_counter_charge(&mem->res), then
    res_counter_charge(&mem->memsw), undoing res when memsw fails."""
    mem = mc.group(memcg_id)
    if not mem.res.charge(PAGE_SIZE):
        return CHARGE_FAIL_RES
    if not mem.memsw.charge(PAGE_SIZE):
        mem.res.uncharge(PAGE_SIZE)
        return CHARGE_FAIL_MEMSW
    return CHARGE_OK


@primitive("memcg", "memcg")
def mem_cgroup_cancel_charge_swapin(mc: MemcgState, memcg_id: int) -> None:
    """Models mem_cgroup_cancel_charge_swapin(): do_swap_page()'s out_nomap undoes the
    swap-in charge (res -1, memsw -1)."""
    mem = mc.group(memcg_id)
    mem.res.uncharge(PAGE_SIZE)
    mem.memsw.uncharge(PAGE_SIZE)


@primitive("memcg", "page")
def __mem_cgroup_commit_charge(mc: MemcgState, pfn: int, memcg_id: int) -> bool:
    """Models __mem_cgroup_commit_charge(): set PCG_USED and link to the memcg LRU.

    If the page is already USED the new charge is undone and False returned.
    """
    mem = mc.group(memcg_id)
    pc = mc.page_cgroup.get(pfn)
    if pc is not None and pc.used:
        mem.res.uncharge(PAGE_SIZE)
        mem.memsw.uncharge(PAGE_SIZE)
        return False
    mc.page_cgroup[pfn] = PageCgroup(memcg_id)
    mem.lru[pfn] = None
    return True


@primitive("memcg", "page")
def mem_cgroup_uncharge_page(mc: MemcgState, pfn: int, swapcache: bool, mapped: bool) -> bool:
    """Models mem_cgroup_uncharge_page() (type MAPPED), called by page_remove_rmap().

    ``swapcache`` and ``mapped`` are PageSwapCache() and page_mapped() as the
    caller read them.  A swap-cache page keeps its charge.
    """
    if swapcache:
        return False
    pc = mc.page_cgroup.get(pfn)
    if pc is None or not pc.used or mapped:
        return False
    mem = _clear_used(mc, pfn, pc)
    mem.res.uncharge(PAGE_SIZE)
    mem.memsw.uncharge(PAGE_SIZE)
    return True


@primitive("memcg", "page")
def mem_cgroup_uncharge_swapcache(mc: MemcgState, pfn: int, mapped: bool, swapout: bool) -> int:
    """Models mem_cgroup_uncharge_swapcache() when a page leaves the swap cache.

    2.6.30 (always ``swapout``, type SWAPOUT): res -1 and memsw kept; the caller
    records the returned memcg id in swap_cgroup (mem_cgroup_get()).
    2.6.31 with ``swapout`` False (type DROP, no swap user left): res -1 and
    memsw -1, nothing recorded.  Returns the id to record, or 0.
    """
    pc = mc.page_cgroup.get(pfn)
    if pc is None or not pc.used or mapped:
        return 0
    mem = _clear_used(mc, pfn, pc)
    mem.res.uncharge(PAGE_SIZE)
    if not swapout:
        mem.memsw.uncharge(PAGE_SIZE)
        return 0
    mem.swap_refs += 1
    return mem.id


@primitive("memcg", "memcg")
def mem_cgroup_uncharge_swap(mc: MemcgState, memcg_id: int) -> None:
    """Models mem_cgroup_uncharge_swap() after swap_cgroup_record(ent, 0) returned ``memcg_id``."""
    mem = mc.group(memcg_id)
    mem.memsw.uncharge(PAGE_SIZE)
    mem.swap_refs -= 1


@primitive("memcg", "page")
def try_get_mem_cgroup_from_swapcache(
    mc: MemcgState, pfn: int, swap_owner: int, current: int
) -> int:
    """try_get_mem_cgroup_from_swapcache(): whom a swap-in is charged to.

    The page's owner if it is USED, else the swap_cgroup record of its slot
    (read by the caller from mm), else the faulting task's memcg.
    """
    pc = mc.page_cgroup.get(pfn)
    if pc is not None and pc.used:
        return pc.memcg
    if swap_owner in mc.groups:
        return swap_owner
    return current


@primitive("memcg", "memcg")
def mem_cgroup_check_under_limit(mc: MemcgState, memcg_id: int) -> bool:
    """Models mem_cgroup_check_under_limit(): room for one more page in res and memsw."""
    mem = mc.group(memcg_id)
    return mem.res.usage < mem.res.limit and mem.memsw.usage < mem.memsw.limit


@primitive("memcg", "memcg")
def mem_cgroup_lru_candidates(mc: MemcgState, memcg_id: int, nr: int) -> list[int]:
    """The memcg half of mem_cgroup_isolate_pages(): up to ``nr`` USED pages, oldest first.

    They move to the young end of the memcg LRU, as putback would put them.
    """
    mem = mc.group(memcg_id)
    picked = list(mem.lru)[:nr]
    for pfn in picked:
        mem.lru.move_to_end(pfn)
    return picked


@primitive("memcg", "memcg")
def mem_cgroup_oom_tasks(mc: MemcgState, memcg_id: int) -> list[int]:
    """mem_cgroup_out_of_memory(): count the OOM and list the candidate tasks."""
    mem = mc.group(memcg_id)
    mem.oom_kills += 1
    return sorted(mem.tasks)


@primitive("memcg", "memcg")
def mem_cgroup_attach_task(mc: MemcgState, memcg_id: int, task: int) -> None:
    """cgroup attach: ``echo PID > tasks``."""
    for g in mc.groups.values():
        g.tasks.discard(task)
    mc.group(memcg_id).tasks.add(task)


@primitive("memcg", "task")
def mem_cgroup_exit_task(mc: MemcgState, task: int) -> None:
    """cgroup_exit(): the task leaves its group's tasks file."""
    for g in mc.groups.values():
        g.tasks.discard(task)


@primitive("memcg", "memcg")
def mem_cgroup_resize_limit(mc: MemcgState, memcg_id: int, limit_bytes: int, memsw: bool) -> int:
    """Models mem_cgroup_resize_limit() / mem_cgroup_resize_memsw_limit(): 0 or -errno.

    memsw.limit must stay >= limit (-EINVAL).  Simplification: a limit below
    the current usage answers -EBUSY at once instead of reclaiming first.
    """
    mem = mc.group(memcg_id)
    if limit_bytes < 0:
        return -EINVAL
    # res_counter_memparse_write_strategy(): PAGE_ALIGN() rounds up.
    limit_bytes = min(-(-limit_bytes // PAGE_SIZE) * PAGE_SIZE, RES_UNLIMITED)
    if memsw and limit_bytes < mem.res.limit:
        return -EINVAL
    if not memsw and mem.memsw.limit < limit_bytes:
        return -EINVAL
    counter = mem.memsw if memsw else mem.res
    if counter.usage > limit_bytes:
        return -EBUSY
    counter.limit = limit_bytes
    return 0


# --- code paths -------------------------------------------------------------


async def mem_cgroup_hierarchical_reclaim(cpu: Cpu, memcg_id: int, noswap: bool) -> int:
    """Models mem_cgroup_hierarchical_reclaim() without a hierarchy: the group itself, twice."""
    total = 0
    for _ in range(2):
        total += await vmscan.try_to_free_mem_cgroup_pages(cpu, memcg_id, noswap)
        if await cpu.call(mem_cgroup_check_under_limit, memcg_id):
            return 1 + total
    return total


async def __mem_cgroup_try_charge(cpu: Cpu, memcg_id: int, oom: bool = True) -> int:
    """Models __mem_cgroup_try_charge(): charge, reclaiming and finally OOM-killing.

    Returns the memcg id charged, 0 when the charge was bypassed (TIF_MEMDIE),
    or -1 for -ENOMEM.
    """
    if cpu.fatal_signal_pending() and cpu.memdie:
        return 0  # TIF_MEMDIE: don't account this!
    nr_retries = MEM_CGROUP_RECLAIM_RETRIES
    while True:
        ret = await cpu.call(res_counter_charge, memcg_id)
        if ret == CHARGE_OK:
            return memcg_id
        noswap = ret == CHARGE_FAIL_MEMSW
        if await mem_cgroup_hierarchical_reclaim(cpu, memcg_id, noswap):
            continue
        if await cpu.call(mem_cgroup_check_under_limit, memcg_id):
            continue
        if not nr_retries:
            if oom:
                await mem_cgroup_out_of_memory(cpu, memcg_id)
            return -1
        nr_retries -= 1


async def mem_cgroup_out_of_memory(cpu: Cpu, memcg_id: int) -> None:
    """Models mem_cgroup_out_of_memory(): kill the group's task with the largest RSS."""
    tasks = await cpu.call(mem_cgroup_oom_tasks, memcg_id)
    victim = await cpu.call(select_bad_process, tasks)
    if victim:
        await cpu.post("tasks", "oom_kill", victim)


async def mem_cgroup_commit_charge_swapin(cpu: Cpu, pfn: int, memcg_id: int) -> None:
    """Models __mem_cgroup_commit_charge_swapin(): commit, then drop the swap record's memsw."""
    if not memcg_id:
        return
    await cpu.call(__mem_cgroup_commit_charge, pfn, memcg_id)
    flags = await cpu.call(page_flags, pfn)
    if flags.swapcache:
        old = await cpu.call(swapfile.swap_cgroup_record, flags.private, 0)
        if old:
            await cpu.call(mem_cgroup_uncharge_swap, old)


@primitive("memcg", "memcg")
def mem_cgroup_lru_size(mc: MemcgState, memcg_id: int) -> int:
    """Pages on the memcg LRU (mem_cgroup_get_local_zonestat() summed over the anon lists)."""
    return len(mc.group(memcg_id).lru)
