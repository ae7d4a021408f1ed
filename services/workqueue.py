"""The ``workqueue`` service: the kernel's worker thread.

Runs delayed work (v5's stale swap check every HZ/10) and, on request,
lru_add_drain_all() before the launcher checks the invariants.
"""

from __future__ import annotations

import sys

from kernsim.services.runner import RunnerService
from kernsim.services.service import main


class WorkqueueService(RunnerService):
    name = "workqueue"
    cpu_base = "kworker"


if __name__ == "__main__":
    main(WorkqueueService, sys.argv[1:])
