"""Models mm/mmap.c: munmap(), which zaps under mmap_sem held for write, and exit_mmap();
with kernel/exit.c's exit_mm(), its one caller."""

from __future__ import annotations

from kernsim.model import memcontrol
from kernsim.model.fork import mm_users_dec_and_test, mmput
from kernsim.model.locks import down_write, up_write
from kernsim.model.memory import task_addresses, zap_page_range
from kernsim.model.port import Cpu
from kernsim.model.swap import lru_add_drain


async def do_munmap(cpu: Cpu, task: int, start: int, end: int) -> None:
    """munmap(start, end - start): do_munmap() -> unmap_region() under mmap_sem held for
    write.  The model has one VMA and no VMA bookkeeping: a later access faults the
    range in again, as if the task had mmap()ed it anew."""
    await cpu.call(down_write, task, cpu.name)
    await cpu.call(lru_add_drain, cpu.pvec)  # unmap_region() starts with lru_add_drain()
    await zap_page_range(cpu, task, list(range(start, end)))
    await cpu.call(up_write, task, cpu.name)


async def exit_mm(cpu: Cpu, task: int) -> None:
    """Models exit_mm() -> mmput() for a task using mm ``task``: the last user runs
    exit_mmap(); every task leaves its cgroup."""
    if await cpu.call(mm_users_dec_and_test, task, cpu.task):
        await exit_mmap(cpu, task, cpu.task)
    else:
        await cpu.call(memcontrol.mem_cgroup_exit_task, cpu.task)


async def exit_mmap(cpu: Cpu, task: int, tid: int = 0) -> None:
    """Models exit_mmap() -> unmap_vmas() -> zap_pte_range(), then mmput() and cgroup exit
    of task ``tid`` (default: the mm's own task).  No mmap_sem: no other user is left."""
    await cpu.call(lru_add_drain, cpu.pvec)
    addrs = await cpu.call(task_addresses, task)
    await zap_page_range(cpu, task, addrs)
    await cpu.call(mmput, task)
    await cpu.call(memcontrol.mem_cgroup_exit_task, tid or task)
