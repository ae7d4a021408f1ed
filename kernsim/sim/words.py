"""Kernel events in a kernel reader's words: page flags by their PG_ names, what
free_swap_and_cache() saw, no ``= None`` for procedures and no Python reprs."""

from __future__ import annotations

from typing import Any

#: PageFlags fields (kernsim.model.filemap) in order, and how each reads when set.
PAGE_FLAG_FIELDS = ("swapcache", "writeback", "mapped", "dirty", "locked", "uptodate", "anon",
                    "refcount", "private")  # fmt: skip
PG_NAMES = {
    "locked": "PG_locked",
    "writeback": "PG_writeback",
    "swapcache": "PG_swapcache",
    "dirty": "PG_dirty",
    "uptodate": "PG_uptodate",
}


def page_flags(r: Any) -> str:
    """``PG_locked|PG_swapcache, mapped, count 2`` for a page_flags() result."""
    f = dict(zip(PAGE_FLAG_FIELDS, tuple(r), strict=False))
    names = [pg for key, pg in PG_NAMES.items() if f.get(key)]
    out = "|".join(names) or "no flags"
    if f.get("mapped"):
        out += ", mapped"
    if "refcount" in f:
        out += f", count {f['refcount']}"
    return out


def swap_entry_freed(r: Any) -> str:
    """free_swap_and_cache()'s swap_entry_free(): the value left, and what it means."""
    value, uncharge, only_cache = r[0], r[1], r[2]
    text = f"map->{value:#x}" + (", cache only" if only_cache else "")
    return text + (f", memsw uncharged (memcg {uncharge})" if uncharge else "")


def value(prim: str, r: Any) -> str:
    """One primitive's result."""
    if prim == "page_flags" and isinstance(r, tuple):
        return page_flags(r)
    if type(r).__name__ == "SwapEntryFreed" or (
        prim == "swap_entry_free_locked" and isinstance(r, tuple) and len(r) == 3
    ):
        return swap_entry_freed(r)
    if isinstance(r, tuple):
        return "(" + ", ".join(value("", x) for x in r) + ")"
    return str(r)


def call(prim: str, args: Any, result: Any) -> str:
    """``prim(args) = result``, without ``= None``."""
    text = f"{prim}({', '.join(map(str, args))})"
    return text if result is None else f"{text} = {value(prim, result)}"
