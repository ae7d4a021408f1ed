"""The memory controller's cgroupfs files of 2.6.30, served by the memcg service over HTTP.

mm/memcontrol.c (2.6.30) registers ``mem_cgroup_files[]`` and ``memsw_cgroup_files[]``;
each file is read-only, written through ``write_string``/``write_u64``, or a
``trigger`` (any write runs it, the written text is not read).  This table follows it:

| file | read | write |
|---|---|---|
| usage_in_bytes, memsw.usage_in_bytes | res_counter usage | none (EACCES) |
| max_usage_in_bytes, memsw.max_usage_in_bytes | high-water mark | trigger: reset to usage |
| limit_in_bytes, memsw.limit_in_bytes | limit | memparse(), mem_cgroup_resize_limit() |
| failcnt, memsw.failcnt | failures to charge | trigger: reset to 0 |
| stat | mem_control_stat_show() | none |
| force_empty | (no read: EINVAL) | trigger: reclaim every page of an empty group |
| use_hierarchy | 0/1 | 0 or 1; EBUSY with children, EINVAL under a hierarchical parent |
| swappiness | 0-100 | > 100 or the root group: EINVAL |

What the model leaves out (see docs/MODEL.md): no hierarchy, so use_hierarchy only
changes what the file reads (a group with no children reclaims the same either
way); reclaim does not read swappiness (the model has anon pages only, and a
zero swappiness would only move 2.6.30's scan balance between anon and file);
force_empty reclaims through try_to_free_mem_cgroup_pages() on a shell CPU of the
tasks service but has no mem_cgroup_move_parent(), so pages it cannot free are
reported (EBUSY) instead of moved to the parent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from errno import EACCES, EBUSY, EINVAL

from kernsim.model.memcontrol import MemCgroup, MemcgState
from kernsim.model.mm_types import PAGE_SIZE

#: The files of a memory cgroup directory, as ``ls /cgroup/A`` lists them (memory.*).
FILES = (
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.failcnt",
    "memory.stat",
    "memory.force_empty",
    "memory.use_hierarchy",
    "memory.swappiness",
    "memory.memsw.usage_in_bytes",
    "memory.memsw.max_usage_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.memsw.failcnt",
    "tasks",
)
#: mem_cgroup_swappiness's default (vm_swappiness, 60).
DEFAULT_SWAPPINESS = 60


class CgroupfsError(Exception):
    """A write or read the kernel refuses: errno and a one-line reason."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(slots=True)
class Knobs:
    """What the cgroupfs keeps per group beside MemCgroup: the two tunables and memory.stat's
    page-in/out counts (mem_cgroup_charge_statistics(): one per charge, one per uncharge)."""

    swappiness: int = DEFAULT_SWAPPINESS
    use_hierarchy: int = 0
    pgpgin: int = 0
    pgpgout: int = 0
    used_pages: int = 0


