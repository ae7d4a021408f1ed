"""The ``blockdev`` service: the swap device and its interrupt.

``submit_bio`` queues a bio; after the fault profile's disk latency (possibly
out of order) end_swap_bio_read() / end_swap_bio_write() runs on an ``irq``
CPU of this service, as the kernel runs them in interrupt context.
"""

from __future__ import annotations

import sys
from errno import EINVAL

from kernsim.protocol import Envelope, InvalidArgument
from kernsim.services.runner import RunnerService
from kernsim.services.runtime import Body
from kernsim.services.runtime.config import ServiceConfig
from kernsim.services.service import main

END_IO = {"read": "end_swap_bio_read", "write": "end_swap_bio_write"}


class BlockdevService(RunnerService):
    name = "blockdev"
    cpu_base = "irq"

    def __init__(self, config: ServiceConfig) -> None:
        super().__init__(config)
        self.node.handlers["submit_bio"] = self._submit_bio
        self._bio_hist = {d: self.metrics.bio_latency.labels(direction=d) for d in END_IO}

    def _submit_bio(self, env: Envelope) -> Body:
        rw, pfn = env.body["rw"], env.body["pfn"]
        if rw not in END_IO:
            raise InvalidArgument(f"rw must be read or write, got {rw!r}", errno=EINVAL)
        delay_s = max(0.0, self.fault.bio_complete_at_s(rw) - self.node.loop.time())
        # The sampled latency is what the device takes: observe it when it is drawn.
        self._bio_hist[rw].observe(delay_s)
        self.host.schedule(self.cpu_base, END_IO[rw], [pfn], delay_s)
        return {}


if __name__ == "__main__":
    main(BlockdevService, sys.argv[1:])
