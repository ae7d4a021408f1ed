"""Models mm/memory.c: page faults (anon and swap) and zapping ptes (munmap, MADV_DONTNEED,
exit), with mmap_sem and the pte lock held across their steps.

A process has one anon VMA and one mm, named by the pid of the task that
exec'd it (``task`` in every primitive here); threads (CLONE_VM) share it.
Page faults and MADV_DONTNEED hold mmap_sem for read, so one thread's zap can
run beside another thread's fault; munmap holds it for write.  The pte lock
(kernsim.model.locks) is held over do_swap_page()'s pte_same() ... unlock_page(),
do_anonymous_page()'s pte_none() ... set_pte_at() and each zap_pte_range()
batch.  After fork (kernsim.model.fork) a page can be mapped by a pte of each mm
of its anon_vma, write-protected: a write faults into do_wp_page(), which reuses
the page when it is the last user (reuse_swap_page()) or copies it.
"""

from __future__ import annotations

from kernsim.model import memcontrol, page_alloc, swap_state, swapfile
from kernsim.model.filemap import (
    find_get_page,
    lock_page,
    page_cache_get,
    page_cache_release,
    page_flags,
    trylock_page,
    unlock_page,
)
from kernsim.model.locks import (
    PTRS_PER_PTE,
    down_read,
    held,
    pte_offset_map_lock,
    pte_unmap_unlock,
    ptl_id,
    up_read,
)
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import PAGE_SIZE, PAGEVEC_SIZE, Pte
from kernsim.model.port import Cpu, primitive
from kernsim.model.swap import lru_cache_add

#: include/asm-generic/tlb.h: pages an mmu_gather holds before it must flush.
FREE_PTE_NR = 506
VM_FAULT_OOM = 1
VM_FAULT_SIGBUS = 2
#: mm/memory.c without CONFIG_PREEMPT: unmap_vmas() zaps this many bytes of ptes
#: before it flushes the mmu_gather and may reschedule.
ZAP_BLOCK_SIZE = 1024 * PAGE_SIZE

PTE_NONE = 0
PTE_PRESENT = 1
PTE_SWAP = 2
#: A present pte that fork write-protected, met by a write (handle_pte_fault()).
PTE_WRPROTECT = 3

assert PAGEVEC_SIZE < FREE_PTE_NR


@primitive("mm", "task")
def handle_pte_access(mm: MmState, task: int, addr: int, write: bool) -> tuple[int, int]:
    """A user access: a present pte gets its young (and dirty) bit, as the MMU would.

    Returns (PTE_NONE | PTE_PRESENT | PTE_SWAP | PTE_WRPROTECT, pfn or swp_entry_t):
    the orig_pte a fault starts from.  A write to a write-protected pte (fork's
    copy-on-write) faults: PTE_WRPROTECT, handle_pte_fault()'s way to do_wp_page().
    """
    pte = mm.mm_struct(task).ptes.get(addr)
    if pte is None:
        return PTE_NONE, 0
    if pte.present:
        pte.young = True
        if write and not pte.write:
            return PTE_WRPROTECT, pte.val
        pte.dirty = pte.dirty or write
        return PTE_PRESENT, pte.val
    return PTE_SWAP, pte.val


@primitive("mm", "task")
def do_anonymous_page_map(mm: MmState, task: int, addr: int, pfn: int, cpu: str) -> bool:
    """The pte-locked part of do_anonymous_page(): page_add_new_anon_rmap() and set_pte_at().

    page_add_new_anon_rmap() puts the page on this CPU's lru_add pagevec (active
    list).  False when the pte is no longer none (the caller releases the page).
    """
    held(mm, ptl_id(task, addr), "do_anonymous_page")
    ptes = mm.mm_struct(task).ptes
    if addr in ptes:
        return False
    page_add_new_anon_rmap(mm, task, addr, pfn, cpu)
    ptes[addr] = Pte(True, pfn, young=True, dirty=True)
    return True


def page_add_new_anon_rmap(mm: MmState, task: int, addr: int, pfn: int, cpu: str) -> None:
    """page_add_new_anon_rmap(): the first mapping of a new page, onto this CPU's lru_add
    pagevec (active list)."""
    page = mm.page(pfn)
    page.mapcount = 1
    page.anon = True
    page.swapbacked = True
    page.uptodate = True
    page.anon_vma, page.index = mm.mm_struct(task).anon_vma, addr
    lru_cache_add(mm, pfn, cpu, True)


@primitive("mm", "task")
def pte_same(mm: MmState, task: int, addr: int, entry: int) -> bool:
    """pte_same(*page_table, orig_pte) for a swap pte, under the pte lock."""
    held(mm, ptl_id(task, addr), "pte_same")
    pte = mm.mm_struct(task).ptes.get(addr)
    return pte is not None and not pte.present and pte.val == entry


