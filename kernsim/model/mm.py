"""The state the ``mm`` service owns: memory, page tables, swap, the swap cache, the LRU.

Everything here is plain data.  The primitives that change it live in the
modules named after the kernel files that change it (swapfile, swap_state,
filemap, swap, rmap, memory, page_alloc), registered with owner ``"mm"``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from kernsim.model.mm_types import MmStruct, Page


@dataclass(frozen=True, slots=True)
class MmConfig:
    """The machine.  Defaults: 64 MiB of RAM, 16 MiB of swap, page_cluster 3.

    - ``total_pages``: RAM in pages (global reclaim starts below the watermarks).
    - ``swap_pages``: usable swap slots (slot 0, the swap header, comes on top).
    - ``page_cluster``: /proc/sys/vm/page-cluster; readahead reads 1 << page_cluster
      slots, 0 disables it.
    - ``swap_has_cache``: 2.6.31 swap_map encoding (count | SWAP_HAS_CACHE)
      instead of 2.6.30's (references + 1 for the swap cache).
    - watermarks in pages: kswapd wakes below ``pages_low`` free pages and
      reclaims up to ``pages_high``; allocation fails below ``pages_min``.
    """

    total_pages: int = 16384
    swap_pages: int = 4096
    page_cluster: int = 3
    swap_has_cache: bool = False
    pages_min: int = 128
    pages_low: int = 160
    pages_high: int = 192

    def __post_init__(self) -> None:
        if self.total_pages <= self.pages_high:
            raise ValueError("total_pages must exceed pages_high")
        if self.swap_pages < 1:
            raise ValueError("swap_pages must be at least 1")
        if not 0 <= self.page_cluster <= 8:
            raise ValueError("page_cluster must be between 0 and 8")
        if not 0 <= self.pages_min <= self.pages_low <= self.pages_high:
            raise ValueError("watermarks must satisfy min <= low <= high")


@dataclass(slots=True)
class SwapInfo:
    """struct swap_info_struct of the one swap device, plus its swap_cgroup array.

    swap_cgroup lives here, beside swap_map, because the kernel calls
    mem_cgroup_uncharge_swap() -> swap_cgroup_record(ent, 0) inside
    swap_entry_free() under swap_lock: keeping the record with the map keeps that
    one critical section.  The memsw counter it points at stays on memcg.
    """

    swap_map: list[int]
    swap_cgroup: list[int]
    nr_swap_pages: int
    total_swap_pages: int
    cluster_next: int = 1
    inuse_pages: int = 0


@dataclass(slots=True)
class MmState:
    config: MmConfig
    pages: dict[int, Page] = field(default_factory=dict)
    next_pfn: int = 1
    nr_free_pages: int = 0
    mms: dict[int, MmStruct] = field(default_factory=dict)
    #: struct anon_vma's list of VMAs, as the mms they belong to, by anon_vma id, in
    #: list order (anon_vma_link() adds a fork child at the tail).
    anon_vmas: dict[int, list[int]] = field(default_factory=dict)
    swap: SwapInfo = field(init=False)
    #: swapper_space's radix tree: swp_entry_t -> pfn.
    swapper_space: dict[int, int] = field(default_factory=dict)
    #: The zone's anon LRU lists; the first key is the tail (next to reclaim).
    lru_inactive: OrderedDict[int, None] = field(default_factory=OrderedDict)
    lru_active: OrderedDict[int, None] = field(default_factory=OrderedDict)
    #: Per-CPU lru_add_pvecs (pfn, active) and lru_rotate_pvecs, by CPU name.
    lru_add_pvecs: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)
    lru_rotate_pvecs: dict[str, list[int]] = field(default_factory=dict)
    kswapd_running: bool = False
    #: Wait-queue keys woken by the last primitive; the Cpu layer drains this.
    woken: list[tuple[str, int]] = field(default_factory=list)
    #: Locks held across several primitives (swap_lock, pte locks, mmap_sem), by
    #: lock id; kernsim.model.locks owns them.  A free lock has no entry.
    locks: dict[tuple[str, int], Any] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    #: State that a variant's patch adds (e.g. v5's stale_swap_check list).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.config.swap_pages + 1  # slot 0 is the swap header
        self.swap = SwapInfo(
            swap_map=[0] * n,
            swap_cgroup=[0] * n,
            nr_swap_pages=self.config.swap_pages,
            total_swap_pages=self.config.swap_pages,
        )
        self.nr_free_pages = self.config.total_pages

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    def page(self, pfn: int) -> Page:
        try:
            return self.pages[pfn]
        except KeyError:
            raise KernelBug(f"pfn {pfn} is not an allocated page") from None

    def mm_struct(self, task: int) -> MmStruct:
        """The mm_struct of ``task`` (the pid that exec'd it)."""
        try:
            return self.mms[task]
        except KeyError:
            raise KernelBug(f"task {task} has no mm") from None

    def statistics(self) -> dict[str, Any]:
        sw = self.swap
        return {
            "pages_allocated": len(self.pages),
            "nr_free_pages": self.nr_free_pages,
            "swap_slots_total": sw.total_swap_pages,
            "swap_slots_used": sw.total_swap_pages - sw.nr_swap_pages,
            "swapcache_pages": len(self.swapper_space),
            "lru_inactive": len(self.lru_inactive),
            "lru_active": len(self.lru_active),
            "tasks": len(self.mms),
            **self.stats,
        }


class KernelBug(AssertionError):
    """A BUG_ON()/VM_BUG_ON() of the kernel fired in the model: the model's state broke."""
