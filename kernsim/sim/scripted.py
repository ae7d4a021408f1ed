"""A scripted scheduler: force a known interleaving step by step (no sleeps, no timing).

A script is a list of :class:`Run` steps.  Each names a CPU and lets it run
until its next primitive call matches ``until`` (exclusive), or through the
first call matching ``through`` (inclusive), or to the end.  When the script
is done, or a step's CPU is not runnable, the remaining steps run in time
order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kernsim.sim.cpu import CALL, SimCpu
from kernsim.sim.engine import Engine, Strategy

Match = Callable[[str, tuple[object, ...]], bool]


def call(name: str | tuple[str, ...], **arg_values: object) -> Match:
    """Match a primitive by name(s), optionally by argument position: ``call("x", a1=5)``."""
    names = (name,) if isinstance(name, str) else name
    want = {int(k[1:]): v for k, v in arg_values.items()}

    def match(prim: str, args: tuple[object, ...]) -> bool:
        return prim in names and all(i < len(args) and args[i] == v for i, v in want.items())

    return match


@dataclass(frozen=True, slots=True)
class Run:
    cpu: str
    until: Match | None = None
    through: Match | None = None


class Scripted(Strategy):
    scripted = True

    def __init__(self, rng: random.Random, script: Sequence[Run]) -> None:
        super().__init__(rng)
        self.script = list(script)
        self._finish_step = False

    def key(self, cpu: SimCpu) -> float:
        return 0.0

    def choose(self, engine: Engine, ready: list[tuple[float, float, int, SimCpu]]) -> int:
        if self._finish_step:
            self._finish_step = False
            self.script.pop(0)
        while self.script:
            step = self.script[0]
            idx = next((i for i, e in enumerate(ready) if e[3].name == step.cpu), None)
            if idx is None:
                self.script.pop(0)
                continue
            req = ready[idx][3].pending
            if req is not None and req.kind == CALL:
                if step.until is not None and step.until(req.info.name, req.args):
                    self.script.pop(0)
                    continue
                if step.through is not None and step.through(req.info.name, req.args):
                    self._finish_step = True
            return idx
        return min(range(len(ready)), key=lambda i: (ready[i][0], ready[i][2]))


def scripted(script: Sequence[Run]) -> Callable[[random.Random], Strategy]:
    return lambda rng: Scripted(rng, script)
