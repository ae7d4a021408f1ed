"""Models include/linux/mm_types.h and friends (2.6.30): struct page, ptes, swap entries.

Plain data, no behaviour: the primitives that change these objects live in the
modules named after the kernel files that change them.

Simplifications on purpose (listed in docs/MODEL.md):
- one swap device (type 0), so a swp_entry_t is just its offset;
- anon pages only, one anon VMA per mm: a page's reverse map is its anon_vma
  (the list of the mms that fork shares it with) and its address (page->index);
- one zone, one node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE_SIZE = 4096
SWAP_CLUSTER_MAX = 32
PAGEVEC_SIZE = 14
#: include/linux/swap.h (2.6.30): swap_map[] is unsigned short.
SWAP_MAP_MAX = 0x7FFF
SWAP_MAP_BAD = 0x8000
#: 2.6.31 encoding (mm: modify swap_map and add SWAP_HAS_CACHE flag).
SWAP_HAS_CACHE = 0x8000
SWAP_COUNT_MASK = 0x7FFF
SWAP_MAP_MAX_31 = 0x7FFE

#: mm/swapfile.c SWAP_MAP / SWAP_CACHE arguments of the 2.6.31 swap_entry_free().
SWAP_MAP = 1
SWAP_CACHE = 2


#: Return values of try_to_unmap() (include/linux/rmap.h).
SWAP_SUCCESS = 0
SWAP_AGAIN = 1
SWAP_FAIL = 2


@dataclass(slots=True)
class Page:
    """struct page, the fields the leak depends on.

    ``count`` is page_count(): one reference per present pte, one for the swap
    cache, one while isolated from the LRU, one per find_get_page() caller, one
    per pagevec slot, one per mmu_gather slot.  ``mapcount`` is page_mapcount()
    (the kernel stores it minus one in _mapcount).
    """

    pfn: int
    count: int = 1
    mapcount: int = 0
    # Page flags (PG_*), one attribute each so that a trace reads like the source.
    locked: bool = False
    writeback: bool = False
    swapcache: bool = False
    uptodate: bool = False
    dirty: bool = False
    referenced: bool = False
    reclaim: bool = False
    lru: bool = False
    active: bool = False
    swapbacked: bool = False
    anon: bool = False
    #: page_private(): the swp_entry_t while PG_swapcache is set.
    private: int = 0
    #: page->mapping of an anon page: its anon_vma (0: never mapped), set by the first
    #: page_add_anon_rmap() and, as in the kernel, left set when the last pte goes.
    anon_vma: int = 0
    #: page->index: the address every mm of the anon_vma maps it at (fork keeps it).
    index: int = 0


@dataclass(slots=True)
class Pte:
    """A page table entry: present (pfn) or swap (entry); pte_none is no Pte at all.

    ``write`` is pte_write(): fork write-protects a present anon pte in both mms
    (copy-on-write), and a write to it faults into do_wp_page().
    """

    present: bool
    val: int  # pfn when present, swp_entry_t when not
    young: bool = False
    dirty: bool = False
    write: bool = True


@dataclass(slots=True)
class MmStruct:
    """struct mm_struct of one process: its page tables (address -> pte).

    ``task`` is the pid of the task that created it (exec or fork), which names
    the mm everywhere in the model; threads (CLONE_VM) share it.  ``users`` are
    the tasks using it (mm_users): the last one to exit tears it down.
    ``anon_vma`` names the anon_vma its one anon VMA is linked into: its own
    at exec, its parent's after fork (dup_mmap()'s anon_vma_link()).
    """

    task: int
    memcg: int
    ptes: dict[int, Pte] = field(default_factory=dict)
    users: list[int] = field(default_factory=list)
    anon_vma: int = 0

    def rss(self) -> int:
        return sum(1 for p in self.ptes.values() if p.present)