@primitive("mm", "task")
def pte_same_wrprotect(mm: MmState, task: int, addr: int, pfn: int) -> bool:
    """pte_same(*page_table, orig_pte) for do_wp_page()'s orig_pte, a write-protected pte
    mapping page ``pfn``, under the pte lock."""
    held(mm, ptl_id(task, addr), "pte_same")
    pte = mm.mm_struct(task).ptes.get(addr)
    return pte is not None and pte.present and pte.val == pfn and not pte.write


@primitive("mm", "task")
def do_swap_page_map(mm: MmState, task: int, addr: int, pfn: int, write: bool) -> None:
    """do_swap_page(): set_pte_at() and page_add_anon_rmap() (the pte was checked same).

    ``write``: reuse_swap_page() said this pte may write (pte_mkdirty, maybe_mkwrite);
    otherwise the pte is mapped clean and write-protected (mk_pte() with the private
    VMA's vm_page_prot), and a write goes on to do_wp_page().  After fork the page may
    already be mapped by another mm of its anon_vma.
    """
    held(mm, ptl_id(task, addr), "do_swap_page")
    page = mm.page(pfn)
    page.anon = True  # page_add_anon_rmap(): page->mapping = anon_vma, so PageAnon()
    page.mapcount += 1
    if page.mapcount == 1:  # __page_set_anon_rmap()
        page.anon_vma, page.index = mm.mm_struct(task).anon_vma, addr
    mm.mm_struct(task).ptes[addr] = Pte(True, pfn, young=True, dirty=write, write=write)


@primitive("mm", "task")
def zap_pte(mm: MmState, task: int, addr: int) -> tuple[int, int, bool]:
    """One pte of zap_pte_range(): ptep_get_and_clear(), and for a present pte the
    atomic_add_negative() of page_remove_rmap().

    Returns (kind, pfn or entry, True when the page's last mapping went).  A swap
    pte is cleared here rather than after free_swap_and_cache(): the pte lock is
    held throughout; only handle_pte_fault()'s lock-free read of the pte could
    tell (docs/MODEL.md, "Atomicity").
    """
    held(mm, ptl_id(task, addr), "zap_pte_range")
    pte = mm.mm_struct(task).ptes.pop(addr, None)
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
    return PTE_PRESENT, pte.val, page.mapcount == 0


@primitive("mm", "task")
def task_addresses(mm: MmState, task: int) -> list[int]:
    """The addresses with a pte, in order (unmap_vmas() walks the VMA in order)."""
    return sorted(mm.mm_struct(task).ptes)


# --- code paths -------------------------------------------------------------


async def page_remove_rmap_uncharge(cpu: Cpu, pfn: int) -> None:
    """The rest of page_remove_rmap() once the mapcount went to -1: mem_cgroup_uncharge_page()."""
    flags = await cpu.call(page_flags, pfn)
    await cpu.call(memcontrol.mem_cgroup_uncharge_page, pfn, flags.swapcache, flags.mapped)


async def do_anonymous_page(cpu: Cpu, task: int, addr: int) -> int:
    """Models do_anonymous_page(): allocate, charge (mem_cgroup_newpage_charge), map."""
    pfn = await page_alloc.alloc_page_vma(cpu)
    if not pfn:
        return VM_FAULT_OOM
    memcg = await memcontrol.__mem_cgroup_try_charge(cpu, cpu.memcg)
    if memcg < 0:
        await cpu.call(page_cache_release, pfn)
        return VM_FAULT_OOM
    if memcg:
        await cpu.call(memcontrol.__mem_cgroup_commit_charge, pfn, memcg)
    await cpu.call(pte_offset_map_lock, task, addr, cpu.name)
    if not await cpu.call(do_anonymous_page_map, task, addr, pfn, cpu.pvec):
        # release: (still under the pte lock)
        await cpu.call(memcontrol.mem_cgroup_uncharge_page, pfn, False, False)
        await cpu.call(page_cache_release, pfn)
    await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
    return 0


