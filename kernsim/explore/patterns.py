"""The races kernsim knows, each as an ordered pattern of racing steps.

A pattern is a short sequence of steps, each done by a *role* (a letter: the
same letter is the same CPU, different letters are different CPUs), on the
leaked swap slot or on a page that cached it.  Consecutive steps of different
roles are the race's *racing pairs*: ``example-b`` is the pair
(slot, swap_duplicate, free_swap_and_cache_locked/nopage) followed by
(slot, free_swap_and_cache_locked/nopage, add_to_swap_cache/read).  A step
can forbid steps between it and the step before it (``unless``), and pin the
page it touches (``page``: the same letter is the same page).

Step names are primitive names qualified by outcome (see
``kernsim.explore.coverage.OUTCOME``); every primitive name used below goes
through ``P``, so a renamed primitive is a one-line change there.

Each pattern cites where the race was described: LKML messages by Message-Id
(the thread of "memcg: fix stale swap cache leak", March-June 2009), the
seed mail (v5, 30 Apr 2009), or this project's docs.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Primitive names as the model registers them.  Rename here, nowhere else.  "a|b":
#: either (2.6.31's swapcache_prepare() takes the readahead's reference).
P = {
    "swap_duplicate": "swap_duplicate|swapcache_prepare",
    "free_swap_and_cache": "free_swap_and_cache_locked",
    "add_to_swap_cache": "add_to_swap_cache",
    "trylock_page": "trylock_page",
    "lock_page": "lock_page",
    "remove_mapping": "remove_mapping_freeze",
    "uncharge_page": "mem_cgroup_uncharge_page|mem_cgroup_uncharge_swapcache",
    "commit_charge": "mem_cgroup_commit_charge|__mem_cgroup_commit_charge",
    "set_page_writeback": "set_page_writeback_unlock",
    "end_page_writeback": "end_page_writeback",
    "page_flags": "page_flags",
    "staleswap_hint": "mem_cgroup_staleswap_hint",
    "unlock_page": "unlock_page",
    # Where reclaim lets go of a page it locked: unlock_page() (keep_locked, and every
    # other exit), or swap_writepage(), which unlocks the page as it sets PG_writeback
    # (the model's set_page_writeback_unlock(), one critical section).
    "reclaim_unlock": "unlock_page|set_page_writeback_unlock",
    "reuse_swap_page": "reuse_swap_page_check",
    "delete_from_swap_cache": "__delete_from_swap_cache",
    "free_swap_cache": "free_swap_cache_trylock",
    "swap_free": "swap_free",
    "pte_same": "pte_same",
}


def s(key: str, outcome: str = "") -> str:
    """A step name ("a|b": either), with an outcome."""
    return "|".join(n + (f"/{outcome}" if outcome else "") for n in P[key].split("|"))


#: A role that any CPU may play (it forms no racing pair).
ANY = "*"


@dataclass(frozen=True, slots=True)
class Step:
    role: str
    name: str  # a step name: primitive, or primitive/outcome; "a|b": either
    page: str = ""  # a letter: steps with the same letter touch the same page
    unless: tuple[str, ...] = ()  # step names that must not happen since the last step


@dataclass(frozen=True, slots=True)
class Pattern:
    name: str
    summary: str
    cite: str
    steps: tuple[Step, ...]
    variants: tuple[str, ...] = ()  # only under these variants (empty: any)
    #: Only when no other pattern matches: a window that other races pass through on
    #: their way (Type-2's reclaim holds the lock the zap's mmu_gather then misses).
    fallback: bool = False
    #: The class a match reports, when several patterns are one race reached by
    #: different code paths (empty: the pattern's own name).
    race: str = ""

    @property
    def cls(self) -> str:
        return self.race or self.name


#: do_wp_page()'s decision under the page lock, and do_swap_page()'s pte check.
WP_DECIDES = (s("reuse_swap_page", "keep"), s("reuse_swap_page", "reuse"))
PTE_SAME = (s("pte_same", "same"), s("pte_same", "changed"))

SEED = "seed mail, v5 (LKML, 30 Apr 2009; lkml.iu.edu/hypermail/linux/kernel/0904.3/02992.html)"
NISHIMURA = "M<20090317135702.4222e62e.nishimura@mxp.nes.nec.co.jp> (Type-1/Type-2)"
V6_LOG = "v5->v6 changelog in M<20090512133238.0fb41722.nishimura@mxp.nes.nec.co.jp>"

PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "example-b",
        "zap between readahead's swap_duplicate() and add_to_swap_cache(): no page to free",
        SEED + ", Ex. B",
        (
            Step("X", s("swap_duplicate")),
            Step("Y", s("free_swap_and_cache", "nopage")),
            Step("X", s("add_to_swap_cache", "read")),
        ),
    ),
    Pattern(
        "example-b-eexist",
        "zap while a readahead holds a swap_duplicate() reference whose add_to_swap_cache() "
        "fails with -EEXIST (another readahead's page is in the cache): swap_entry_free() "
        "leaves the slot referenced, and the readahead's swap_free() then leaves the cache "
        "page the slot's only user",
        SEED + ', Ex. B ("there are many patterns of this kind of race"); docs/explore.md '
        "(found by search, seed 24320 of race); 2.6.30 mm/swap_state.c "
        "read_swap_cache_async() (swap_free() after add_to_swap_cache() fails)",
        (
            Step("X", s("swap_duplicate")),
            Step("Y", s("free_swap_and_cache", "nopage")),
            Step("X", s("swap_free"), unless=(s("add_to_swap_cache", "read"),)),
        ),
    ),
    Pattern(
        "type-1",
        "zap while the readahead page is locked for read I/O: trylock_page() fails",
        NISHIMURA + ", Type-1",
        (
            Step(ANY, s("add_to_swap_cache", "read"), "p"),
            Step(
                "Y",
                s("free_swap_and_cache", "busy"),
                "p",
                unless=(s("unlock_page"), s("staleswap_hint", "stable")),
            ),
            Step("Z", s("unlock_page"), "p"),
        ),
    ),
    Pattern(
        "example-a",
        "zap while reclaim holds the page lock: its trylock_page() fails, and the page stays "
        "in the swap cache whether reclaim keeps it or writes it out",
        SEED + ", Ex. A",
        (
            Step("X", s("trylock_page", "ok"), "p"),
            Step("Y", s("free_swap_and_cache", "busy"), "p", unless=(s("reclaim_unlock"),)),
            Step("X", s("reclaim_unlock"), "p"),
        ),
    ),
    Pattern(
        "gather-trylock",
        "zap's mmu_gather free_swap_cache() finds the page locked by reclaim, which added it "
        "to swap just before the unmap: the page stays cache-only",
        "docs/explore.md (found by search; Ex. A through free_pages_and_swap_cache(), "
        + SEED
        + ")",
        (
            Step("X", s("trylock_page", "ok"), "p"),
            Step("Y", s("free_swap_cache", "fail"), "p", unless=(s("reclaim_unlock"),)),
            Step("X", s("reclaim_unlock"), "p"),
        ),
        fallback=True,
    ),
    Pattern(
        "type-2",
        "zap uncharges the page (unmapping it, or deleting it from the swap cache) while "
        "reclaim has it isolated; reclaim's add_to_swap() then gives it a slot, uncharged",
        NISHIMURA + ", Type-2",
        (
            Step("Y", s("uncharge_page", "ok"), "p"),
            Step("X", s("add_to_swap_cache", "reclaim"), "p", unless=(s("commit_charge"),)),
        ),
    ),
    Pattern(
        "writeback",
        "zap during swap-out writeback: free_swap_and_cache() leaves the page in the cache",
        V6_LOG + ' ("check after I/O works only after writeback")',
        (
            Step(ANY, s("set_page_writeback"), "p"),
            Step("Y", s("free_swap_and_cache", "locked"), "p", unless=(s("end_page_writeback"),)),
            Step("Y", s("page_flags", "writeback"), "p"),
            Step("Z", s("end_page_writeback"), "p"),
        ),
    ),
    Pattern(
        "writeback-gather",
        "zap of a page faulted back in while its swap write is in flight: the mmu_gather's "
        "free_swap_cache() gets the lock, but try_to_free_swap() skips it for PG_writeback",
        "docs/explore.md (found by search, seed 81: the writeback race through "
        "free_pages_and_swap_cache()); " + V6_LOG,
        (
            Step(ANY, s("set_page_writeback"), "p"),
            Step("Y", s("free_swap_cache", "ok"), "p", unless=(s("end_page_writeback"),)),
            Step("Y", s("page_flags", "writeback"), "p", unless=(s("end_page_writeback"),)),
            Step("Z", s("end_page_writeback"), "p"),
        ),
        race="writeback",
    ),
    Pattern(
        "v5-write-window",
        "v5's check at end_swap_bio_write() runs before the zap, which then finds PG_writeback",
        "docs/explore.md (v5's write window); " + V6_LOG,
        (
            Step("Z", s("staleswap_hint", "stable"), "p"),
            Step("Y", s("free_swap_and_cache", "locked"), "p", unless=(s("end_page_writeback"),)),
            Step("Y", s("page_flags", "writeback"), "p"),
            Step("Z", s("end_page_writeback"), "p"),
        ),
        variants=("v5",),
    ),
    Pattern(
        "v5-write-window-gather",
        "v5's check at end_swap_bio_write() runs before the zap, whose mmu_gather "
        "free_swap_cache() then finds PG_writeback (try_to_free_swap() skips the page)",
        "docs/explore.md (v5's write window; found by search through "
        "free_pages_and_swap_cache(), seed 1920 of race/v5); " + V6_LOG,
        (
            Step("Z", s("staleswap_hint", "stable"), "p"),
            Step("Y", s("free_swap_cache", "ok"), "p", unless=(s("end_page_writeback"),)),
            Step("Y", s("page_flags", "writeback"), "p", unless=(s("end_page_writeback"),)),
            Step("Z", s("end_page_writeback"), "p"),
        ),
        variants=("v5",),
        race="v5-write-window",
    ),
    Pattern(
        "v5-read-window",
        "zap's trylock fails after v5's check at end_swap_bio_read(), before unlock_page()",
        "docs/v5-hole.md; M<20090430184738.752858ea> (zap against read_swap_cache_async)",
        (
            Step(ANY, s("add_to_swap_cache", "read"), "p"),
            Step("Z", s("staleswap_hint", "stable"), "p"),
            Step("Y", s("free_swap_and_cache", "busy"), "p", unless=(s("unlock_page"),)),
            Step("Z", s("unlock_page"), "p"),
        ),
        variants=("v5",),
    ),
    Pattern(
        "v5-hole",
        "reuse_swap_page() deletes the page before swap_free(); a readahead re-adds the slot "
        "and end_swap_bio_read()'s lockless check sees swap_map==2",
        "docs/v5-hole.md",
        (
            Step("X", s("reuse_swap_page", "reuse"), "q"),
            Step("Y", s("add_to_swap_cache", "read"), "p"),
            Step("Z", s("staleswap_hint", "stable"), "p"),
            Step("X", s("swap_free")),
        ),
        variants=("v5",),
    ),
    Pattern(
        "reuse-window",
        "reuse_swap_page() deletes the page before swap_free(); a readahead re-adds the slot "
        "in between and is left as its only user",
        "docs/v5-hole.md",
        (
            Step("X", s("reuse_swap_page", "reuse"), "q"),
            Step("Y", s("add_to_swap_cache", "read"), "p"),
            Step("X", s("swap_free")),
        ),
    ),
    Pattern(
        "reuse-window-eexist",
        "reuse_swap_page() deletes the page before swap_free(); a readahead's "
        "swap_duplicate() takes the slot in between, loses add_to_swap_cache() to another "
        "readahead's page (-EEXIST) and swap_free()s: that page is left as the slot's only "
        "user",
        "docs/explore.md (found by search, seed 33722 of race); docs/v5-hole.md; 2.6.30 "
        "mm/swap_state.c read_swap_cache_async()",
        (
            Step("X", s("reuse_swap_page", "reuse"), "q"),
            Step("Y", s("swap_duplicate")),
            Step("X", s("swap_free")),
            Step(ANY, s("add_to_swap_cache", "read"), "p"),
            Step("Y", s("swap_free")),
        ),
        race="reuse-window",
    ),
    Pattern(
        "zap-delete-window",
        "free_swap_and_cache() deletes the unmapped page from the swap cache before "
        "delete_from_swap_cache()'s swap_free(); a readahead re-adds the slot in between "
        "and is left as its only user, with the memsw charge in swap_cgroup",
        "docs/explore.md (found by search, seed 1214 of race-fork); the window of "
        "docs/v5-hole.md, opened by the zap instead of reuse_swap_page()",
        (
            Step("X", s("free_swap_and_cache", "locked"), "q"),
            Step("X", s("delete_from_swap_cache"), "q"),
            Step("Y", s("add_to_swap_cache", "read"), "p"),
            Step("X", s("swap_free")),
        ),
    ),
    Pattern(
        "reuse-window-late-add",
        "reuse_swap_page() deletes the page before swap_free(); a readahead's "
        "swap_duplicate() takes the slot in between and adds its page after the "
        "swap_free(): it is left as the slot's only user",
        "docs/explore.md (found by search, seed 1301 of race-fork); docs/v5-hole.md",
        (
            Step("X", s("reuse_swap_page", "reuse"), "q"),
            Step("Y", s("swap_duplicate")),
            Step("X", s("swap_free")),
            Step("Y", s("add_to_swap_cache", "read"), "p"),
        ),
        race="reuse-window",
    ),
    Pattern(
        "zap-delete-window-late-add",
        "free_swap_and_cache() deletes the unmapped page from the swap cache; a "
        "readahead's swap_duplicate() takes the slot before delete_from_swap_cache()'s "
        "swap_free() and adds its page after it: it is left as the slot's only user",
        "docs/explore.md (found by search, race-fork); the window of docs/v5-hole.md, "
        "opened by the zap instead of reuse_swap_page()",
        (
            Step("X", s("free_swap_and_cache", "locked"), "q"),
            Step("X", s("delete_from_swap_cache"), "q"),
            Step("Y", s("swap_duplicate")),
            Step("X", s("swap_free")),
            Step("Y", s("add_to_swap_cache", "read"), "p"),
        ),
        race="zap-delete-window",
    ),
    Pattern(
        "zap-delete-window-gather",
        "the zap's mmu_gather free_swap_cache() deletes the unmapped page from the swap "
        "cache (try_to_free_swap(), delete_from_swap_cache()) before its swap_free(); a "
        "readahead re-adds the slot in between and is left as its only user",
        "docs/explore.md (found by search, seed 3286 of race); 2.6.30 mm/swap_state.c "
        "free_swap_cache() and delete_from_swap_cache(): the window of zap-delete-window",
        (
            Step("X", s("free_swap_cache", "ok"), "q"),
            Step("X", s("delete_from_swap_cache"), "q"),
            Step("Y", s("add_to_swap_cache", "read"), "p"),
            Step("X", s("swap_free")),
        ),
        race="zap-delete-window",
    ),
    Pattern(
        "zap-delete-window-gather-late-add",
        "zap-delete-window-gather with the readahead's swap_duplicate() in the window and "
        "its add_to_swap_cache() after the swap_free()",
        "docs/explore.md (found by search, seed 3286 of race)",
        (
            Step("X", s("free_swap_cache", "ok"), "q"),
            Step("X", s("delete_from_swap_cache"), "q"),
            Step("Y", s("swap_duplicate")),
            Step("X", s("swap_free")),
            Step("Y", s("add_to_swap_cache", "read"), "p"),
        ),
        race="zap-delete-window",
    ),
    Pattern(
        "threads-zap-swapin",
        "a thread's MADV_DONTNEED zaps the swap pte while another thread's do_swap_page() "
        "holds the page lock; pte_same() then fails",
        "docs/KERNEL.md; 2.6.30 mm/madvise.c (MADV_DONTNEED zaps under mmap_sem held for read)",
        (
            Step("X", s("lock_page"), "p"),
            Step("Y", s("free_swap_and_cache", "busy"), "p"),
            Step("X", s("pte_same", "changed")),
        ),
    ),
    Pattern(
        "threads-zap-swapin-charge-fails",
        "a thread's zap of the swap pte fails its trylock while another thread's "
        "do_swap_page() holds the page lock; the fault's memcg charge then fails "
        "(mem_cgroup_try_charge_swapin()) and it unlocks the page without mapping it",
        "docs/explore.md (found by search, seed 1112 of race-threads); 2.6.30 mm/memory.c "
        "do_swap_page() (out_page)",
        (
            Step("X", s("lock_page"), "p"),
            # do_wp_page() takes the page lock too, for reuse_swap_page(): not this race.
            Step("Y", s("free_swap_and_cache", "busy"), "p", unless=WP_DECIDES),
            Step("X", s("unlock_page"), "p", unless=(*WP_DECIDES, *PTE_SAME)),
        ),
        race="threads-zap-swapin",
    ),
)

# --- fork (docs/fork.md) ---------------------------------------------------------------
# do_wp_page() takes page_cache_get() on the old page when it decides to copy, and its
# page_remove_rmap() uncharges the old page when that was the last mapping.
P["page_cache_get"] = "page_cache_get"
PATTERNS += (
    Pattern(
        "fork-cow-type-2",
        "a write to a page fork shares copies it (do_wp_page()); the other mm's exit left "
        "the writer's pte its last mapping, so the copy's page_remove_rmap() uncharges the "
        "old page while reclaim has it isolated; reclaim's add_to_swap() then gives it a "
        "slot, uncharged",
        "new (docs/fork.md: Nishimura's Type-2, M<20090317135702.4222e62e.nishimura@"
        "mxp.nes.nec.co.jp>, reached through 2.6.30 mm/memory.c do_wp_page() by a live task)",
        (
            Step("Y", s("page_cache_get"), "p"),
            Step("Y", s("uncharge_page", "ok"), "p"),
            Step("X", s("add_to_swap_cache", "reclaim"), "p", unless=(s("commit_charge"),)),
        ),
    ),
)

# --- reclaim against readahead --------------------------------------------------------
PATTERNS += (
    Pattern(
        "readahead-eexist",
        "readahead's swap_duplicate() takes a slot reclaim's get_swap_page() has just "
        "allocated and its page wins add_to_swap_cache(); add_to_swap() gets -EEXIST, "
        "swap_free()s and takes another slot; the readahead page, read from a slot "
        "nobody wrote, stays cache-only and uncharged",
        "docs/explore.md (found by search, seed 252); 2.6.30 mm/swap_state.c add_to_swap() "
        '("Raced with "speculative" read_swap_cache_async"); 2.6.31\'s swapcache_prepare() '
        "closes it",
        (
            Step("X", s("swap_duplicate")),
            Step("X", s("add_to_swap_cache", "read"), "p"),
            Step("Y", s("add_to_swap_cache", "reclaim-fail")),
        ),
    ),
)

# do_wp_page() decides to copy (reuse_swap_page(): another mm's swap pte holds the slot);
# that mm's zap then finds the page still mapped and leaves it in the swap cache; the
# copy's page_remove_rmap() unmaps it, and nothing in do_wp_page() frees its swap cache.
PATTERNS += (
    Pattern(
        "fork-cow-zap",
        "a write to a page fork shares decides to copy it (do_wp_page()); the other mm's "
        "zap then finds it still mapped and keeps it in the swap cache; the copy unmaps "
        "it (page_remove_rmap()), and nothing frees its swap cache",
        "docs/explore.md (found by search, seed 94 of race-fork); 2.6.30 mm/memory.c "
        "do_wp_page() and mm/swapfile.c free_swap_and_cache() (!page_mapped(page))",
        (
            Step("X", s("reuse_swap_page", "keep"), "p"),
            Step("Y", s("free_swap_and_cache", "locked"), "p"),
            Step("X", s("uncharge_page", "skip"), "p"),
        ),
    ),
    Pattern(
        "fork-cow-zap-busy",
        "fork-cow-zap with the other mm's zap while do_wp_page() still holds the page "
        "lock: its trylock fails and it leaves the page in the swap cache all the same",
        "docs/explore.md (found by search, seed 12696 of race-fork under v5); 2.6.30 "
        "mm/memory.c do_wp_page() and mm/swapfile.c free_swap_and_cache()",
        (
            Step("X", s("reuse_swap_page", "keep"), "p"),
            Step("Y", s("free_swap_and_cache", "busy"), "p"),
            Step("X", s("uncharge_page", "skip"), "p"),
        ),
        race="fork-cow-zap",
    ),
)

# do_wp_page() decides to copy a page fork shares and takes its reference; reclaim's
# add_to_swap() then gives the page a slot (the other mm has unmapped it meanwhile);
# the copy's page_remove_rmap() unmaps the last mapping of a swap cache page (no
# uncharge: PageSwapCache), and nothing in do_wp_page() frees its swap cache.
PATTERNS += (
    Pattern(
        "fork-cow-reclaim",
        "a write copies a page fork shares (do_wp_page()); reclaim's add_to_swap() gives "
        "the page a slot while the copy is in flight, and the copy's page_remove_rmap() "
        "then unmaps its last mapping: nothing frees its swap cache",
        "docs/explore.md (found by search, seed 14201 of race-fork); 2.6.30 mm/memory.c "
        "do_wp_page() and mm/vmscan.c shrink_page_list() (add_to_swap())",
        (
            Step("X", s("page_cache_get"), "p"),
            Step("Y", s("add_to_swap_cache", "reclaim"), "p"),
            Step("X", s("uncharge_page", "skip"), "p"),
        ),
    ),
)

# Both mms that fork left sharing a page exit at once: one mm's mmu_gather holds the page
# lock in free_swap_cache() (try_to_free_swap() keeps the page, as the other mm's swap
# pte still counts), and the other mm's free_swap_and_cache() fails its trylock.
PATTERNS += (
    Pattern(
        "fork-zap-gather",
        "the two mms fork left sharing a page exit together: one's mmu_gather "
        "free_swap_cache() holds the page lock (try_to_free_swap() keeps the page, as the "
        "other's swap pte still counts) while the other's free_swap_and_cache() fails its "
        "trylock: the page stays cache-only",
        "docs/explore.md (found by search, seed 5669 of race-fork); 2.6.30 mm/swap_state.c "
        "free_swap_cache() and mm/swapfile.c free_swap_and_cache()",
        (
            Step("X", s("free_swap_cache", "ok"), "p"),
            Step("Y", s("free_swap_and_cache", "busy"), "p", unless=(s("unlock_page"),)),
            Step("X", s("unlock_page"), "p"),
        ),
    ),
)

# Both mms that fork left sharing a swapped-in page write it: each do_wp_page()'s
# reuse_swap_page() sees the other's mapping and decides to copy; the last copy's
# page_remove_rmap() leaves the old page cache-only (do_wp_page() never frees it).
PATTERNS += (
    Pattern(
        "fork-cow-both",
        "two mms that share a swapped-in page both write it: each do_wp_page() decides to "
        "copy while the other still maps it; the last copy unmaps it, and nothing frees "
        "its swap cache",
        "docs/explore.md (found by search, seed 1342 of race-fork); 2.6.30 mm/memory.c "
        "do_wp_page() and mm/swapfile.c reuse_swap_page()",
        (
            Step("X", s("reuse_swap_page", "keep"), "p"),
            Step("Y", s("reuse_swap_page", "keep"), "p"),
            Step(ANY, s("uncharge_page", "skip"), "p"),
        ),
    ),
)

# Type-2 with the uncharge split: page_remove_rmap()'s mem_cgroup_uncharge_page() tests
# PageSwapCache locklessly, reclaim's add_to_swap() runs, then the uncharge completes.
UNMAP_UNCHARGE = "mem_cgroup_uncharge_page/ok"  # not the swap cache's uncharge
PATTERNS += (
    Pattern(
        "type-2-late-uncharge",
        "reclaim's add_to_swap() adds the page after the unmap's mem_cgroup_uncharge_page() "
        "tested PageSwapCache and before it uncharged: the cache page ends uncharged",
        NISHIMURA + ", Type-2; found by search with the uncharge after add_to_swap() "
        "(docs/explore.md, seed 1408 of race-fork)",
        (
            Step("X", s("add_to_swap_cache", "reclaim"), "p"),
            Step("Y", UNMAP_UNCHARGE, "p", unless=(s("commit_charge"),)),
        ),
        race="type-2",
    ),
    Pattern(
        "fork-cow-type-2-late-uncharge",
        "fork-cow-type-2 with the copy's uncharge completing after reclaim's add_to_swap()",
        "docs/fork.md; docs/explore.md (found by search, seed 1408 of race-fork)",
        (
            Step("Y", s("page_cache_get"), "p"),
            Step("X", s("add_to_swap_cache", "reclaim"), "p"),
            Step("Y", UNMAP_UNCHARGE, "p", unless=(s("commit_charge"),)),
        ),
        race="fork-cow-type-2",
    ),
)

BY_NAME = {p.name: p for p in PATTERNS}
#: Every class, with the summary of its first pattern.
CLASSES: dict[str, str] = {}
for _p in PATTERNS:
    CLASSES.setdefault(_p.cls, _p.summary)
CATALOGUE = ("example-a", "example-b", "type-1", "type-2")
