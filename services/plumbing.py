"""Process plumbing shared by every service: JSON logs, signals, rate-limited warnings."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per line: easy to grep, easy to ship."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "level": record.levelname.lower(),
            "service": self.service,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask for a graceful stop instead of killing mid-reply."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


class RateLimitedLog:
    """Warnings about bad input, at most ``per_s`` lines a second.

    Every bad frame deserves a log line, but a peer that sends a million of
    them must not turn our log into the memory (or disk) it exhausts; the
    lines held back are counted and the count is logged with the next line.
    """

    def __init__(self, log: logging.Logger, per_s: int = 20) -> None:
        self.log = log
        self.per_s = per_s
        self.suppressed = 0
        self._window = 0.0
        self._count = 0

    def warning(self, text: str) -> None:
        self._emit(logging.WARNING, text, None)

    def error(self, text: str, exc: BaseException) -> None:
        """An error with its traceback, under the same budget."""
        self._emit(logging.ERROR, text, exc)

    def _emit(self, level: int, text: str, exc: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._count = now, 0
        if self._count >= self.per_s:
            self.suppressed += 1
            return
        self._count += 1
        if self.suppressed:
            text += f" ({self.suppressed} similar lines suppressed before this one)"
            self.suppressed = 0
        self.log.log(level, "%s", text, exc_info=exc)
