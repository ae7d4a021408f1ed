"""Progress for long commands, on stderr: rich's live bars and spinners on a terminal,
plain phase lines (``kernsim: ...``) when stderr is a pipe or a file.

One reporter at a time (a command's run is one thread of work): ``phase(text)``
starts a spinner with elapsed time, ``bar(total, text)`` a bar with counts and
rate, ``advance(n, note)`` moves it, ``done()`` clears whatever is live.  Without
a terminal a bar prints its start, about every tenth of the way, and its end, so
a log file grows by a handful of lines instead of carriage-return frames.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def _interactive() -> bool:
    forced = os.environ.get("KERNSIM_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


class Reporter:
    def __init__(self) -> None:
        self._live: Any = None  # rich.progress.Progress while something is shown
        self._task: Any = None
        self._total = 0
        self._n = 0
        self._text = ""
        self._next_line = 0
        self._t0 = 0.0
        self._ticking = False

    def _start(self, total: int | None, text: str, ticking: bool = False) -> None:
        self.done()
        self._ticking = ticking
        self._total, self._n, self._text, self._t0 = total or 0, 0, text, time.monotonic()
        if not _interactive():
            print(f"kernsim: {text}" + (f" (0/{total})" if total else ""), file=sys.stderr,
                  flush=True)  # fmt: skip
            self._next_line = self._step()
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        columns += [TimeElapsedColumn(), TextColumn("{task.fields[note]}")]
        # A ticking spinner redraws from a thread of its own; a bar redraws as it advances,
        # so no thread is running when the work forks its process pool.
        self._live = Progress(*columns, console=Console(stderr=True), transient=True,
                              auto_refresh=ticking)  # fmt: skip
        self._live.start()
        self._task = self._live.add_task(text, total=total or None, note="")

    def _step(self) -> int:
        """About a tenth of the work, and never less than 4 units, between two lines."""
        return max(4, -(-self._total // 10))

    def phase(self, text: str, ticking: bool = True) -> None:
        """A step of unknown length: a spinner with the time it has taken, or one line.
        ``ticking=False`` when the step forks processes: the spinner is drawn once."""
        self._start(None, text, ticking)

    def bar(self, total: int, text: str) -> None:
        """``total`` units of work to come."""
        self._start(total, text)

    def advance(self, n: int = 1, note: str = "") -> None:
        self._n += n
        if self._live is not None:
            self._live.update(self._task, advance=n, note=note, refresh=not self._ticking)
        elif self._total and (self._n >= self._next_line or self._n == self._total):
            self._next_line = self._n + self._step()
            rate = self._n / max(time.monotonic() - self._t0, 1e-9)
            extra = f", {note}" if note else ""
            print(f"kernsim: {self._text}: {self._n}/{self._total}{extra}, {rate:.1f}/s",
                  file=sys.stderr, flush=True)  # fmt: skip

    def note(self, note: str) -> None:
        """Change the bar's or spinner's note without advancing."""
        if self._live is not None:
            self._live.update(self._task, note=note, refresh=not self._ticking)

    def done(self) -> None:
        if self._live is not None:
            self._live.stop()
        self._live = self._task = None

    def track(self, items: Iterable[T], total: int, text: str) -> Iterator[T]:
        """``items`` as they come, with a bar of ``total``."""
        self.bar(total, text)
        try:
            for item in items:
                self.advance()
                yield item
        finally:
            self.done()


#: The process's reporter.
REPORTER = Reporter()
phase, bar, advance, note, done, track = (
    REPORTER.phase,
    REPORTER.bar,
    REPORTER.advance,
    REPORTER.note,
    REPORTER.done,
    REPORTER.track,
)
