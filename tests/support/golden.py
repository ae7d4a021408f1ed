"""The pinned trace identities: (scenario, variant, seed, rounds) -> sha256 of kernel events.

A change that does not change what the kernel does keeps every hash; a change
that does (a model fix, a new lock step) must say so by re-recording them:

    .venv/bin/python -m tests.support.golden --record

and the commit that does it names the kernel behaviour that changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kernsim.sim.engine import TRACE_IDENTITY
from kernsim.sim.run import simulate

FILE = Path(__file__).with_name("golden_traces.json")

#: (scenario, variant, seed, params): small enough to run in seconds, wide enough to
#: cross every code path: the load scenarios, the search scenarios and the catalogue.
CASES: list[tuple[str, str, int, dict[str, int]]] = [
    ("kamezawa", "none", 1, {"rounds": 1}),
    ("kamezawa", "v5", 2, {"rounds": 1}),
    ("kamezawa", "upstream", 3, {"rounds": 1}),
    *[("race", v, s, {}) for v in ("none", "v5", "v7", "upstream") for s in (1, 2, 3)],
    *[("race-threads", v, s, {}) for v in ("none", "upstream") for s in (1, 2)],
    *[
        (sc, v, 1, {})
        for sc in ("example-a", "example-b", "type-1", "type-2", "window-readahead", "tiny-readers")
        for v in ("none", "v5", "upstream")
    ],
]


def key(scenario: str, variant: str, seed: int, params: dict[str, int]) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{scenario}/{variant}/seed{seed}" + (f"/{extra}" if extra else "")


def compute() -> dict[str, str]:
    return {
        key(*case): simulate(
            case[0], case[1], case[2], params=case[3] or None, keep_trace=False
        ).trace_sha256
        for case in CASES
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true", help=f"rewrite {FILE.name}")
    args = ap.parse_args()
    hashes = compute()
    if args.record:
        doc = {"trace_identity": TRACE_IDENTITY, "traces": hashes}
        FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(hashes)} trace hashes in {FILE}")
    else:
        print(json.dumps(hashes, indent=1))


if __name__ == "__main__":
    main()
