"""Security defaults: loopback unless a token guards the ports; no pickle or eval anywhere."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from kernsim.protocol import ErrorCode, FrameDecoder, encode_frame
from kernsim.services.runtime.config import InsecureConfig, ServiceConfig, check_exposure

from tests.support.processes import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"

# Anything that can turn bytes into code or arbitrary objects.
FORBIDDEN = re.compile(
    r"\bimport (c?pickle|marshal|shelve|dill|cloudpickle)\b"
    r"|\bfrom (c?pickle|marshal|shelve|dill|cloudpickle) import\b"
    r"|(?<![\w.])(eval|exec)\s*\("
    r"|\byaml\.(unsafe_)?load\s*\("
    r"|\bpickle\.loads?\b"
)


def test_no_pickle_or_eval_in_the_source() -> None:
    files = [p for d in ("kernsim", "services", "protocol") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 40
    hits = []
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    check_exposure(ServiceConfig("mm", host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "", "kernsim-mm"])
def test_anything_else_needs_a_token(host: str) -> None:
    with pytest.raises(InsecureConfig, match="without a token"):
        check_exposure(ServiceConfig("mm", host=host))
    check_exposure(ServiceConfig("mm", host=host, token=TOKEN))


def test_default_is_loopback() -> None:
    assert ServiceConfig.load("mm", [], environ={}).host == "127.0.0.1"


def test_a_service_refuses_to_start_on_a_wildcard_without_a_token() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kernsim.services.mm", "--host", "0.0.0.0"],
        env={"PATH": "/usr/bin:/bin", "KERNSIM_LOG_LEVEL": "INFO"},
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert b"refusing to listen on '0.0.0.0' without a token" in proc.stderr


@pytest_asyncio.fixture
async def guarded() -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("memcg", token=TOKEN)
    try:
        await svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


async def _put(url: str, data: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.put(url, data=data, headers=headers) as r:
        return r.status


async def test_admin_writes_need_the_token(guarded: ServiceProcess) -> None:
    faults, limit = guarded.url + "/faults", guarded.url + "/cgroup/A/memory.limit_in_bytes"
    for url, data in ((faults, '{"profile": "lan"}'), (limit, "2M")):
        assert await _put(url, data, None) == 401
        assert await _put(url, data, "wrong") == 401
        assert await _put(url, data, TOKEN) == 200
    # Reads stay open: Prometheus and healthchecks carry no secret.
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/metrics", "/faults", "/cgroup/A/memory.limit_in_bytes"):
            async with http.get(guarded.url + path) as r:
                assert r.status == 200, path


async def _hello(port: int, token: str | None) -> tuple[dict[str, object], bool]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body: dict[str, object] = {"service": "test", "version": 1}
        if token is not None:
            body["token"] = token
        writer.write(encode_frame({"s": "test", "d": "memcg", "i": 1, "t": "hello", "b": body}))
        decoder, got = FrameDecoder(), []
        while not got:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "closed without a reply"
            got = decoder.feed(data)
        closed = await asyncio.wait_for(reader.read(65536), 5) == b"" if got else False
        return got[0], closed
    finally:
        writer.close()


async def test_hello_needs_the_token(guarded: ServiceProcess) -> None:
    for token in (None, "wrong"):
        reply, closed = await _hello(guarded.port, token)
        assert reply["t"] == "error" and closed
        assert reply["b"]["code"] == ErrorCode.HANDSHAKE_REFUSED  # type: ignore[index]
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    writer.write(
        encode_frame(
            {
                "s": "t",
                "d": "memcg",
                "i": 1,
                "t": "hello",
                "b": {"service": "t", "version": 1, "token": TOKEN},
            }
        )
    )
    data = await asyncio.wait_for(reader.read(65536), 5)
    assert FrameDecoder().feed(data)[0]["t"] == "hello_ok"
    writer.close()
