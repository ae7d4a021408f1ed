"""Locks held across several primitives (kernsim.model.locks): swap_lock, the pte lock,
mmap_sem; the whole-section rule; and the atomicity table that audits every primitive."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kernsim.variants  # noqa: F401  (the variants' primitives are audited too)
from kernsim.model.fork import mm_init
from kernsim.model.locks import (
    MMAP_SEM,
    PTL,
    SWAP_LOCK,
    TAKES,
    down_read,
    down_write,
    pte_offset_map_lock,
    pte_unmap_unlock,
    ptl_id,
    spin_lock_swap_lock,
    spin_unlock_swap_lock,
    up_read,
    up_write,
)
from kernsim.model.memory import pte_same, zap_pte
from kernsim.model.mm import KernelBug, MmState
from kernsim.model.mm_types import Pte
from kernsim.model.port import PRIMITIVES, WouldBlock
from kernsim.model.rmap import page_referenced, try_to_unmap
from kernsim.model.swapfile import swap_duplicate, swap_free
from kernsim.sim.cpu import SimCpu
from kernsim.sim.scripted import Run, Scripted, call
from tests.support.unitkit import make_machine, swapcache_page

MODEL_MD = Path(__file__).resolve().parents[2] / "docs" / "MODEL.md"
TASK = 7


def test_spinlock_excludes_a_second_cpu_and_release_wakes_it(mm30: MmState) -> None:
    assert spin_lock_swap_lock(mm30, "cpu0") is True
    assert spin_lock_swap_lock(mm30, "cpu1") == WouldBlock((SWAP_LOCK, 0))
    spin_unlock_swap_lock(mm30, "cpu0")
    assert mm30.woken == [(SWAP_LOCK, 0)] and not mm30.locks
    assert spin_lock_swap_lock(mm30, "cpu1") is True


def test_spinlock_misuse_is_a_kernel_bug(mm30: MmState) -> None:
    assert spin_lock_swap_lock(mm30, "cpu0") is True
    with pytest.raises(KernelBug, match="twice"):
        spin_lock_swap_lock(mm30, "cpu0")
    with pytest.raises(KernelBug, match="does not hold"):
        spin_unlock_swap_lock(mm30, "cpu1")


def test_mmap_sem_is_shared_by_readers_and_exclusive_for_a_writer(mm30: MmState) -> None:
    mm_init(mm30, TASK, 2)
    assert down_read(mm30, TASK, "t1") is True
    assert down_read(mm30, TASK, "t2") is True  # a fault beside a MADV_DONTNEED
    assert down_write(mm30, TASK, "t3") == WouldBlock((MMAP_SEM, TASK))  # munmap waits
    up_read(mm30, TASK, "t1")
    assert not mm30.woken  # a reader is left
    up_read(mm30, TASK, "t2")
    assert mm30.woken == [(MMAP_SEM, TASK)]
    assert down_write(mm30, TASK, "t3") is True
    assert down_read(mm30, TASK, "t1") == WouldBlock((MMAP_SEM, TASK))
    up_write(mm30, TASK, "t3")
    assert down_read(mm30, TASK, "t1") is True


def test_each_pte_page_has_its_own_lock(mm30: MmState) -> None:
    mm_init(mm30, TASK, 2)
    assert pte_offset_map_lock(mm30, TASK, 0, "t1") is True
    assert pte_offset_map_lock(mm30, TASK, 511, "t2") == WouldBlock(ptl_id(TASK, 0))
    assert pte_offset_map_lock(mm30, TASK, 512, "t2") is True  # the next pte page
    assert ptl_id(TASK, 0)[0] == PTL
    pte_unmap_unlock(mm30, TASK, 0, "t1")
    assert mm30.woken == [ptl_id(TASK, 0)]


def test_a_whole_section_primitive_waits_while_another_cpu_holds_its_lock(
    mm30: MmState,
) -> None:
    """swap_free() takes swap_lock itself: while free_swap_and_cache() of another CPU is
    between its steps it answers WouldBlock and changes nothing."""
    _, entry = swapcache_page(mm30)
    assert swap_duplicate(mm30, entry) == 1
    assert spin_lock_swap_lock(mm30, "zap") is True
    assert swap_free(mm30, entry) == WouldBlock((SWAP_LOCK, 0))
    assert swap_duplicate(mm30, entry) == WouldBlock((SWAP_LOCK, 0))
    assert mm30.swap.swap_map[entry] == 2
    spin_unlock_swap_lock(mm30, "zap")
    assert swap_free(mm30, entry) == (1, 0)


def test_rmap_walk_waits_for_the_pte_lock_of_the_page(mm30: MmState) -> None:
    """page_check_address() takes the pte lock: try_to_unmap() and page_referenced() wait
    while a zap batch or do_swap_page() holds it, and change nothing."""
    mm_init(mm30, TASK, 2)
    pfn, entry = swapcache_page(mm30)
    page = mm30.pages[pfn]
    page.mapcount, page.anon_vma, page.index = 1, TASK, 0
    mm30.mms[TASK].ptes[0] = Pte(True, pfn, young=True, dirty=True)
    assert pte_offset_map_lock(mm30, TASK, 0, "zap") is True
    assert page_referenced(mm30, pfn) == WouldBlock(ptl_id(TASK, 0))
    assert try_to_unmap(mm30, pfn) == WouldBlock(ptl_id(TASK, 0))
    assert mm30.mms[TASK].ptes[0].young and mm30.swap.swap_map[entry] == 1
    pte_unmap_unlock(mm30, TASK, 0, "zap")
    assert page_referenced(mm30, pfn) == 1


def test_a_step_inside_a_section_needs_its_lock(mm30: MmState) -> None:
    mm_init(mm30, TASK, 2)
    with pytest.raises(KernelBug, match="without holding ptl"):
        pte_same(mm30, TASK, 0, 1)
    with pytest.raises(KernelBug, match="without holding ptl"):
        zap_pte(mm30, TASK, 0)


def test_the_engine_parks_a_waiter_and_runs_it_after_the_release() -> None:
    """In the simulation a CPU whose swap_duplicate() met another CPU's swap_lock sleeps
    on the lock and finishes once spin_unlock_swap_lock() ran."""
    m = make_machine("none")
    engine = m.world.engine
    _, entry = swapcache_page(m.mm)
    holder = SimCpu(engine, "holder", "vmscan", "holder")
    waiter = SimCpu(engine, "waiter", "vmscan", "waiter")
    got: list[int] = []

    async def hold() -> None:
        await holder.call(spin_lock_swap_lock, "holder")
        await holder.call(spin_unlock_swap_lock, "holder")

    async def dup() -> None:
        got.append(await waiter.call(swap_duplicate, entry))

    engine.strategy = Scripted(
        engine.rng,
        [Run("holder", through=call("spin_lock_swap_lock")), Run("waiter"), Run("holder")],
    )
    engine.start(holder, hold())
    engine.start(waiter, dup())
    engine.run()
    steps = [(e.cpu, e.prim, e.result) for e in engine.trace]
    assert steps == [
        ("holder", "spin_lock_swap_lock", True),
        ("waiter", "swap_duplicate", WouldBlock((SWAP_LOCK, 0))),
        ("holder", "spin_unlock_swap_lock", None),
        ("waiter", "swap_duplicate", 1),
    ]
    assert got == [1] and m.mm.swap.swap_map[entry] == 2


def _atomicity_table() -> dict[str, str]:
    text = MODEL_MD.read_text(encoding="utf-8")
    section = text.split("## Atomicity", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            for name in re.findall(r"`([a-z_0-9]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


def test_the_atomicity_table_audits_every_primitive() -> None:
    """docs/MODEL.md lists every primitive of the model with the lock it models."""
    missing = sorted(set(PRIMITIVES) - set(_atomicity_table()))
    assert not missing, f"primitives missing from docs/MODEL.md's atomicity table: {missing}"


def test_the_table_names_the_lock_of_every_whole_section_primitive() -> None:
    table = _atomicity_table()
    for name, locks in TAKES.items():
        for lock in locks:
            word = "pte lock" if "ptl" in lock else lock
            assert word in table[name], f"{name}: the table does not say it takes {word}"
