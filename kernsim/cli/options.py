"""The flags ``kernsim`` commands share, each defined here once with its one validator.

A validator raises ``argparse.ArgumentTypeError``, so a bad value is a one-line usage
error (exit 2) in whichever command it is given to, never a traceback from deeper down
(``kernsim run --page-cluster 9`` used to reach the mm service and exit 3).  A command
adds a shared flag with the ``add_*`` function of that flag; what may differ between
commands (the scenarios it knows, its default, one seed or a list) is a parameter.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from pathlib import Path

from kernsim.faults import load_profile
from kernsim.variants import VARIANTS

#: mm/swap.c: page_cluster is log2 of the readahead window; 2.6.30 takes 0-8 sensibly.
PAGE_CLUSTER_MAX = 8


# --- validators: text -> value, or ArgumentTypeError ---


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def seed(text: str) -> int:
    """One seed: a whole number >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0: {text!r}")
    return value


def seeds(text: str) -> list[int]:
    """``7``, ``1-20`` or ``1,5,9`` (each a seed)."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a seed list: {text!r} (try 7, 1-20 or 1,5,9)"
            ) from None
        if first < 0 or last < 0:
            raise argparse.ArgumentTypeError(f"seeds are whole numbers >= 0: {text!r}")
        if last < first:
            raise argparse.ArgumentTypeError(f"the range {part} is reversed (try {last}-{first})")
        out.extend(range(first, last + 1))
    return out


def page_cluster(text: str) -> int:
    """/proc/sys/vm/page-cluster: 0 (no readahead) to 8."""
    value = _int(text)
    if not 0 <= value <= PAGE_CLUSTER_MAX:
        raise argparse.ArgumentTypeError(
            f"page-cluster must be between 0 and {PAGE_CLUSTER_MAX}: {text!r}"
        )
    return value


def positive(text: str) -> int:
    """A count of at least 1 (schedules, jobs, rounds)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def count(text: str) -> int:
    """A count that may be 0 (a budget, a bound, runs that 0 skips)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0: {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def seconds(text: str) -> float:
    """A positive number of seconds."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def non_negative(text: str) -> float:
    """A number >= 0 (a window, a width)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def fault_profile(text: str) -> str:
    """A fault profile a run can load: a shipped name (deploy/faults/NAME.toml) or a path.
    The flag keeps the text; the command loads the profile itself."""
    try:
        load_profile(text)
    except (ValueError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# --- the shared flags ---


def add_scenario(
    p: argparse.ArgumentParser, choices: Iterable[str], default: str, what: str
) -> None:
    p.add_argument(
        "--scenario", default=default, choices=list(choices), help=f"{what} (default: %(default)s)"
    )


def add_variant(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--variant NAME``; with ``many``, repeatable (the runs shown side by side)."""
    if many:
        p.add_argument(
            "--variant",
            action="append",
            choices=list(VARIANTS),
            help="kernel variant; repeat to compare side by side (default: none)",
        )
    else:
        p.add_argument(
            "--variant",
            default="none",
            choices=list(VARIANTS),
            help="kernel variant (default: %(default)s)",
        )


def add_seed(
    p: argparse.ArgumentParser, default: int, what: str = "seed", *, many: bool = False
) -> None:
    """``--seed N``; with ``many``, a list (7, 1-20 or 1,5,9) and one run per seed."""
    if many:
        p.add_argument(
            "--seed",
            type=seeds,
            default=[default],
            help=f"{what}, or a list: 7, 1-20, 1,5,9 (default: {default})",
        )
    else:
        p.add_argument("--seed", type=seed, default=default, help=f"{what} (default: %(default)s)")


def add_faults(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--faults PROFILE``; without ``default``, each scenario's own profile."""
    shown = "the scenario's" if default is None else default
    p.add_argument(
        "--faults",
        type=fault_profile,
        default=default,
        metavar="PROFILE",
        help=f"fault profile: a name (deploy/faults/NAME.toml) or a path (default: {shown})",
    )


def add_page_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--page-cluster",
        type=page_cluster,
        default=None,
        metavar="N",
        help=f"/proc/sys/vm/page-cluster, 0-{PAGE_CLUSTER_MAX}, 0 disables swap readahead "
        "(default: the scenario's, 3 unless it says otherwise)",
    )


def add_jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--jobs", type=positive, default=None, help="worker processes (default: one per core)"
    )


def add_duration(p: argparse.ArgumentParser, default: float, what: str) -> None:
    p.add_argument(
        "--duration",
        type=seconds,
        default=default,
        metavar="S",
        help=f"{what} (default: %(default)g)",
    )


def add_out(
    p: argparse.ArgumentParser, default: Path | None, what: str, metavar: str = "DIR"
) -> None:
    """``--out``: where a command writes its files (the command says which)."""
    shown = "%(default)s" if default is not None else "none written"
    p.add_argument(
        "--out", type=Path, default=default, metavar=metavar, help=f"{what} (default: {shown})"
    )


def add_json(p: argparse.ArgumentParser, what: str, instead: str = "a table") -> None:
    """``--json``: ``what`` it prints, and what is printed ``instead`` without it."""
    p.add_argument("--json", action="store_true", help=f"{what} (default: {instead})")


def add_verbose(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help=f"{what} (default: off)")


def add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 also when swap slots stay pinned that the variant gives back by design "
        "(2.6.31's reuse of cache-only slots, memcg reclaim of charged cache pages) "
        "(default: off)",
    )
