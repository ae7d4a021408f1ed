"""Models mm/mmap.c: munmap(), which zaps under mmap_sem held for write."""

from __future__ import annotations

from kernsim.model.locks import down_write, up_write
from kernsim.model.memory import zap_page_range
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
