"""fix stale swap cache account leak in memcg v7 (KAMEZAWA Hiroyuki and Daisuke Nishimura,
linux-mm, 12 May 2009), as the compiler builds it with CONFIG_CGROUP_MEM_RES_CTLR=y,
CONFIG_CGROUP_MEM_RES_CTLR_SWAP=y and CONFIG_SWAP=y.

Messages (full text read for each):
- [PATCH 0/3] <20090512104401.28edc0a8.kamezawa.hiroyu@jp.fujitsu.com>
  (lkml.org/lkml/2009/5/11/688);
- [PATCH 1/3] "add check for mem cgroup is activated"
  <20090512104504.4e722ccc.kamezawa.hiroyu@jp.fujitsu.com>: mem_cgroup_activated();
- [PATCH 2/3] "fix swap cache account leak at swapin-readahead"
  <20090512104603.ac4ca1f4.kamezawa.hiroyu@jp.fujitsu.com>, read in the whole-patch
  quote of Kamezawa's reply <20090513085816.13dc7709.kamezawa.hiroyu@jp.fujitsu.com>:
  the same swap_state.c hunk as v6 2/2 (v6.AvoidReadahead, slot 0 included);
- [PATCH 3/3] "fix stale swap cache at writeback." = Nishimura's "memcg: free unused
  swapcache on swapout path" <20090512104730.78bf5ab0.kamezawa.hiroyu@jp.fujitsu.com>
  (lkml.org/lkml/2009/5/11/691).

3/3, mm/vmscan.c, under ``#if defined(CONFIG_CGROUP_MEM_RES_CTLR) && defined(CONFIG_SWAP)``
(both spelled right, so it builds): in shrink_page_list(), right after a successful
add_to_swap(), ``if (memcg_free_unused_swapcache(page)) goto keep_locked;`` where
memcg_free_unused_swapcache() returns 0 when memcg is disabled at boot (kernsim never
disables it), 0 for a page that is not PageAnon or still mapped, else
try_to_free_swap(page) (which checks page_swapcount()).  It catches Type-2: the owner
exited, uncharging the page, between page_referenced() and add_to_swap().

v7 has no I/O-completion check and no __remove_mapping() hook: "races in writeback is
handled in the next patch" (2/3's changelog) means 3/3.
"""

from __future__ import annotations

from kernsim.model import swapfile
from kernsim.model.filemap import page_flags
from kernsim.model.port import Cpu
from kernsim.variants.base import Variant
from kernsim.variants.v6 import AvoidReadahead


async def memcg_free_unused_swapcache(cpu: Cpu, pfn: int) -> bool:
    """v7 3/3 memcg_free_unused_swapcache(): the page is locked and in the swap cache."""
    # mem_cgroup_disabled() is false: kernsim boots with the memory controller on.
    flags = await cpu.call(page_flags, pfn)
    if not flags.anon or flags.mapped:
        return False
    return await swapfile.try_to_free_swap(cpu, pfn)  # checks page_swapcount


class FreeUnusedSwapcache(Variant):
    """Only the vmscan.c hook: Nishimura's "memcg: free unused swapcache on swapout path"
    as first posted (1 May 2009, in <20090501133317.9c372d38.d-nishimura@mtf.biglobe.ne.jp>,
    the function in memcontrol.c under CONFIG_SWAP, declared under
    CONFIG_CGROUP_MEM_RES_CTLR: it builds), which he tested with page-cluster 0
    (<20090508230107.8dd680b3.d-nishimura@mtf.biglobe.ne.jp>)."""

    name = "type2-fix"

    async def after_add_to_swap(self, cpu: Cpu, pfn: int) -> bool:
        return await memcg_free_unused_swapcache(cpu, pfn)


class V7(AvoidReadahead, FreeUnusedSwapcache):
    """1/3 + 2/3 (AvoidReadahead) + 3/3 (FreeUnusedSwapcache's hook)."""

    name = "v7"
