"""One service as its own process, and SIGKILL for what a test left: always stopped."""

from __future__ import annotations

import contextlib
import os
import signal

from kernsim.services.launch.records import rss_bytes

from tests.support.polling import eventually_fine


def kill_all(pids: list[int]) -> None:
    """SIGKILL whatever of ``pids`` still runs (a stopped process dies of SIGKILL too)."""
    for pid in pids:
        if rss_bytes(pid) is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class ServiceProcess:
    """One service as its own process on 127.0.0.1 (no peers), for tests of one service."""

    def __init__(
        self, name: str, token: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        import subprocess
        import sys

        from kernsim.services.launch.cluster import free_ports

        self.name = name
        self.port, self.admin_port = free_ports(2)
        extra = env or {}
        env = {
            **os.environ,
            "KERNSIM_PORT": str(self.port),
            "KERNSIM_ADMIN_PORT": str(self.admin_port),
            "KERNSIM_LOG_LEVEL": "WARNING",
        }
        env.pop("KERNSIM_TOKEN", None)
        if token is not None:
            env["KERNSIM_TOKEN"] = token
        env.update(extra)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"kernsim.services.{name}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def wait_healthy(self) -> None:
        import aiohttp

        async def healthy() -> bool:
            assert self.proc.poll() is None, "the service exited"
            try:
                async with aiohttp.ClientSession() as http, http.get(self.url + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually_fine(healthy, timeout_s=20)

    def rss(self) -> int:
        return rss_bytes(self.proc.pid) or 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
