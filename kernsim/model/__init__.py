"""The kernel model: Linux 2.6.30's ``mm/``, one module per kernel file (docs/MODEL.md).

Importing the package imports every module, so ``import kernsim.model`` means the
primitive registry (``port.PRIMITIVES``, ``port.CODE_PATHS``) holds every
primitive and code path of the model.  The variants register a few of their own
when ``kernsim.variants`` is imported.

The modules call each other the way the kernel's ``.c`` files do: a module
imports the others it calls at its top (``from kernsim.model import swapfile``)
and calls ``swapfile.free_swap_and_cache(...)``; no module imports anything
outside the model.  ``hooks.Hooks`` is the interface the variants fill.
"""

from __future__ import annotations

from kernsim.model import (
    filemap,
    fork,
    hooks,
    locks,
    madvise,
    memcontrol,
    memory,
    mm,
    mm_types,
    mmap,
    oom_kill,
    page_alloc,
    page_io,
    port,
    rmap,
    swap,
    swap_state,
    swapfile,
    vmscan,
)

__all__ = [
    "filemap",
    "fork",
    "hooks",
    "locks",
    "madvise",
    "memcontrol",
    "memory",
    "mm",
    "mm_types",
    "mmap",
    "oom_kill",
    "page_alloc",
    "page_io",
    "port",
    "rmap",
    "swap",
    "swap_state",
    "swapfile",
    "vmscan",
]
