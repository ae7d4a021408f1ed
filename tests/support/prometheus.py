"""A real Prometheus server for a test: started on a free loopback port, always stopped."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from kernsim.services.launch.cluster import HOST, free_ports

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@contextlib.asynccontextmanager
async def prometheus_server(config_yaml: str) -> AsyncIterator[str]:
    """Run Prometheus with ``config_yaml``; yields its base URL, stops it on the way out."""
    port = free_ports(1)[0]
    work = Path(tempfile.mkdtemp(prefix="kernsim-prom-"))
    (work / "prometheus.yml").write_text(config_yaml)
    log = open(work / "prometheus.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address={HOST}:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


async def query(base: str, promql: str) -> tuple[int, list[dict[str, Any]]]:
    """(HTTP status, result) of an instant query; 400 means the PromQL did not parse,
    0 that Prometheus is not listening yet."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(base + "/api/v1/query", params={"query": promql}) as resp,
        ):
            body = await resp.json()
            return resp.status, list(body.get("data", {}).get("result", []))
    except aiohttp.ClientConnectionError:
        return 0, []