async def do_swap_page(cpu: Cpu, task: int, addr: int, entry: int, write: bool) -> int:
    """Models do_swap_page()."""
    pfn = await cpu.call(find_get_page, entry)  # lookup_swap_cache()
    if not pfn:
        pfn = await swap_state.swapin_readahead(cpu, entry)
        if not pfn:
            # Back out if somebody else faulted in this pte while we released the pte lock.
            await cpu.call(pte_offset_map_lock, task, addr, cpu.name)
            same = await cpu.call(pte_same, task, addr, entry)
            await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
            return VM_FAULT_OOM if same else 0
    await cpu.call(lock_page, pfn)
    # mem_cgroup_try_charge_swapin(): a page no longer in the swap cache is not
    # charged here; "do_swap_page()'s pte_same() test ... should fail".
    memcg = 0
    if (await cpu.call(page_flags, pfn)).swapcache:
        owner = await cpu.call(swapfile.lookup_swap_cgroup, entry)
        target = await cpu.call(memcontrol.try_get_mem_cgroup_from_swapcache, pfn, owner, cpu.memcg)
        memcg = await memcontrol.__mem_cgroup_try_charge(cpu, target)
    if memcg < 0:
        await cpu.call(unlock_page, pfn)
        await cpu.call(page_cache_release, pfn)
        return VM_FAULT_OOM
    # Back out if somebody else already faulted in this pte (or zapped it).
    await cpu.call(pte_offset_map_lock, task, addr, cpu.name)
    same = await cpu.call(pte_same, task, addr, entry)
    if not same or not (await cpu.call(page_flags, pfn)).uptodate:
        # out_nomap
        if memcg:
            await cpu.call(memcontrol.mem_cgroup_cancel_charge_swapin, memcg)
        await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
        # out_page
        await cpu.call(unlock_page, pfn)
        await cpu.call(page_cache_release, pfn)
        return VM_FAULT_SIGBUS if same else 0
    # reuse_swap_page() must run while the page is counted on swap but not yet in
    # mapcount.  Shared with another mm (fork): map it write-protected, then COW below.
    reuse = write and await swapfile.reuse_swap_page(cpu, pfn)
    await cpu.call(do_swap_page_map, task, addr, pfn, reuse)
    await memcontrol.mem_cgroup_commit_charge_swapin(cpu, pfn, memcg)
    await swapfile.swap_free_and_uncharge(cpu, entry)
    if await cpu.call(swapfile.vm_swap_full):
        await swapfile.try_to_free_swap(cpu, pfn)
    await cpu.call(unlock_page, pfn)
    if write and not reuse:
        return await do_wp_page(cpu, task, addr, pfn)  # drops the pte lock
    await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
    return 0


@primitive("mm", "task")
def do_wp_page_reuse(mm: MmState, task: int, addr: int) -> None:
    """do_wp_page()'s ``reuse:`` (under the pte lock): ptep_set_access_flags() with the
    pte young, dirty and writable."""
    held(mm, ptl_id(task, addr), "do_wp_page")
    pte = mm.mm_struct(task).ptes[addr]
    pte.young = pte.dirty = pte.write = True


@primitive("mm", "task")
def do_wp_page_map(mm: MmState, task: int, addr: int, old: int, new: int, cpu: str) -> bool:
    """do_wp_page() after the copy, the pte still the same (under the pte lock):
    ptep_clear_flush_notify(), page_add_new_anon_rmap() of the new page, set_pte_at(),
    then page_remove_rmap()'s atomic_add_negative() on the old page.  True when that
    was the old page's last mapping (the caller runs its mem_cgroup_uncharge_page())."""
    held(mm, ptl_id(task, addr), "do_wp_page")
    page_add_new_anon_rmap(mm, task, addr, new, cpu)
    mm.mm_struct(task).ptes[addr] = Pte(True, new, young=True, dirty=True)
    page = mm.page(old)
    page.mapcount -= 1
    if page.mapcount < 0:
        raise KernelBug(f"page {old}: mapcount went negative")
    return page.mapcount == 0


