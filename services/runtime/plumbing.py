"""Process plumbing shared by every service: JSON logs, signals, rate-limited warnings."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: The environment variable naming the read end of the launcher's lifeline pipe.
ENV_LIFELINE_FD = "KERNSIM_LIFELINE_FD"
#: After the parent is gone: how long a graceful stop may take before the process exits hard.
LIFELINE_GRACE_S = 1.5


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


def watch_lifeline(stop: asyncio.Event, fd: int | None = None) -> threading.Thread | None:
    """Stop this process when the launcher that started it is gone, however it went.

    The launcher keeps the write end of a pipe and hands each service the read
    end (``KERNSIM_LIFELINE_FD``); nobody ever writes to it.  When the launcher
    exits, even by SIGKILL, the kernel closes its end and a read here returns
    end-of-file.  A thread blocks on that read, so a wedged event loop cannot
    hide it: it asks for a graceful stop, and exits the process hard if that has
    not happened within ``LIFELINE_GRACE_S``.  A pipe rather than
    ``prctl(PR_SET_PDEATHSIG)``: the death signal follows the *thread* that
    forked the child (an executor thread that ends would kill the service) and
    races with a parent that dies before the child has called prctl; the pipe's
    end-of-file is level-triggered and waits for the service to look.
    """
    if fd is None:
        text = os.environ.get(ENV_LIFELINE_FD)
        if not text:
            return None
        fd = int(text)
    loop = asyncio.get_running_loop()
    log = logging.getLogger("kernsim.services")

    def watch() -> None:
        try:
            while os.read(fd, 4096):
                pass  # nobody writes; data would be a misuse, not a death
        except OSError:
            pass
        log.warning("the launcher is gone (lifeline closed): stopping")
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop is already closed: the process is on its way out
            return
        time.sleep(LIFELINE_GRACE_S)  # a normal exit ends this daemon thread first
        os._exit(1)

    thread = threading.Thread(target=watch, name="lifeline", daemon=True)
    thread.start()
    return thread


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


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``name`` (ServiceConfig.event_loop) makes: None for asyncio's own,
    uvloop's ``new_event_loop`` for ``uvloop``.  ValueError, said in one line, when uvloop
    is asked for and not installed."""
    if name == "asyncio":
        return None
    if name != "uvloop":
        raise ValueError(f"event_loop must be asyncio or uvloop, got {name!r}")
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        msg = "event_loop uvloop: uvloop is not installed (pip install uvloop)"
        raise ValueError(msg) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """The running event loop's implementation: ``asyncio`` or ``uvloop``."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
