"""Exit statuses: one table for every ``kernsim`` command and every service process.

A status says who is to blame, so that a script (or CI) can tell a kernel finding from a
broken setup without reading stderr:

====  ==========  ==============================================================
0     OK          the invariants hold; the command did what it was asked
1     VIOLATED    a finding: a memsw leak, a pinned slot the variant never gives
                  back, another broken invariant; a replay that reproduces; a
                  matrix with a cell that is not clean
2     USAGE       bad arguments or input, said in one line on stderr (a service
                  process: a configuration it refuses)
3     SERVICE     kernsim itself failed: a service died or stopped answering (named
                  on stderr), or ``explore --check-determinism`` saw one schedule
                  give two traces
4     SETUP       the environment is wrong before anything was measured: a refused
                  token, a service that refused its configuration, an unusable
                  ``--out``
128+N killed_by   signal N stopped it (SIGINT 130, SIGTERM 143), after every service
                  it started was stopped
141   BROKEN_PIPE the reader of stdout went away (``kernsim replay F | head``), as a
                  shell reports a process SIGPIPE ended
====  ==========  ==============================================================

This module imports nothing of kernsim, so every layer may use it.
"""

from __future__ import annotations

import enum
import signal


class Exit(enum.IntEnum):
    """The exit statuses of the table above (a signal's is :func:`killed_by`)."""

    OK = 0
    VIOLATED = 1
    USAGE = 2
    SERVICE = 3
    SETUP = 4
    BROKEN_PIPE = 128 + signal.SIGPIPE


def killed_by(signum: int) -> int:
    """The status a shell gives a process signal ``signum`` ended: 128 + its number."""
    return 128 + int(signum)
