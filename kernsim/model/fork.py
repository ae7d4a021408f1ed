"""Models kernel/fork.c's copy_mm() -> dup_mm() -> dup_mmap() for the one anon VMA, and the
page-table copy it runs, mm/memory.c's copy_page_range() -> copy_pte_range() ->
copy_one_pte() (kept here, beside their one caller).

fork() gives the child a copy of the parent's ptes: a swap pte takes one more
reference on its slot (swap_duplicate()), a present anon page one more
reference and mapping (get_page(), page_dup_rmap()), and both ptes are
write-protected, so that the first write in either mm goes to do_wp_page()
(kernsim.model.memory): swap counts above one across mms, pages mapped by two
mms, reuse_swap_page()'s shared case.

Locks, as dup_mmap() takes them: the parent's mmap_sem for write (its faults,
MADV_DONTNEED and munmap wait), then the child's; anon_vma_link() puts the
child's VMA on the parent's anon_vma; copy_pte_range() holds the child's pte
lock, then the parent's (spin_lock_nested()), over one pte page; swap_lock is
taken inside them by swap_duplicate().  Reclaim takes none of the mmap_sems:
it meets fork at the pte locks.

Left out (docs/MODEL.md): copy_pte_range()'s break every 32 ptes when a
reschedule is due (a pte page is copied in one go), the swapoff mmlist and the
rss counters (nothing reads them), file, shared and hugetlb mappings.
"""

from __future__ import annotations

from kernsim.model import swapfile
from kernsim.model.locks import (
    PTRS_PER_PTE,
    SWAP_LOCK_ID,
    LockId,
    down_write,
    held,
    pte_offset_map_lock,
    pte_unmap_unlock,
    ptl_id,
    takes,
    up_write,
)
from kernsim.model.memory import PTE_NONE, PTE_PRESENT, PTE_SWAP, task_addresses
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import MmStruct, Pte
from kernsim.model.port import Cpu, primitive

# --- an mm's users: mm_init(), copy_mm() with CLONE_VM, mmput() ------------------


@primitive("mm", "task")
def mm_init(mm: MmState, task: int, memcg_id: int) -> None:
    """mm_alloc(): a new, empty address space for ``task``."""
    if task in mm.mms:
        raise KernelBug(f"task {task} already has an mm")
    # anon_vma_prepare() (done here at once rather than at the first fault): its own.
    mm.mms[task] = MmStruct(task, memcg_id, users=[task], anon_vma=task)
    mm.anon_vmas[task] = [task]


@primitive("mm", "task")
def mm_users_inc(mm: MmState, task: int, tid: int) -> None:
    """copy_mm() with CLONE_VM: atomic_inc(&mm->mm_users), the new thread ``tid`` shares
    mm ``task``."""
    users = mm.mm_struct(task).users
    if tid in users:
        raise KernelBug(f"task {tid} already uses mm {task}")
    users.append(tid)


@primitive("mm", "task")
def mm_users_dec_and_test(mm: MmState, task: int, tid: int) -> bool:
    """exit_mm() -> mmput(): atomic_dec_and_test(&mm->mm_users); True for the last user,
    who must exit_mmap()."""
    users = mm.mm_struct(task).users
    if tid not in users:
        raise KernelBug(f"task {tid} does not use mm {task}")
    users.remove(tid)
    return not users


@primitive("mm", "task")
def mmput(mm: MmState, task: int) -> None:
    """mmput() after exit_mmap(): every pte must be gone.  exit_mmap()'s free_pgtables()
    unlinks the VMA from its anon_vma (anon_vma_unlink()), freed with its last VMA."""
    gone = mm.mm_struct(task)
    if gone.ptes:
        raise KernelBug(f"mmput: task {task} still has ptes")
    del mm.mms[task]
    vmas = mm.anon_vmas[gone.anon_vma]
    vmas.remove(task)
    if not vmas:
        del mm.anon_vmas[gone.anon_vma]


