"""One connection's calls in flight, sans-IO: msg_ids, the pending map, deadlines.

Theory of operation
-------------------
An ``RpcSession`` is the caller's half of PROTOCOL.md section 3 for one
connection, with no event loop and no clock: the caller passes ``now`` and an
opaque *waiter* (the connection passes an asyncio future; a test passes any
object).

- ``start`` numbers a request (msg_ids count up from 1, unique among this
  session's requests, as section 2 asks) and records
  ``msg_id -> (waiter, deadline, type)``;
- ``match`` takes the entry a reply answers, by ``in_reply_to`` alone, never
  by order, because the fault layer reorders on purpose; a reply to no entry
  (late, duplicate, or answering nothing) gets None;
- ``expire(now)`` takes every entry whose deadline has passed: the caller
  fails those waiters with error 0 (``timeout``, indefinite);
- ``finish`` drops an entry the caller no longer waits for (it got its reply,
  gave up, or failed to send), and ``fail_all`` empties the map when the
  connection goes.

The bound on calls in flight (``max_in_flight``) is the session's too:
``room()`` is how many more may start now.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["RpcSession"]

W = TypeVar("W")


class RpcSession(Generic[W]):
    """msg_id allocation, pending calls and their deadlines, for one connection."""

    __slots__ = ("_last_id", "_pending", "max_in_flight", "timeout_s")

    def __init__(self, *, timeout_s: float, max_in_flight: int) -> None:
        if timeout_s <= 0 or max_in_flight < 1:
            raise ValueError(
                f"need timeout_s > 0 and max_in_flight >= 1, not {timeout_s}, {max_in_flight}"
            )
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self._last_id = 0
        self._pending: dict[int, tuple[W, float, str]] = {}

    @property
    def in_flight(self) -> int:
        """Calls started and neither answered, expired nor finished."""
        return len(self._pending)

    def room(self) -> int:
        """How many more calls may start now (0 at the ``max_in_flight`` bound)."""
        return max(0, self.max_in_flight - len(self._pending))

    def start(self, type_: str, waiter: W, now: float, timeout_s: float | None = None) -> int:
        """Record a call of ``type_`` due ``timeout_s`` (default: the session's) after ``now``.

        Returns the call's msg_id.  Starting past the bound is the caller's bug.
        """
        if len(self._pending) >= self.max_in_flight:
            raise RuntimeError(f"{self.max_in_flight} calls already in flight")
        self._last_id += 1
        msg_id = self._last_id
        due = now + (self.timeout_s if timeout_s is None else timeout_s)
        self._pending[msg_id] = (waiter, due, type_)
        return msg_id

    def match(self, in_reply_to: int) -> W | None:
        """The waiter of the call a reply answers, taken off the map; None if there is none."""
        entry = self._pending.pop(in_reply_to, None)
        return None if entry is None else entry[0]

    def finish(self, msg_id: int) -> None:
        """Forget a call (answered, abandoned or never sent); a no-op if already gone."""
        self._pending.pop(msg_id, None)

    def expire(self, now: float) -> list[tuple[W, str]]:
        """Take every call whose deadline is ``now`` or earlier: ``(waiter, type)`` each."""
        due = [k for k, (_w, deadline, _t) in self._pending.items() if deadline <= now]
        out = []
        for msg_id in due:
            waiter, _deadline, type_ = self._pending.pop(msg_id)
            out.append((waiter, type_))
        return out

    def fail_all(self) -> list[W]:
        """Take every pending call (the connection is gone); return their waiters."""
        waiters = [w for w, _d, _t in self._pending.values()]
        self._pending.clear()
        return waiters