async def do_wp_page(cpu: Cpu, task: int, addr: int, pfn: int) -> int:
    """Models do_wp_page() for an anon page, entered with the pte lock held (it is
    dropped on return): write to a write-protected pte of page ``pfn``.

    Reuse the page if reuse_swap_page() says this pte is its only user (freeing its
    swap), else copy it: a new page, charged to the task's memcg
    (mem_cgroup_newpage_charge()), mapped in place of the old one, whose mapping
    goes (page_remove_rmap(): its charge goes with its last mapping, unless it is in
    the swap cache).
    """
    if not await cpu.call(trylock_page, pfn):
        await cpu.call(page_cache_get, pfn)
        await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
        await cpu.call(lock_page, pfn)
        await cpu.call(pte_offset_map_lock, task, addr, cpu.name)
        if not await cpu.call(pte_same_wrprotect, task, addr, pfn):
            await cpu.call(unlock_page, pfn)
            await cpu.call(page_cache_release, pfn)
            await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
            return 0
        await cpu.call(page_cache_release, pfn)
    reuse = await swapfile.reuse_swap_page(cpu, pfn)
    await cpu.call(unlock_page, pfn)
    if reuse:
        await cpu.call(do_wp_page_reuse, task, addr)
        await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
        return 0
    # Ok, we need to copy. Oh, well..
    await cpu.call(page_cache_get, pfn)
    await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
    new = await page_alloc.alloc_page_vma(cpu)
    if not new:
        await cpu.call(page_cache_release, pfn)
        return VM_FAULT_OOM
    # cow_user_page() and __SetPageUptodate() touch only the new, private page.
    memcg = await memcontrol.__mem_cgroup_try_charge(cpu, cpu.memcg)
    if memcg < 0:  # oom_free_new, oom
        await cpu.call(page_cache_release, new)
        await cpu.call(page_cache_release, pfn)
        return VM_FAULT_OOM
    if memcg:
        await cpu.call(memcontrol.__mem_cgroup_commit_charge, new, memcg)
    # Re-check the pte - we dropped the lock
    await cpu.call(pte_offset_map_lock, task, addr, cpu.name)
    if await cpu.call(pte_same_wrprotect, task, addr, pfn):
        if await cpu.call(do_wp_page_map, task, addr, pfn, new, cpu.pvec):
            await page_remove_rmap_uncharge(cpu, pfn)
        free = pfn  # the old pte's reference
    else:
        await cpu.call(memcontrol.mem_cgroup_uncharge_page, new, False, False)
        free = new
    await cpu.call(page_cache_release, free)
    await cpu.call(page_cache_release, pfn)
    await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
    return 0


async def handle_mm_fault(cpu: Cpu, task: int, addr: int, write: bool = True) -> int:
    """A user access to ``addr``: a hit, or handle_pte_fault() to the right fault handler."""
    kind, val = await cpu.call(handle_pte_access, task, addr, write)
    if kind == PTE_PRESENT:
        return 0
    if kind == PTE_NONE:
        return await do_anonymous_page(cpu, task, addr)
    if kind == PTE_WRPROTECT:  # handle_pte_fault(): write_access && !pte_write(entry)
        await cpu.call(pte_offset_map_lock, task, addr, cpu.name)
        if not await cpu.call(pte_same_wrprotect, task, addr, val):
            await cpu.call(pte_unmap_unlock, task, addr, cpu.name)
            return 0
        return await do_wp_page(cpu, task, addr, val)
    return await do_swap_page(cpu, task, addr, val, write)


async def do_page_fault(cpu: Cpu, task: int, addr: int, write: bool = True) -> int:
    """Models do_page_fault() for an address of the anon VMA: handle_mm_fault() under
    mmap_sem held for read (other threads of the mm fault and madvise beside it)."""
    await cpu.call(down_read, task, cpu.name)
    ret = await handle_mm_fault(cpu, task, addr, write)
    await cpu.call(up_read, task, cpu.name)
    return ret


async def zap_page_range(cpu: Cpu, task: int, addrs: list[int]) -> None:
    """Models unmap_vmas() -> zap_pte_range() over ``addrs`` with an mmu_gather (munmap,
    MADV_DONTNEED, exit).

    zap_pte_range() holds the pte lock over the ptes of one pte page, until
    ZAP_BLOCK_SIZE is used up (a pte costs PAGE_SIZE, a none pte 1); then
    unmap_vmas() finishes the gather (tlb_finish_mmu()) and starts another.
    """
    addrs = sorted(addrs)
    tlb: list[int] = []
    i, zap_work = 0, ZAP_BLOCK_SIZE
    while i < len(addrs):
        first = addrs[i]
        await cpu.call(pte_offset_map_lock, task, first, cpu.name)
        while i < len(addrs) and addrs[i] // PTRS_PER_PTE == first // PTRS_PER_PTE:
            kind, val, unmapped = await cpu.call(zap_pte, task, addrs[i])
            i += 1
            zap_work -= 1 if kind == PTE_NONE else PAGE_SIZE
            if kind == PTE_PRESENT:
                if unmapped:
                    await page_remove_rmap_uncharge(cpu, val)
                tlb.append(val)  # tlb_remove_page(): the pte's reference moves to the gather
                if len(tlb) >= FREE_PTE_NR:
                    await swap_state.free_pages_and_swap_cache(cpu, tlb)
                    tlb = []
            elif kind == PTE_SWAP:
                await swapfile.free_swap_and_cache(cpu, val)
            if zap_work <= 0:
                break
        await cpu.call(pte_unmap_unlock, task, first, cpu.name)
        if zap_work <= 0:
            if tlb:  # tlb_finish_mmu(), then tlb_gather_mmu() for the next block
                await swap_state.free_pages_and_swap_cache(cpu, tlb)
                tlb = []
            zap_work = ZAP_BLOCK_SIZE
    if tlb:  # tlb_finish_mmu()
        await swap_state.free_pages_and_swap_cache(cpu, tlb)
