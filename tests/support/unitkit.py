"""Helpers for the model's unit tests (imported by the tests; fixtures are in conftest).

Primitives are tested by calling them directly on a fresh MmState / MemcgState.
Short code paths run on :class:`Machine`: a World with the ``none`` fault
profile, where each coroutine runs to completion (with whatever bio
completions and work items it posts) before the next one starts.
"""

from __future__ import annotations

from typing import Any

from kernsim.model.filemap import unlock_page
from kernsim.model.mm import MmConfig, MmState
from kernsim.model.mm_types import SWAP_CLUSTER_MAX
from kernsim.model.page_alloc import alloc_page
from kernsim.model.swap import lru_add_drain_all
from kernsim.model.swap_state import add_to_swap_cache
from kernsim.model.swapfile import get_swap_page
from kernsim.model.vmscan import ScanControl, shrink_batch
from kernsim.sim.cpu import SimCpu
from kernsim.sim.scripting import Script

#: A small machine: enough RAM that no watermark is near, 16 swap slots.
SMALL = {"total_pages": 1024, "swap_pages": 16}


def small_mm(swap_has_cache: bool = False, **overrides: int) -> MmState:
    """A fresh MmState on a small machine (2.6.30 swap_map unless ``swap_has_cache``)."""
    cfg: dict[str, Any] = {**SMALL, "swap_has_cache": swap_has_cache, **overrides}
    return MmState(MmConfig(**cfg))


def new_page(mm: MmState) -> int:
    """alloc_page(): a fresh page holding one reference."""
    pfn, _ = alloc_page(mm, False)
    assert pfn, "allocation failed"
    return pfn


def swapcache_page(mm: MmState, entry: int | None = None, locked: bool = False) -> tuple[int, int]:
    """A page in the swap cache of ``entry`` (a new slot by default), unlocked unless asked.

    Returns (pfn, entry).  The page holds its allocation reference and the cache's.
    """
    if entry is None:
        entry = get_swap_page(mm)
    pfn = new_page(mm)
    assert add_to_swap_cache(mm, pfn, entry, True) == 0
    if not locked:
        unlock_page(mm, pfn)
        mm.woken.clear()
    return pfn, entry


#: The machine code paths run on: the public scripting API (one code path at a time).
Machine = Script


async def drain_all(cpu: SimCpu) -> None:
    """lru_add_drain_all(): every CPU's lru_add and lru_rotate pagevecs."""
    await cpu.call(lru_add_drain_all)


async def _memcg_reclaim(cpu: SimCpu, memcg_id: int) -> None:
    await cpu.call(lru_add_drain_all)
    await shrink_batch(cpu, ScanControl(memcg=memcg_id), SWAP_CLUSTER_MAX)


def swap_out(m: Machine, pfn: int) -> None:
    """memcg reclaim of /A, one batch at a time, until ``pfn`` is freed.

    Each batch starts with lru_add_drain_all() (the rotate pagevec's reference would
    otherwise keep __remove_mapping() failing); the write completes between batches.
    """
    k = m.kthread()
    for _ in range(4):
        if pfn not in m.mm.pages:
            return
        m.run(k, _memcg_reclaim(k, m.memcg_id))
    raise AssertionError(f"page {pfn} was not reclaimed: {m.mm.pages.get(pfn)}")


def make_machine(variant: str = "none", **mm_overrides: int) -> Machine:
    """A fresh Machine running ``variant``; the swap_map encoding follows the variant
    (2.6.31's for ``upstream``)."""
    return Script.create(variant, seed=0, **{**SMALL, **mm_overrides})


def break_unlock_page(monkeypatch: Any) -> None:
    """Make every unlock_page() a BUG_ON (KernelBug), for the tests of a crashing run."""
    from kernsim.model import filemap
    from kernsim.model.mm import KernelBug
    from kernsim.model.port import PRIMITIVE_BY_FN, PrimitiveInfo

    def broken_unlock_page(mm: MmState, pfn: int) -> None:
        raise KernelBug(f"unlock_page({pfn}): injected")

    monkeypatch.setitem(
        PRIMITIVE_BY_FN,
        filemap.unlock_page,
        PrimitiveInfo("unlock_page", "mm", "page", broken_unlock_page),
    )
