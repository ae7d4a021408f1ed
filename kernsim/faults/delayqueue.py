"""A delivery queue: messages come out when their time has come, in order.

Reordering on the network is nothing more than this: each message gets its
own delivery time and a heap releases them by (deliver_at_s, seq). The seq
is a push counter, so messages due at the same instant leave in the order
they were pushed, and the same pushes always give the same pops.

Messages on a held link, or to a paused service, are parked rather than
returned. On release/resume they go back on the heap with their original
key, so they come out in their delivery order, ahead of anything due later.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

from kernsim.faults.controls import Controls, Link

T = TypeVar("T")

# (deliver_at_s, seq, item, link, dest); seq is unique, so comparison never
# reaches the item and T needs no ordering.
_Entry = tuple[float, int, T, Link | None, str | None]


class DelayQueue(Generic[T]):
    """Heap of items keyed by delivery time, honoring the shared `Controls`.

    Usage on a virtual clock: `push` each sent message with the verdict's
    `deliver_at_s`; advance the clock to `next_deadline_s()`; deliver
    `pop_ready(now_s)`. With `controls=None` nothing is ever held.
    """

    __slots__ = ("_controls", "_heap", "_parked", "_parked_version", "_popped", "_pushed", "_seq")

    def __init__(self, controls: Controls | None = None) -> None:
        self._controls = controls
        self._heap: list[_Entry[T]] = []
        self._parked: list[_Entry[T]] = []
        self._parked_version = controls.version if controls is not None else 0
        self._seq = 0
        self._pushed = 0
        self._popped = 0

    def push(
        self,
        item: T,
        deliver_at_s: float,
        *,
        link: Link | None = None,
        dest: str | None = None,
    ) -> None:
        """Queue `item` for `deliver_at_s`. `dest` defaults to `link[1]`."""
        if dest is None and link is not None:
            dest = link[1]
        heapq.heappush(self._heap, (deliver_at_s, self._seq, item, link, dest))
        self._seq += 1
        self._pushed += 1

    def pop_ready(self, now_s: float) -> list[T]:
        """Every unblocked item due at or before `now_s`, in delivery order."""
        self._unpark_if_released()
        heap, ready = self._heap, []
        while heap and heap[0][0] <= now_s:
            entry = heapq.heappop(heap)
            if self._blocked(entry):
                self._parked.append(entry)
            else:
                ready.append(entry[2])
        self._popped += len(ready)
        return ready

    def next_deadline_s(self) -> float | None:
        """Delivery time of the earliest unblocked item, or None when there
        is none (everything left is held: the caller must release first)."""
        self._unpark_if_released()
        heap = self._heap
        # Parking blocked items early is invisible to callers (they keep their
        # key) and spares a simulation a wake-up that would deliver nothing.
        while heap and self._blocked(heap[0]):
            self._parked.append(heapq.heappop(heap))
        return heap[0][0] if heap else None

    def __len__(self) -> int:
        return len(self._heap) + len(self._parked)

    def statistics(self) -> dict[str, int]:
        return {
            "queued": len(self),
            "parked": len(self._parked),
            "pushed": self._pushed,
            "popped": self._popped,
        }

    def _blocked(self, entry: _Entry[T]) -> bool:
        controls = self._controls
        return controls is not None and controls.active and controls.is_blocked(entry[3], entry[4])

    def _unpark_if_released(self) -> None:
        controls = self._controls
        if controls is None or controls.version == self._parked_version:
            return
        self._parked_version = controls.version
        # Everything goes back; what is still blocked is parked again on the
        # next pass. Releases are rare, so simplicity beats bookkeeping here.
        for entry in self._parked:
            heapq.heappush(self._heap, entry)
        self._parked.clear()
