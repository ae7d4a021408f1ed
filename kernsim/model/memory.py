"""Models mm/memory.c: page faults (anon and swap) and zapping ptes (munmap, exit).

Each task is one single-threaded process with one anon VMA (no fork): only
the task itself changes its ptes, except try_to_unmap() in reclaim, which
turns a present pte into a swap pte under the pte lock.
"""

from __future__ import annotations

from kernsim.model.filemap import (
    lock_page,
    page_cache_release,
    page_flags,
    unlock_page,
)
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import PAGEVEC_SIZE, MmStruct, Pte
from kernsim.model.port import Cpu, primitive

#: include/asm-generic/tlb.h: pages an mmu_gather holds before it must flush.
FREE_PTE_NR = 506
VM_FAULT_OOM = 1
VM_FAULT_SIGBUS = 2

PTE_NONE = 0
PTE_PRESENT = 1
PTE_SWAP = 2

assert PAGEVEC_SIZE < FREE_PTE_NR


def _mm(mm: MmState, task: int) -> MmStruct:
    try:
        return mm.mms[task]
    except KeyError:
        raise KernelBug(f"task {task} has no mm") from None


@primitive("mm", "task")
def mm_init(mm: MmState, task: int, memcg_id: int) -> None:
    """mm_alloc(): a new, empty address space for ``task``."""
    if task in mm.mms:
        raise KernelBug(f"task {task} already has an mm")
    mm.mms[task] = MmStruct(task, memcg_id)


@primitive("mm", "task")
def mmput(mm: MmState, task: int) -> None:
    """mmput() after exit_mmap(): every pte must be gone."""
    if _mm(mm, task).ptes:
        raise KernelBug(f"mmput: task {task} still has ptes")
    del mm.mms[task]


@primitive("mm", "task")
def handle_pte_access(mm: MmState, task: int, addr: int, write: bool) -> tuple[int, int]:
    """A user access: a present pte gets its young (and dirty) bit, as the MMU would.

    Returns (PTE_NONE | PTE_PRESENT | PTE_SWAP, pfn or swp_entry_t): the
    orig_pte a fault starts from.
    """
    pte = _mm(mm, task).ptes.get(addr)
    if pte is None:
        return PTE_NONE, 0
    if pte.present:
        pte.young = True
        pte.dirty = pte.dirty or write
        return PTE_PRESENT, pte.val
    return PTE_SWAP, pte.val


@primitive("mm", "task")
def do_anonymous_page_map(mm: MmState, task: int, addr: int, pfn: int, cpu: str) -> bool:
    """The pte-locked part of do_anonymous_page(): page_add_new_anon_rmap() and set_pte_at().

    page_add_new_anon_rmap() puts the page on this CPU's lru_add pagevec (active
    list).  False when the pte is no longer none (the caller releases the page).
    """
    ptes = _mm(mm, task).ptes
    if addr in ptes:
        return False
    page = mm.page(pfn)
    page.mapcount = 1
    page.anon = True
    page.swapbacked = True
    page.uptodate = True
    page.rmap = (task, addr)
    ptes[addr] = Pte(True, pfn, young=True, dirty=True)
    from kernsim.model.swap import lru_cache_add

    lru_cache_add(mm, pfn, cpu, True)
    return True


@primitive("mm", "task")
def pte_same(mm: MmState, task: int, addr: int, entry: int) -> bool:
    """pte_same(*page_table, orig_pte) for a swap pte, under the pte lock."""
    pte = _mm(mm, task).ptes.get(addr)
    return pte is not None and not pte.present and pte.val == entry


@primitive("mm", "task")
def do_swap_page_map(mm: MmState, task: int, addr: int, pfn: int, write: bool) -> None:
    """do_swap_page(): set_pte_at() and page_add_anon_rmap() (the pte was checked same)."""
    page = mm.page(pfn)
    if page.mapcount:
        raise KernelBug(f"do_swap_page: anon page {pfn} mapped twice (no fork in the model)")
    page.anon = True  # page_add_anon_rmap(): page->mapping = anon_vma, so PageAnon()
    page.mapcount = 1
    page.rmap = (task, addr)
    _mm(mm, task).ptes[addr] = Pte(True, pfn, young=True, dirty=write)


