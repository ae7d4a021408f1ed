"""Container healthcheck for the kernsim image: exit 0 when healthy, 1 when not.

A service is healthy when its admin port answers ``/healthz`` with 200; the
load generator (no port) when its heartbeat file is fresh.  Standard library
only, so it runs in the image without anything else installed.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request


def healthy() -> bool:
    heartbeat = os.environ.get("KERNSIM_HEARTBEAT")
    if heartbeat:
        max_age_s = float(os.environ.get("KERNSIM_HEARTBEAT_MAX_AGE_S", "30"))
        try:
            return time.time() - os.stat(heartbeat).st_mtime < max_age_s
        except OSError:
            return False
    host = os.environ.get("KERNSIM_HOST", "127.0.0.1")
    port = os.environ.get("KERNSIM_ADMIN_PORT", "0")
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


if __name__ == "__main__":
    sys.exit(0 if healthy() else 1)