@primitive("mm", "task")
def dup_mm(mm: MmState, task: int, parent: int) -> None:
    """dup_mm(): allocate_mm() and mm_init() for the child ``task``, a copy of mm
    ``parent`` with no ptes yet and its VMA's anon_vma the parent's (nobody else sees
    the new mm until dup_mmap() is done)."""
    if task in mm.mms:
        raise KernelBug(f"task {task} already has an mm")
    old = mm.mms[parent]
    mm.mms[task] = MmStruct(task, old.memcg, users=[task], anon_vma=old.anon_vma)


@primitive("mm", "task")
def anon_vma_link(mm: MmState, task: int) -> None:
    """anon_vma_link(): under anon_vma->lock, the child's VMA goes on its anon_vma's list,
    at the tail.  From now on the rmap walks of the parent's pages visit the child."""
    vmas = mm.anon_vmas[mm.mms[task].anon_vma]
    if task in vmas:
        raise KernelBug(f"anon_vma_link: mm {task} linked twice")
    vmas.append(task)


def _swap_lock(mm: MmState, dst: int, src: int, addr: int) -> LockId | None:
    """copy_one_pte()'s swap_duplicate() takes swap_lock, for a swap pte only."""
    pte = mm.mms[src].ptes.get(addr)
    return SWAP_LOCK_ID if pte is not None and not pte.present else None


@primitive("mm", "task")
@takes(_swap_lock)
def copy_one_pte(mm: MmState, dst: int, src: int, addr: int) -> tuple[int, int]:
    """Models copy_one_pte(), under both pte locks: returns (kind, pfn or swp_entry_t).

    A swap pte: swap_duplicate() and the same swap pte in the child.  A present anon
    pte (a COW mapping): ptep_set_wrprotect() in the parent, the child's copy
    write-protected and old (pte_mkold()), then get_page() and page_dup_rmap() (the
    page's charge is not touched: it stays with the memcg that charged it).
    """
    held(mm, ptl_id(dst, addr), "copy_pte_range")
    held(mm, ptl_id(src, addr), "copy_pte_range")
    pte = mm.mms[src].ptes.get(addr)
    if pte is None:
        return PTE_NONE, 0
    if not pte.present:
        swapfile._swap_duplicate(mm, pte.val)
        mm.mms[dst].ptes[addr] = Pte(False, pte.val)
        return PTE_SWAP, pte.val
    pte.write = False
    mm.mms[dst].ptes[addr] = Pte(True, pte.val, young=False, dirty=pte.dirty, write=False)
    page = mm.page(pte.val)
    page.count += 1
    page.mapcount += 1
    return PTE_PRESENT, pte.val


async def copy_page_range(cpu: Cpu, dst: int, src: int) -> None:
    """Models copy_page_range() for the anon VMA: copy_pte_range() for each pte page,
    the child's pte lock taken first, then the parent's."""
    addrs = await cpu.call(task_addresses, src)
    i = 0
    while i < len(addrs):
        first = addrs[i]
        await cpu.call(pte_offset_map_lock, dst, first, cpu.name)  # pte_alloc_map_lock()
        await cpu.call(pte_offset_map_lock, src, first, cpu.name)  # spin_lock_nested()
        while i < len(addrs) and addrs[i] // PTRS_PER_PTE == first // PTRS_PER_PTE:
            await cpu.call(copy_one_pte, dst, src, addrs[i])
            i += 1
        await cpu.call(pte_unmap_unlock, src, first, cpu.name)
        await cpu.call(pte_unmap_unlock, dst, first, cpu.name)


async def dup_mmap(cpu: Cpu, parent: int, child: int) -> None:
    """Models copy_mm() -> dup_mm() -> dup_mmap() of mm ``parent`` into a new mm for task
    ``child``, run by the forking task (``cpu``)."""
    await cpu.call(dup_mm, child, parent)
    await cpu.call(down_write, parent, cpu.name)
    await cpu.call(down_write, child, cpu.name)  # down_write_nested(): nobody waits on it
    await cpu.call(anon_vma_link, child)
    await copy_page_range(cpu, child, parent)
    await cpu.call(up_write, child, cpu.name)
    await cpu.call(up_write, parent, cpu.name)