@primitive("mm", "task")
def zap_pte(mm: MmState, task: int, addr: int) -> tuple[int, int, bool]:
    """One pte of zap_pte_range(): ptep_get_and_clear(), and for a present pte the
    atomic_add_negative() of page_remove_rmap().

    Returns (kind, pfn or entry, True when the page's last mapping went).  A swap
    pte is cleared here rather than after free_swap_and_cache(): the pte lock is
    held throughout, so nobody can tell.
    """
    pte = _mm(mm, task).ptes.pop(addr, None)
    if pte is None:
        return PTE_NONE, 0, False
    if not pte.present:
        return PTE_SWAP, pte.val, False
    page = mm.page(pte.val)
    # PageAnon: "anon_rss--" only.  The pte's dirty bit is dropped with the pte (the
    # contents are dead); only file pages get set_page_dirty() here.
    page.mapcount -= 1
    if page.mapcount < 0:
        raise KernelBug(f"page {page.pfn}: mapcount went negative")
    if page.mapcount == 0:
        page.rmap = None
    return PTE_PRESENT, pte.val, page.mapcount == 0


@primitive("mm", "task")
def task_addresses(mm: MmState, task: int) -> list[int]:
    """The addresses with a pte, in order (unmap_vmas() walks the VMA in order)."""
    return sorted(_mm(mm, task).ptes)


# --- code paths -------------------------------------------------------------


async def page_remove_rmap_uncharge(cpu: Cpu, pfn: int) -> None:
    """The rest of page_remove_rmap() once the mapcount went to -1: mem_cgroup_uncharge_page()."""
    from kernsim.model.memcontrol import mem_cgroup_uncharge_page

    flags = await cpu.call(page_flags, pfn)
    await cpu.call(mem_cgroup_uncharge_page, pfn, flags.swapcache, flags.mapped)


async def do_anonymous_page(cpu: Cpu, task: int, addr: int) -> int:
    """Models do_anonymous_page(): allocate, charge (mem_cgroup_newpage_charge), map."""
    from kernsim.model.memcontrol import (
        __mem_cgroup_commit_charge,
        __mem_cgroup_try_charge,
        mem_cgroup_uncharge_page,
    )
    from kernsim.model.page_alloc import alloc_page_vma

    pfn = await alloc_page_vma(cpu)
    if not pfn:
        return VM_FAULT_OOM
    memcg = await __mem_cgroup_try_charge(cpu, cpu.memcg)
    if memcg < 0:
        await cpu.call(page_cache_release, pfn)
        return VM_FAULT_OOM
    if memcg:
        await cpu.call(__mem_cgroup_commit_charge, pfn, memcg)
    if not await cpu.call(do_anonymous_page_map, task, addr, pfn, cpu.pvec):
        await cpu.call(mem_cgroup_uncharge_page, pfn, False, False)
        await cpu.call(page_cache_release, pfn)
    return 0


