"""A state owner service (mm, memcg): runs primitives, one at a time, and parks sleepers.

Primitives are synchronous functions and the event loop runs one handler at
a time, so each primitive is atomic on its owner: that is the critical
section the kernel holds a spinlock for.  A primitive that would sleep
returns ``WouldBlock(key)`` having changed nothing; the request is parked
under ``key`` and run again each time a later primitive puts ``key`` on the
owner's ``woken`` list (drained after every primitive).  Its reply goes out
only once it has succeeded, which is what the sleeping caller waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kernsim.protocol import Envelope
from kernsim.services.catalog import CODECS, Codec
from kernsim.services.runtime import Body
from kernsim.services.runtime.config import ServiceConfig
from kernsim.services.service import Service

from kernsim.model.port import WouldBlock

Parked = tuple[Codec, list[Any], "asyncio.Future[Body]"]


class OwnerService(Service):
    """Base of mm and memcg; ``state`` is the MmState or MemcgState it owns."""

    def __init__(self, config: ServiceConfig, state: Any) -> None:
        super().__init__(config)
        self.state = state
        self.ops = 0
        self.op_counts: dict[str, int] = {}
        self._waitq: dict[tuple[str, int], list[Parked]] = {}
        for codec in CODECS.values():
            if codec.info.owner == self.name:
                self.node.handlers[codec.type] = self._handler(codec)
        self.node.handlers["snapshot"] = lambda env: {"state": self.snapshot()}

    def _handler(self, codec: Codec) -> Callable[[Envelope], Any]:
        fn = codec.info.fn

        def run(env: Envelope) -> Body | asyncio.Future[Body]:
            args = codec.decode_args(env.body)
            result = fn(self.state, *args)
            self.ops += 1
            if type(result) is WouldBlock:
                fut: asyncio.Future[Body] = self.node.loop.create_future()
                self._waitq.setdefault(result.key, []).append((codec, args, fut))
                return fut
            if self.state.woken:
                self._wake()
            self.after_primitive(codec)
            return codec.encode_result(result)

        return run

    def _wake(self) -> None:
        woken = self.state.woken
        while woken:
            keys = list(woken)
            woken.clear()
            for key in keys:
                for codec, args, fut in self._waitq.pop(key, []):
                    self._retry(codec, args, fut)

    def _retry(self, codec: Codec, args: list[Any], fut: asyncio.Future[Body]) -> None:
        if fut.done():  # the caller timed out or went away
            return
        result = codec.info.fn(self.state, *args)
        self.ops += 1
        if type(result) is WouldBlock:
            self._waitq.setdefault(result.key, []).append((codec, args, fut))
        else:
            fut.set_result(codec.encode_result(result))

    def after_primitive(self, codec: Codec) -> None:
        """Hook for checks that must see every primitive (memcg: memsw >= usage)."""

    @property
    def parked(self) -> int:
        return sum(len(q) for q in self._waitq.values())

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "ops": self.ops, "parked": self.parked}
