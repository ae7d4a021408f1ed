"""Kernel locks held across several primitives: swap_lock, the pte lock, mmap_sem.

Theory of operation
-------------------
A primitive is one critical section *as seen by the other holders of the same
lock*.  Most kernel locks are taken and dropped inside one primitive, so the
owner's one-primitive-at-a-time rule is all they need.  Three are held across
several primitives, with lock-free readers running in between:

- ``swap_lock`` (a spinlock): free_swap_and_cache() holds it over
  swap_entry_free(), find_get_page(), trylock_page() and, when the trylock
  fails, page_cache_release();
- the pte lock (``pte_offset_map_lock()``, one spinlock per pte page of an
  mm): do_swap_page() holds it from pte_same() to unlock_page(),
  do_anonymous_page() over its pte_none() test and set_pte_at(), and
  zap_pte_range() over a whole batch of ptes;
- ``mmap_sem`` (a reader/writer semaphore per mm): page faults and
  MADV_DONTNEED take it for read, munmap() for write.

The state is on the lock's owner (``MmState.locks``), keyed by the lock's id
``(name, number)``, which is also the wait-queue key.  An acquire primitive
answers :class:`WouldBlock` when the lock is not free for it, changing
nothing; the Cpu layer (the simulation's engine, the cluster's owner service)
parks the caller and runs the acquire again when the release primitive puts
the key on ``owner.woken``.  A primitive that in the kernel runs under the
lock *as one whole critical section* (swap_free() takes and drops swap_lock
itself) asks :func:`busy`: while another CPU holds the lock it answers
WouldBlock too.  A primitive that runs *inside* a multi-step section asks
:func:`held` and raises KernelBug when its caller does not hold the lock.
Lock-free readers (page_count(), page_mapped(), the PG_* tests, v5's
swap_map peek) check nothing: they run between the holder's steps whenever
the kernel lets them.

Spinning is modelled as sleeping on the key (a CPU that waits for a spinlock
in the kernel burns its time; here it waits without steps).  The rw
semaphore has no fairness: a reader is refused only while a writer holds it
(Linux 2.6.30's rwsem also queues readers behind a waiting writer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kernsim.model.mm import KernelBug, MmState
from kernsim.model.port import WouldBlock, primitive

F = TypeVar("F", bound=Callable[..., Any])

SWAP_LOCK = "swap_lock"
PTL = "ptl"
MMAP_SEM = "mmap_sem"
#: include/asm-x86/pgtable_64_types.h: ptes per pte page (each has its own pte lock).
PTRS_PER_PTE = 512
#: Pte pages an mm may have in the model (addresses below PTRS_PER_PTE * this).
PTE_PAGES_PER_MM = 1 << 16

LockId = tuple[str, int]
#: Which lock(s) a whole-section primitive needs, from its arguments (None: none needed;
#: a list: several of one kind, e.g. the pte locks of every pte mapping a page).
LockOf = Callable[..., "LockId | list[LockId] | None"]
#: Whole-section primitives by name, and the locks they take (docs/MODEL.md's table).
TAKES: dict[str, tuple[str, ...]] = {}


@dataclass(slots=True)
class LockState:
    """Who holds one lock: the CPU holding it exclusively, or the CPUs reading it."""

    owner: str = ""
    readers: list[str] = field(default_factory=list)


def ptl_id(task: int, addr: int) -> LockId:
    """The pte lock of the pte page mapping ``addr`` in mm ``task`` (split ptlocks)."""
    return PTL, task * PTE_PAGES_PER_MM + addr // PTRS_PER_PTE


def mmap_sem_id(task: int) -> LockId:
    return MMAP_SEM, task


SWAP_LOCK_ID: LockId = (SWAP_LOCK, 0)


def _state(mm: MmState, lock: LockId) -> LockState:
    st = mm.locks.get(lock)
    if st is None:
        st = mm.locks[lock] = LockState()
    return st


def busy(mm: MmState, lock: LockId) -> WouldBlock | None:
    """For a primitive that is one whole critical section under ``lock``: WouldBlock
    while some CPU holds it (that CPU is between the steps of its own section)."""
    st = mm.locks.get(lock)
    if st is not None and (st.owner or st.readers):
        return WouldBlock(lock)
    return None


def takes(*locks: LockId | LockOf) -> Callable[[F], F]:
    """Declare a primitive one whole critical section under ``locks`` (outermost first).

    Each lock is a fixed id or a function of the primitive's arguments that names
    it, or a list of them (None when this call needs no lock).  While another CPU holds one of them
    the primitive answers WouldBlock, changing nothing, and runs again when that
    lock is released.  Put it below ``@primitive`` so that the registered
    function is the checking one; the wrapped signature and annotations are kept.
    """

    def wrap(fn: F) -> F:
        TAKES[fn.__name__] = tuple(
            lock[0] if isinstance(lock, tuple) else lock.__name__.lstrip("_") for lock in locks
        )

        @functools.wraps(fn)
        def run(mm: MmState, *args: Any) -> Any:
            for lock in locks:
                lock_id = lock if isinstance(lock, tuple) else lock(mm, *args)
                if lock_id is None:
                    continue
                for one in lock_id if isinstance(lock_id, list) else (lock_id,):
                    if blocked := busy(mm, one):
                        return blocked
            return fn(mm, *args)

        return run  # type: ignore[return-value]

    return wrap


def held(mm: MmState, lock: LockId, what: str) -> None:
    """For a primitive inside a multi-step section: its caller must hold ``lock``."""
    st = mm.locks.get(lock)
    if st is None or not st.owner:
        raise KernelBug(f"{what}: called without holding {lock[0]} {lock[1]}")


def _acquire(mm: MmState, lock: LockId, cpu: str) -> bool | WouldBlock:
    st = _state(mm, lock)
    if st.owner == cpu or cpu in st.readers:
        raise KernelBug(f"{cpu} takes {lock[0]} {lock[1]} twice (self-deadlock)")
    if st.owner or st.readers:
        return WouldBlock(lock)
    st.owner = cpu
    return True


def _release(mm: MmState, lock: LockId, cpu: str) -> None:
    st = mm.locks.get(lock)
    if st is None or st.owner != cpu:
        raise KernelBug(f"{cpu} releases {lock[0]} {lock[1]} it does not hold")
    st.owner = ""
    del mm.locks[lock]
    mm.woken.append(lock)


# --- swap_lock ----------------------------------------------------------------


@primitive("mm")
def spin_lock_swap_lock(mm: MmState, cpu: str) -> bool | WouldBlock:
    """spin_lock(&swap_lock), as swap_info_get() takes it."""
    return _acquire(mm, SWAP_LOCK_ID, cpu)


@primitive("mm")
def spin_unlock_swap_lock(mm: MmState, cpu: str) -> None:
    """spin_unlock(&swap_lock)."""
    _release(mm, SWAP_LOCK_ID, cpu)


# --- the pte lock ---------------------------------------------------------------


@primitive("mm", "task")
def pte_offset_map_lock(mm: MmState, task: int, addr: int, cpu: str) -> bool | WouldBlock:
    """pte_offset_map_lock(): take the lock of the pte page mapping ``addr``."""
    if task not in mm.mms:
        raise KernelBug(f"pte_offset_map_lock: task {task} has no mm")
    return _acquire(mm, ptl_id(task, addr), cpu)


@primitive("mm", "task")
def pte_unmap_unlock(mm: MmState, task: int, addr: int, cpu: str) -> None:
    """pte_unmap_unlock(): drop the lock of the pte page mapping ``addr``."""
    _release(mm, ptl_id(task, addr), cpu)


# --- mmap_sem -------------------------------------------------------------------


@primitive("mm", "task")
def down_read(mm: MmState, task: int, cpu: str) -> bool | WouldBlock:
    """down_read(&mm->mmap_sem): shared with other readers, not with a writer."""
    st = _state(mm, mmap_sem_id(task))
    if st.owner == cpu or cpu in st.readers:
        raise KernelBug(f"{cpu} takes mmap_sem {task} twice")
    if st.owner:
        return WouldBlock(mmap_sem_id(task))
    st.readers.append(cpu)
    return True


@primitive("mm", "task")
def up_read(mm: MmState, task: int, cpu: str) -> None:
    """up_read(&mm->mmap_sem): the last reader out wakes a waiting writer."""
    lock = mmap_sem_id(task)
    st = mm.locks.get(lock)
    if st is None or cpu not in st.readers:
        raise KernelBug(f"{cpu} up_read()s mmap_sem {task} it does not hold")
    st.readers.remove(cpu)
    if not st.readers:
        del mm.locks[lock]
        mm.woken.append(lock)


@primitive("mm", "task")
def down_write(mm: MmState, task: int, cpu: str) -> bool | WouldBlock:
    """down_write(&mm->mmap_sem): alone, no reader and no other writer."""
    return _acquire(mm, mmap_sem_id(task), cpu)


@primitive("mm", "task")
def up_write(mm: MmState, task: int, cpu: str) -> None:
    """up_write(&mm->mmap_sem): wake the readers and writers waiting."""
    _release(mm, mmap_sem_id(task), cpu)