async def do_swap_page(cpu: Cpu, task: int, addr: int, entry: int, write: bool) -> int:
    """Models do_swap_page()."""
    from kernsim.model.filemap import find_get_page
    from kernsim.model.memcontrol import (
        __mem_cgroup_try_charge,
        mem_cgroup_cancel_charge_swapin,
        mem_cgroup_commit_charge_swapin,
        try_get_mem_cgroup_from_swapcache,
    )
    from kernsim.model.swap_state import swapin_readahead
    from kernsim.model.swapfile import (
        lookup_swap_cgroup,
        reuse_swap_page,
        swap_free_and_uncharge,
        try_to_free_swap,
        vm_swap_full,
    )

    pfn = await cpu.call(find_get_page, entry)  # lookup_swap_cache()
    if not pfn:
        pfn = await swapin_readahead(cpu, entry)
        if not pfn:
            # Back out if somebody else faulted in this pte while we released the pte lock.
            return VM_FAULT_OOM if await cpu.call(pte_same, task, addr, entry) else 0
    await cpu.call(lock_page, pfn)
    # mem_cgroup_try_charge_swapin(): a page no longer in the swap cache is not
    # charged here; "do_swap_page()'s pte_same() test ... should fail".
    memcg = 0
    if (await cpu.call(page_flags, pfn)).swapcache:
        owner = await cpu.call(lookup_swap_cgroup, entry)
        target = await cpu.call(try_get_mem_cgroup_from_swapcache, pfn, owner, cpu.memcg)
        memcg = await __mem_cgroup_try_charge(cpu, target)
    if memcg < 0:
        await cpu.call(unlock_page, pfn)
        await cpu.call(page_cache_release, pfn)
        return VM_FAULT_OOM
    flags = await cpu.call(page_flags, pfn)
    if not await cpu.call(pte_same, task, addr, entry) or not flags.uptodate:
        # out_nomap
        if memcg:
            await cpu.call(mem_cgroup_cancel_charge_swapin, memcg)
        await cpu.call(unlock_page, pfn)
        await cpu.call(page_cache_release, pfn)
        return 0 if flags.uptodate else VM_FAULT_SIGBUS
    if write:
        await reuse_swap_page(cpu, pfn)
    await cpu.call(do_swap_page_map, task, addr, pfn, write)
    await mem_cgroup_commit_charge_swapin(cpu, pfn, memcg)
    await swap_free_and_uncharge(cpu, entry)
    if await cpu.call(vm_swap_full):
        await try_to_free_swap(cpu, pfn)
    await cpu.call(unlock_page, pfn)
    return 0


async def handle_mm_fault(cpu: Cpu, task: int, addr: int, write: bool = True) -> int:
    """A user access to ``addr``: a hit, or handle_pte_fault() to the right fault handler."""
    kind, val = await cpu.call(handle_pte_access, task, addr, write)
    if kind == PTE_PRESENT:
        return 0
    if kind == PTE_NONE:
        return await do_anonymous_page(cpu, task, addr)
    return await do_swap_page(cpu, task, addr, val, write)


async def zap_page_range(cpu: Cpu, task: int, addrs: list[int]) -> None:
    """Models zap_pte_range() over ``addrs`` with an mmu_gather (munmap, MADV_DONTNEED, exit)."""
    from kernsim.model.swap_state import free_pages_and_swap_cache
    from kernsim.model.swapfile import free_swap_and_cache

    tlb: list[int] = []
    for addr in addrs:
        kind, val, unmapped = await cpu.call(zap_pte, task, addr)
        if kind == PTE_PRESENT:
            if unmapped:
                await page_remove_rmap_uncharge(cpu, val)
            tlb.append(val)  # tlb_remove_page(): the pte's reference moves to the gather
            if len(tlb) >= FREE_PTE_NR:
                await free_pages_and_swap_cache(cpu, tlb)
                tlb = []
        elif kind == PTE_SWAP:
            await free_swap_and_cache(cpu, val)
    if tlb:  # tlb_finish_mmu()
        await free_pages_and_swap_cache(cpu, tlb)


async def exit_mmap(cpu: Cpu, task: int) -> None:
    """Models exit_mmap() -> unmap_vmas() -> zap_pte_range(), then mmput() and cgroup exit."""
    from kernsim.model.memcontrol import mem_cgroup_exit_task
    from kernsim.model.swap import lru_add_drain

    await cpu.call(lru_add_drain, cpu.pvec)
    addrs = await cpu.call(task_addresses, task)
    await zap_page_range(cpu, task, addrs)
    await cpu.call(mmput, task)
    await cpu.call(mem_cgroup_exit_task, task)
