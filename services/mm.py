"""The ``mm`` service: the machine's memory (struct page, page tables, swap, swap cache, LRU).

Serves every primitive registered with owner ``mm``; see owner.OwnerService
for how they run one at a time and how a sleeping lock_page is parked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from kernsim.services.owner import OwnerService
from kernsim.services.runtime.config import ServiceConfig
from kernsim.services.runtime.metrics import gauge
from kernsim.services.service import main
from kernsim.services.snapshot import mm_snapshot
from prometheus_client.core import Metric

from kernsim.check.invariants import is_cache_only
from kernsim.check.spec import mm_config
from kernsim.model.mm import MmState


class MmService(OwnerService):
    name = "mm"

    def __init__(self, config: ServiceConfig) -> None:
        super().__init__(
            config, MmState(mm_config(config.scenario, config.variant, config.page_cluster))
        )
        self.metrics.add(self._families)

    def snapshot(self) -> dict[str, Any]:
        return mm_snapshot(self.state)

    def stale_swapcache_pages(self) -> int:
        """Cache-only swap-cache pages that nobody maps, locks or writes back.

        The checker's definition also asks memcg that the page is uncharged;
        mm alone cannot, so this live gauge counts idle cache-only pages.
        """
        mm: MmState = self.state
        n = 0
        for entry, pfn in mm.swapper_space.items():
            page = mm.pages.get(pfn)
            if page is None or page.mapcount or page.locked or page.writeback:
                continue
            n += is_cache_only(mm, entry)
        return n

    def _families(self) -> Iterable[Metric]:
        sw = self.state.swap
        yield gauge(
            "kernsim_swap_slots_used", "Swap slots in use.", sw.total_swap_pages - sw.nr_swap_pages
        )
        yield gauge("kernsim_swap_slots_total", "Usable swap slots.", sw.total_swap_pages)
        yield gauge(
            "kernsim_swapcache_pages", "Pages in the swap cache.", len(self.state.swapper_space)
        )
        yield gauge(
            "kernsim_stale_swapcache_pages",
            "Cache-only swap-cache pages nobody maps, locks or writes back.",
            self.stale_swapcache_pages(),
        )

    def statistics(self) -> dict[str, Any]:
        return {
            **super().statistics(),
            "mm": self.state.statistics(),
            "stale_swapcache_pages": self.stale_swapcache_pages(),
        }


if __name__ == "__main__":
    main(MmService, sys.argv[1:])
