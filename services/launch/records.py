"""Append-only JSON-lines files that survive a crash of whoever writes them.

Each record is one line, written with a single ``os.write`` on a file opened
with ``O_APPEND`` and then fsync'd: a reader (or a post-mortem) sees every
record written so far, whole, and never half of one.  A line whose last byte
is not a newline can only come from a torn write of the machine itself;
``read_records`` skips it rather than guess.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class RecordWriter:
    """``write(kind, **fields)`` appends ``{"ts": ..., "kind": kind, ...}`` as one line."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fsync = fsync
        self.records = 0

    def write(self, kind: str, **fields: Any) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        line = json.dumps({"ts": round(time.time(), 6), "kind": kind, **fields}) + "\n"
        data = line.encode()
        written = os.write(self._fd, data)
        if written != len(data):  # regular files do not short-write short lines; say so if one did
            raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        if self._fsync:
            os.fsync(self._fd)
        self.records += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record of ``path``, in order."""
    out = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            out.append(json.loads(line))
    return out


def rss_bytes(pid: int) -> int | None:
    """Resident set size of process ``pid`` (Linux /proc), None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    return stat.rsplit(")", 1)[1].split()


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (R, S, T for stopped, Z...), None when gone."""
    fields = proc_stat(pid)
    return None if fields is None else fields[0]
