"""Restructuring keeps the kernel's behaviour: every pinned trace hash still holds.

The hashes are of kernel events only (trace identity ``kernel-events/2``), so a
rename, a moved module or a faster engine keeps them; a model change that alters
what the kernel does changes them and must re-record (tests/support/golden.py says how).
"""

from __future__ import annotations

import json

from kernsim.sim.engine import TRACE_IDENTITY
from tests.support.golden import CASES, FILE, compute, key


def test_every_pinned_trace_hash_holds() -> None:
    doc = json.loads(FILE.read_text())
    assert doc["trace_identity"] == TRACE_IDENTITY
    assert sorted(doc["traces"]) == sorted(key(*case) for case in CASES)
    now = compute()
    changed = [k for k, h in doc["traces"].items() if now[k] != h]
    assert not changed, (
        f"{len(changed)} of {len(now)} traces changed: {', '.join(changed)}. If the kernel's "
        "behaviour changed on purpose, re-record: .venv/bin/python -m tests.support.golden --record"
    )
