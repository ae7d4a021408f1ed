"""Models mm/madvise.c: MADV_DONTNEED, which zaps under mmap_sem held for read only."""

from __future__ import annotations

from kernsim.model.locks import down_read, up_read
from kernsim.model.memory import zap_page_range
from kernsim.model.port import Cpu
from kernsim.model.swap import lru_add_drain


async def madvise_dontneed(cpu: Cpu, task: int, start: int, end: int) -> None:
    """madvise(start, end - start, MADV_DONTNEED): zap_page_range() under mmap_sem held
    for read only (madvise_need_mmap_write() is 0 for MADV_DONTNEED)."""
    await cpu.call(down_read, task, cpu.name)
    await cpu.call(lru_add_drain, cpu.pvec)  # zap_page_range() starts with lru_add_drain()
    await zap_page_range(cpu, task, list(range(start, end)))
    await cpu.call(up_read, task, cpu.name)
