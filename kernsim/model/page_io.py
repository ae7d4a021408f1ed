"""Models mm/page_io.c: swap I/O submission and its completions in interrupt context.

submit_bio() hands the page to the block device service; it completes the bio
after the device's latency (possibly out of order) by running
end_swap_bio_read() / end_swap_bio_write() on its own CPU, as an interrupt
handler would.  Completions never sleep and take no page lock.
"""

from __future__ import annotations

from kernsim.model import swapfile
from kernsim.model.filemap import end_page_writeback, unlock_page
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.port import Cpu, code_path, primitive


@primitive("mm", "page")
def set_page_writeback_unlock(mm: MmState, pfn: int) -> None:
    """swap_writepage(): set_page_writeback(); unlock_page() (one step: PG_locked is held)."""
    page = mm.page(pfn)
    if not page.locked or page.writeback:
        raise KernelBug(f"swap_writepage: bad page state {page}")
    page.writeback = True
    page.locked = False
    mm.woken.append(("PG_locked", pfn))


@primitive("mm", "page")
def set_page_uptodate(mm: MmState, pfn: int) -> None:
    """end_swap_bio_read(): SetPageUptodate()."""
    mm.page(pfn).uptodate = True


@primitive("mm", "page")
def clear_page_reclaim(mm: MmState, pfn: int) -> None:
    """ClearPageReclaim()."""
    mm.page(pfn).reclaim = False


async def swap_readpage(cpu: Cpu, pfn: int) -> None:
    """Models swap_readpage(): the page stays locked until the read completes."""
    await cpu.submit_bio("read", pfn)


async def swap_writepage(cpu: Cpu, pfn: int) -> None:
    """Models swap_writepage(): free the swap instead if nobody references it, else write."""
    if await swapfile.try_to_free_swap(cpu, pfn):
        await cpu.call(unlock_page, pfn)
        return
    await cpu.call(set_page_writeback_unlock, pfn)
    await cpu.submit_bio("write", pfn)


@code_path
async def end_swap_bio_read(cpu: Cpu, pfn: int) -> None:
    """Models end_swap_bio_read() (I/O errors are not modelled)."""
    await cpu.call(set_page_uptodate, pfn)
    await cpu.variant.end_swap_bio_read_hook(cpu, pfn)
    await cpu.call(unlock_page, pfn)


@code_path
async def end_swap_bio_write(cpu: Cpu, pfn: int) -> None:
    """Models end_swap_bio_write() -> end_page_writeback() (I/O errors are not modelled)."""
    await cpu.variant.end_swap_bio_write_hook(cpu, pfn)
    await cpu.call(end_page_writeback, pfn, cpu.pvec)
