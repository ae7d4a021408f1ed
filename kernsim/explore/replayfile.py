"""Replay files: a shrunk failing schedule as JSON, enough to re-run it bit for bit."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kernsim.explore.job import Job
from kernsim.sim.engine import TRACE_IDENTITY

#: 2: switches are anchored to kernel events (D, m, X), no longer decision indexes.
VERSION = 2


class ReplayFileError(ValueError):
    """A replay file that cannot be used: missing, truncated, not JSON, wrong version."""


def write(path: Path, job: Job, trace_sha256: str, kinds: tuple[str, ...], **extra: Any) -> None:
    data = {
        "version": VERSION,
        "job": {**asdict(job), "switches": [list(s) for s in job.switches]},
        "trace_sha256": trace_sha256,
        "trace_identity": TRACE_IDENTITY,
        "kinds": list(kinds),
        **extra,
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def read(path: Path) -> tuple[Job, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReplayFileError(f"{path}: not a replay file (binary, not UTF-8 JSON)") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReplayFileError(f"{path}: not a replay file (truncated or not JSON: {exc})") from None
    if not isinstance(data, dict) or "version" not in data:
        raise ReplayFileError(f"{path}: not a replay file (no version field)")
    if data["version"] != VERSION:
        raise ReplayFileError(
            f"{path}: replay file version {data['version']!r}, this kernsim reads {VERSION}"
        )
    try:
        j = dict(data["job"])
        j["switches"] = tuple((str(d), int(m), str(x)) for d, m, x in j["switches"])
        j["params"] = tuple((str(k), v) for k, v in j["params"])
        j["prefix"] = tuple(str(x) for x in j.get("prefix", ()))
        job = Job(**j)
        str(data["trace_sha256"])
        list(data["kinds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplayFileError(f"{path}: malformed replay file ({exc!r})") from None
    return job, data


def verdict(data: dict[str, Any], trace_sha256: str, kinds: list[str]) -> str:
    """What re-running a file's job showed: "reproduced" (same trace, bit for bit),
    "same violations, different trace" (the schedule still breaks the same invariants,
    but the model changed since the file was recorded), or "not reproduced"."""
    if not kinds or kinds != list(data["kinds"]):
        return "not reproduced"
    if trace_sha256 == data["trace_sha256"]:
        return "reproduced"
    return "same violations, different trace"
