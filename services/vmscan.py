"""The ``vmscan`` service: kswapd, and the global reclaim pass the launcher asks for.

Memcg (direct) reclaim runs on the CPU of the task that charges, as in the
kernel; this service runs what the kernel runs in its own threads.
"""

from __future__ import annotations

import sys

from kernsim.services.runner import RunnerService
from kernsim.services.service import main


class VmscanService(RunnerService):
    name = "vmscan"

    def base(self, path: str) -> str:
        return path  # kswapd runs as "kswapd", global reclaim as "global_reclaim"


if __name__ == "__main__":
    main(VmscanService, sys.argv[1:])
