"""Models mm/oom_kill.c: the OOM killer's choice of a victim.

Simplification (docs/MODEL.md): the victim is the task with the largest RSS.
The kernel's select_bad_process() ranks by badness() (total_vm, children,
nice, ...) and returns no new victim while a candidate already has TIF_MEMDIE
or PF_EXITING, so it never kills a second task while the first is exiting;
the model can.
"""

from __future__ import annotations

from kernsim.model.mm import MmState
from kernsim.model.port import primitive


@primitive("mm")
def select_bad_process(mm: MmState, tasks: list[int]) -> int:
    """The memcg OOM killer's choice: the task with the largest RSS (0 if none).

    A thread's RSS is its mm's; the caller kills the chosen task's thread group.
    """
    mm_of = {tid: m for m in mm.mms.values() for tid in [m.task, *m.users]}
    best, best_rss = 0, -1
    for task in tasks:
        if task in mm_of and (rss := mm_of[task].rss()) > best_rss:
            best, best_rss = task, rss
    return best