@dataclass(slots=True)
class Cgroupfs:
    state: MemcgState
    knobs: dict[int, Knobs] = field(default_factory=dict)

    def knob(self, gid: int) -> Knobs:
        k = self.knobs.get(gid)
        if k is None:
            k = self.knobs[gid] = Knobs(used_pages=len(self.state.groups[gid].lru))
        return k

    def count_charges(self) -> None:
        """After each memcg primitive: a page that became USED is a pgpgin, one that left a
        pgpgout (the memcg LRU holds exactly the USED pages, and a primitive moves one)."""
        for g in self.state.groups.values():
            k = self.knob(g.id)
            n = len(g.lru)
            if n > k.used_pages:
                k.pgpgin += n - k.used_pages
            elif n < k.used_pages:
                k.pgpgout += k.used_pages - n
            k.used_pages = n

    def children(self, g: MemCgroup) -> list[MemCgroup]:
        if g.name != "/":
            return []  # groups are created flat under the root: /A has no children
        return [c for c in self.state.groups.values() if c.name != "/"]

    def read(self, g: MemCgroup, file: str) -> str:
        values = {
            "memory.usage_in_bytes": g.res.usage,
            "memory.memsw.usage_in_bytes": g.memsw.usage,
            "memory.limit_in_bytes": g.res.limit,
            "memory.memsw.limit_in_bytes": g.memsw.limit,
            "memory.max_usage_in_bytes": g.res.max_usage,
            "memory.memsw.max_usage_in_bytes": g.memsw.max_usage,
            "memory.failcnt": g.res.failcnt,
            "memory.memsw.failcnt": g.memsw.failcnt,
            "memory.use_hierarchy": self.knob(g.id).use_hierarchy,
            "memory.swappiness": self.knob(g.id).swappiness,
        }
        if file in values:
            return f"{values[file]}\n"
        if file == "memory.stat":
            return self.memory_stat(g)
        if file == "tasks":
            return "".join(f"{t}\n" for t in sorted(g.tasks))
        if file == "memory.force_empty":
            raise CgroupfsError(EINVAL, "memory.force_empty has no read handler")
        raise FileNotFoundError(file)

    def memory_stat(self, g: MemCgroup) -> str:
        """mem_control_stat_show(): local counts, hierarchical limits, then total_* over the
        subtree.  Anon pages only (cache 0); the model's one memcg LRU is shown as
        active_anon.  2.6.30 prints no ``swap`` line (it came in 2.6.34):
        memsw.usage_in_bytes - usage_in_bytes is the swap charge."""
        groups = [g, *self.children(g)]

        def local(x: MemCgroup) -> list[tuple[str, int]]:
            k = self.knob(x.id)
            rss = len(x.lru) * PAGE_SIZE
            return [
                ("cache", 0),
                ("rss", rss),
                ("pgpgin", k.pgpgin),
                ("pgpgout", k.pgpgout),
                ("inactive_anon", 0),
                ("active_anon", rss),
                ("inactive_file", 0),
                ("active_file", 0),
                ("unevictable", 0),
            ]

        rows = local(g)
        rows += [("hierarchical_memory_limit", g.res.limit)]
        rows += [("hierarchical_memsw_limit", g.memsw.limit)]
        totals = [local(x) for x in groups]
        rows += [(f"total_{k}", sum(t[i][1] for t in totals)) for i, (k, _) in enumerate(rows[:9])]
        return "".join(f"{k} {v}\n" for k, v in rows)

    async def write(
        self,
        g: MemCgroup,
        file: str,
        text: str,
        resize: Callable[[int, bool], int],
        force_empty: Callable[[], Awaitable[int]],
        parse: Callable[[str], int],
    ) -> None:
        """One write(2) to ``file``; raises CgroupfsError with the kernel's errno."""
        if file in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            try:
                value = parse(text)
            except ValueError as exc:
                raise CgroupfsError(EINVAL, str(exc)) from None
            memsw = file == "memory.memsw.limit_in_bytes"
            err = resize(value, memsw)
            if err == -EINVAL:
                other = g.res.limit if memsw else g.memsw.limit
                rule = "memsw.limit_in_bytes >= limit_in_bytes"
                raise CgroupfsError(EINVAL, f"write {file}: EINVAL ({rule}; the other is {other})")
            if err:
                raise CgroupfsError(-err, f"write {file}: usage above the new limit")
        elif file in ("memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes"):
            counter = g.memsw if "memsw" in file else g.res
            counter.max_usage = counter.usage  # res_counter_reset_max()
        elif file in ("memory.failcnt", "memory.memsw.failcnt"):
            (g.memsw if "memsw" in file else g.res).failcnt = 0  # res_counter_reset_failcnt()
        elif file == "memory.use_hierarchy":
            value = _u64(text)
            if value not in (0, 1):
                raise CgroupfsError(EINVAL, "memory.use_hierarchy takes 0 or 1")
            if self.children(g):
                raise CgroupfsError(EBUSY, f"{g.name} has children: use_hierarchy is fixed")
            self.knob(g.id).use_hierarchy = value
        elif file == "memory.swappiness":
            value = _u64(text)
            if value > 100:
                raise CgroupfsError(EINVAL, "memory.swappiness takes 0-100")
            if g.name == "/":
                raise CgroupfsError(EINVAL, "the root group's swappiness is vm.swappiness")
            self.knob(g.id).swappiness = value
        elif file == "memory.force_empty":
            if g.tasks or self.children(g):
                raise CgroupfsError(EBUSY, f"{g.name} still has tasks or children")
            left = await force_empty()
            if left:
                raise CgroupfsError(EBUSY, f"{left} bytes still charged after reclaim")
        elif file in FILES:
            raise CgroupfsError(EACCES, f"{file} is not writable")
        else:
            raise FileNotFoundError(file)


def _u64(text: str) -> int:
    """cgroup_write_X64()'s simple_strtoull over the stripped text: digits only, else EINVAL."""
    s = text.strip()
    if not s.isdigit():
        raise CgroupfsError(EINVAL, f"not a number: {text!r}")
    return int(s)
