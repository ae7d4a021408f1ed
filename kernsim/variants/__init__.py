"""Variants ("patches"): each a small set of hooks over vanilla 2.6.30.

- ``none``: vanilla 2.6.30.
- ``v5``: "memcg: fix stale swap cache leak v5" as posted (LKML, 30 Apr 2009),
  as the compiler builds it: its lockless check and its page reference bug
  included, its vmscan.c hook compiled out by a misspelt ``#ifdef``.
- ``v5-as-intended``: v5 with that hook built, for comparison.
- ``v4``: the version of 27 Apr 2009 (a buffer of entries whose trylock failed,
  swept by a delayed work; "congestion" above 256 of them).
- ``v6``, ``v7``: the versions of 8 and 12 May 2009 as the compiler builds them (no
  readahead once memcg is mounted; v6: a check after swap writeback; v7: a hook right
  after add_to_swap()); ``type2-fix``: v7's hook alone, Nishimura's patch of 1 May.
  Each module cites its messages (docs/HISTORY.md has the whole thread).
- ``upstream``: what went into 2.6.31 (SWAP_HAS_CACHE, swapcache_prepare /
  swapcache_free, memsw uncharged when the count reaches 0, the DROP uncharge
  type, scan_swap_map() reusing cache-only slots when vm_swap_full()).

The page_cluster knob (0 disables swap-in readahead) is machine configuration,
not a variant: ``kernsim sim --page-cluster 0``.
"""

from __future__ import annotations

from kernsim.variants.base import Variant
from kernsim.variants.none import Vanilla
from kernsim.variants.upstream import Upstream
from kernsim.variants.v4 import V4
from kernsim.variants.v5 import V5, V5AsIntended
from kernsim.variants.v6 import V6
from kernsim.variants.v7 import V7, FreeUnusedSwapcache

VARIANTS: dict[str, type[Variant]] = {
    "none": Vanilla,
    "v4": V4,
    "v5": V5,
    "v5-as-intended": V5AsIntended,
    "v6": V6,
    "v7": V7,
    "type2-fix": FreeUnusedSwapcache,
    "upstream": Upstream,
}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; ValueError naming the known ones otherwise."""
    try:
        return VARIANTS[name]()
    except KeyError:
        known = ", ".join(sorted(VARIANTS))
        raise ValueError(f"unknown variant {name!r} (known: {known})") from None


__all__ = ["VARIANTS", "Variant", "get_variant"]
