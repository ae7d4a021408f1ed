"""The ``delay`` strategy: conflict-directed delays over a random walk (see Delay).

It lives apart from the other strategies (kernsim.explore.strategies, whose
docstring explains the scripted mode, the window and switches they all share)
because it reads the CPUs' footprints, not only the pending steps.
"""

from __future__ import annotations

import random

from kernsim.explore.footprint import Obj
from kernsim.explore.strategies import Chooser, Ready
from kernsim.sim.cpu import SimCpu

#: ``delay``: the chance that a step on an object another CPU will touch is held back.
DELAY_P = 0.5
#: ``delay``: a held-back CPU waits for at most this many of the other CPU's steps on
#: the object (drawn uniformly from 1..DELAY_MAX).
DELAY_MAX = 8
#: Object kinds a delay is about: what the races of this model are decided on.
DELAY_KINDS = frozenset({"page", "slot"})


class Delay(Chooser):
    """Conflict-directed delays: a random walk that, at a step on a page or slot another
    CPU will touch, may hold the stepping CPU back until the other has touched it a
    random number of times.

    A random walk cuts a code path at every step with the same chance, so a window that
    needs one CPU to stand still while another runs several steps on the same object (a
    zap's whole swap_lock section between a bio completion's check and its
    end_page_writeback()) is hit with a chance that halves at every step of it.  Here
    the walk picks a CPU X as usual; if X's pending step touches an object O that
    another due CPU Y *will touch* -- O is in Y's pending step, or Y's page tables map
    it (a task's exit zaps them, a fault swaps them in) -- then with probability
    ``DELAY_P`` X waits and Y runs, until Y has run k steps on O (k uniform in
    1..``DELAY_MAX``) or Y is no longer due.  X's place in its code path is kept: a
    check already made stays made.  The delay is the preemption of delay-bounded search
    (Emmi, Qadeer and Rakamarić, POPL 2011), placed where footprints conflict (as in
    POS, Yuan, Yang and Gu, CAV 2018) rather than uniformly.
    """

    skip_single = False  # every step a waited-on CPU runs may count

    def __init__(self, rng: random.Random, window_s: float) -> None:
        super().__init__(rng, window_s)
        #: held-back CPU -> (the CPU it waits on, the objects, steps on them still due)
        self.held: dict[str, tuple[str, frozenset[Obj], int]] = {}

    def will_touch(self, cpu: SimCpu) -> frozenset[Obj]:
        """The pages and slots ``cpu``'s pending step touches, and those its task's page
        tables map."""
        objs = {o for o in self.footprint(cpu) if o[0] in DELAY_KINDS}
        assert self.engine is not None
        mm = self.engine.mm.mms.get(cpu.task) if cpu.task else None
        if mm is not None:
            objs.update(("page" if p.present else "slot", p.val) for p in mm.ptes.values())
        return frozenset(objs)

    def pick(self, ready: Ready, due: list[int], default: int) -> int:
        held = self.held
        free = due
        if held:  # most decisions hold no CPU back: nothing to update
            names = {ready[i][3].name for i in due}
            for x, (y, _, _) in list(held.items()):
                if y not in names:  # the other CPU blocked, slept or ended: no more waiting
                    del held[x]
            free = [i for i in due if ready[i][3].name not in held] or due
        rng = self.rng
        best = free[int(rng.random() * len(free))] if len(free) > 1 else free[0]
        me = ready[best][3]
        if len(free) > 1:
            mine = {o for o in self.footprint(me) if o[0] in DELAY_KINDS}
            if mine:
                others = [i for i in free if i != best]
                hits = [
                    (i, shared) for i in others if (shared := mine & self.will_touch(ready[i][3]))
                ]
                if hits and rng.random() < DELAY_P:
                    i, shared = hits[int(rng.random() * len(hits))]
                    held[me.name] = (
                        ready[i][3].name,
                        frozenset(shared),
                        1 + int(rng.random() * DELAY_MAX),
                    )
                    best = i
        self._count(ready[best][3])
        return best

    def _count(self, cpu: SimCpu) -> None:
        """``cpu`` runs a step: the CPUs waiting on it count it if it touches their objects."""
        if not self.held:
            return
        waiting = [x for x, (y, _, _) in self.held.items() if y == cpu.name]
        if not waiting:
            return
        fp = self.footprint(cpu)
        for x in waiting:
            y, objs, left = self.held[x]
            if objs & fp:
                if left <= 1:
                    del self.held[x]
                else:
                    self.held[x] = (y, objs, left - 1)
