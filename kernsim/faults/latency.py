"""Latency distributions: how long a message or a bio takes, as data.

A `Latency` is a frozen value (kind, parameters, jitter) so that profiles can
be compared, printed and round-tripped through TOML/JSON. `sample(rng)` takes
the random source as an argument: the simulation passes its one seeded
`random.Random`, so the same seed gives the same delays.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# Parameter names per distribution, in the order they are stored in `params`.
# This table is also the on-disk schema: profiles spell these names.
PARAMS: dict[str, tuple[str, ...]] = {
    "constant": ("delay_s",),
    "uniform": ("lo_s", "hi_s"),
    "exponential": ("mean_s",),
    "pareto": ("scale_s", "alpha", "cap_s"),
}


#: The longest delay any distribution may produce or name, in seconds: the same
#: bound as a `post`'s delay_s.  A longer (or infinite) delay is a message held
#: for good; holding is what `hold`/`pause` are for, and they can be released.
MAX_DELAY_S = 3600.0


def _check_non_negative(name: str, value: float, *, seconds: bool = True) -> None:
    # NaN fails every comparison, so test it explicitly rather than rely on `< 0`.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: must be a number, got {type(value).__name__}")
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    if seconds and value > MAX_DELAY_S:
        raise ValueError(f"{name}: must be at most {MAX_DELAY_S:g} s, got {value!r}")


@dataclass(frozen=True, slots=True)
class Latency:
    """A delay distribution in seconds, plus uniform jitter of ±`jitter_s`.

    Build one with the constructors rather than directly:
    `Latency.constant(delay_s)`, `Latency.uniform(lo_s, hi_s)`,
    `Latency.exponential(mean_s)`, `Latency.pareto(scale_s, alpha, cap_s)`;
    each takes `jitter_s=0.0`. A sample is never negative: jitter that would
    push it below zero is clamped to zero.
    """

    kind: str
    params: tuple[float, ...]
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        names = PARAMS.get(self.kind)
        if names is None:
            known = ", ".join(sorted(PARAMS))
            raise ValueError(f"kind: unknown distribution {self.kind!r} (known: {known})")
        if len(self.params) != len(names):
            raise ValueError(f"{self.kind} takes {', '.join(names)}; got {len(self.params)} values")
        for name, value in zip(names, self.params, strict=True):
            _check_non_negative(name, value, seconds=name.endswith("_s"))
        _check_non_negative("jitter_s", self.jitter_s)
        self._check_shape()

    def _check_shape(self) -> None:
        # Relations between parameters that the per-value checks cannot see.
        if self.kind == "uniform" and self.params[1] < self.params[0]:
            raise ValueError(f"hi_s: must be >= lo_s ({self.params[0]!r}), got {self.params[1]!r}")
        if self.kind == "pareto":
            scale_s, alpha, cap_s = self.params
            if alpha <= 0:
                raise ValueError(f"alpha: must be > 0, got {alpha!r}")
            if cap_s < scale_s:
                raise ValueError(f"cap_s: must be >= scale_s ({scale_s!r}), got {cap_s!r}")

    @classmethod
    def constant(cls, delay_s: float, *, jitter_s: float = 0.0) -> Latency:
        return cls("constant", (delay_s,), jitter_s)

    @classmethod
    def uniform(cls, lo_s: float, hi_s: float, *, jitter_s: float = 0.0) -> Latency:
        return cls("uniform", (lo_s, hi_s), jitter_s)

    @classmethod
    def exponential(cls, mean_s: float, *, jitter_s: float = 0.0) -> Latency:
        return cls("exponential", (mean_s,), jitter_s)

    @classmethod
    def pareto(
        cls, scale_s: float, alpha: float, cap_s: float, *, jitter_s: float = 0.0
    ) -> Latency:
        """Heavy tail: `scale_s * Pareto(alpha)`, capped at `cap_s` (>= scale_s, finite)."""
        return cls("pareto", (scale_s, alpha, cap_s), jitter_s)

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds, >= 0. Draws 0-2 values from `rng`, a fixed
        number for a given Latency, so replays stay aligned."""
        delay_s = self._sample_base(rng)
        if self.jitter_s > 0.0:
            delay_s += rng.uniform(-self.jitter_s, self.jitter_s)
            if delay_s < 0.0:
                delay_s = 0.0
        return delay_s

    def _sample_base(self, rng: random.Random) -> float:
        kind, p = self.kind, self.params
        if kind == "constant":
            return p[0]
        if kind == "uniform":
            return rng.uniform(p[0], p[1])
        if kind == "exponential":
            # expovariate(1/0) would divide by zero; a zero mean is a zero delay.
            return rng.expovariate(1.0 / p[0]) if p[0] > 0.0 else 0.0
        scale_s, alpha, cap_s = p
        return min(scale_s * rng.paretovariate(alpha), cap_s)

    def mean_s(self) -> float:
        """Expected delay before jitter (jitter is symmetric, so it changes
        the mean only where clamping at zero bites). Used for reports."""
        kind, p = self.kind, self.params
        if kind in ("constant", "exponential"):
            return p[0]
        if kind == "uniform":
            return (p[0] + p[1]) / 2.0
        return _capped_pareto_mean(*p)

    def to_dict(self) -> dict[str, str | float]:
        out: dict[str, str | float] = {"kind": self.kind}
        out.update(zip(PARAMS[self.kind], self.params, strict=True))
        out["jitter_s"] = self.jitter_s
        return out

    def __repr__(self) -> str:
        args = [f"{n}={v!r}" for n, v in zip(PARAMS[self.kind], self.params, strict=True)]
        if self.jitter_s:
            args.append(f"jitter_s={self.jitter_s!r}")
        return f"Latency.{self.kind}({', '.join(args)})"


def _capped_pareto_mean(scale_s: float, alpha: float, cap_s: float) -> float:
    # E[min(X, c)] = scale + integral from scale to c of (scale/x)^alpha dx.
    if scale_s == 0.0:
        return 0.0
    if math.isinf(cap_s):
        return math.inf if alpha <= 1.0 else scale_s * alpha / (alpha - 1.0)
    if alpha == 1.0:
        return scale_s + scale_s * math.log(cap_s / scale_s)
    ratio = math.pow(cap_s / scale_s, 1.0 - alpha)
    return scale_s + scale_s * (ratio - 1.0) / (1.0 - alpha)


ZERO = Latency.constant(0.0)
