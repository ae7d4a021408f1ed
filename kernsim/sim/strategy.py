"""How the engine orders steps: the Strategy interface and its seeded random default."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernsim.sim.cpu import SimCpu
    from kernsim.sim.engine import Engine

#: Virtual CPU time one critical section takes; keeps busy loops from freezing time.
STEP_COST_S = 1e-6


class Strategy:
    """Orders steps that are due at the same instant.  The default: a seeded random order."""

    scripted = False
    #: Virtual time a critical section takes under this strategy.  PCT and other
    #: schedule searches set 0.0: only then are all runnable CPUs due at the same
    #: instant, so the strategy (not the clock) decides every interleaving.
    step_cost_s: float = STEP_COST_S

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    #: A strategy whose key() always returns the same number says which here: the
    #: engine's hot loop then skips the call.
    fixed_key: float | None = None

    def key(self, cpu: SimCpu) -> float:
        return self.rng.random()

    def choose(self, engine: Engine, ready: list[tuple[float, float, int, SimCpu]]) -> int:
        raise NotImplementedError

    def on_step(self, cpu: SimCpu) -> None:
        """Called after each primitive (PCT uses it for its change points)."""


class SimulationError(RuntimeError):
    """The simulation could not go on (a livelock, a step budget exhausted)."""
