"""PUT /faults: profiles are shipped names or a body, never a server path; bad input is 400.

A review found that ``{"profile": PATH}`` opened any file of the server on
the event loop: a FIFO blocked the service, /dev/zero grew it without bound,
and the answers told which files exist and how they parse.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.processes import ServiceProcess

TIMEOUT = aiohttp.ClientTimeout(total=5)


@pytest_asyncio.fixture
async def mm() -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("mm")
    try:
        await svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


async def _put(svc: ServiceProcess, data: bytes | str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.put(svc.url + "/faults", data=data) as r,
    ):
        text = await r.text()
        return r.status, json.loads(text) if r.status != 413 else text


async def _get(svc: ServiceProcess, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.get(svc.url + path) as r:
        return r.status, await r.json(content_type=None)


async def test_a_fifo_path_neither_blocks_the_service_nor_is_opened(
    mm: ServiceProcess, tmp_path: Path
) -> None:
    fifo = tmp_path / "evil.toml"
    os.mkfifo(fifo)
    status, body = await _put(mm, json.dumps({"profile": str(fifo)}))
    assert status == 400 and "unknown fault profile" in body["error"]
    assert (await _get(mm, "/healthz"))[0] == 200


@pytest.mark.parametrize(
    "path", ["/dev/zero", "/etc/passwd", "/nonexistent/x.toml", "../deploy/faults/lan", "lan.toml"]
)
async def test_a_path_is_refused_without_revealing_anything(mm: ServiceProcess, path: str) -> None:
    rss = mm.rss()
    status, body = await _put(mm, json.dumps({"profile": path}))
    assert status == 400, body
    # The same answer whether the file exists, parses or not: no oracle.
    assert body["error"].startswith(f"unknown fault profile {path!r} (known: ")
    assert "TOML" not in body["error"] and "Errno" not in body["error"]
    assert mm.rss() - rss < 8 << 20


async def test_a_shipped_name_and_a_profile_body_are_accepted(mm: ServiceProcess) -> None:
    status, body = await _put(mm, json.dumps({"profile": "lan"}))
    assert status == 200 and body["profile"]["name"] == "lan"
    latency = {"kind": "constant", "delay_s": 0.001}
    mine = {"name": "mine", "rules": [{"dest": "memcg", "latency": latency}]}
    status, body = await _put(mm, json.dumps({"profile": mine}))
    assert status == 200 and body["profile"]["name"] == "mine", body
    assert (await _get(mm, "/faults"))[1]["profile"]["rules"][0]["dest"] == "memcg"


async def test_rules_set_with_put_are_shown_by_get(mm: ServiceProcess) -> None:
    rules = [{"src": "mm", "dest": "memcg", "latency": {"kind": "constant", "delay_s": 0.002}}]
    status, _ = await _put(mm, json.dumps({"rules": rules}))
    assert status == 200
    shown = (await _get(mm, "/faults"))[1]
    assert [r["dest"] for r in shown["profile"]["rules"]] == ["memcg"]


@pytest.mark.parametrize(
    "doc",
    [
        {"rules": [{"latency": {"kind": "constant", "delay_s": 1e308}}]},
        {
            "rules": [
                {
                    "latency": {
                        "kind": "pareto",
                        "scale_s": 1e300,
                        "alpha": 1.5,
                        "cap_s": float("inf"),
                    }
                }
            ]
        },
        {"rules": [{"latency": {"kind": "uniform", "lo_s": 0, "hi_s": 7200}}]},
        {"profile": {"name": "x", "bio_read": {"kind": "constant", "delay_s": 1e9}}},
        {"pause": {"mm": 1}},
        {"hold": "mm"},
        {"release": [["mm"]]},
        {"profile": 7},
    ],
)
async def test_bad_documents_are_400(mm: ServiceProcess, doc: dict[str, Any]) -> None:
    text = json.dumps(doc).replace("Infinity", "1e999")  # 1e999 parses as inf
    status, body = await _put(mm, text)
    assert status == 400, body
    assert body["error"]


async def test_deeply_nested_json_is_400_not_500(mm: ServiceProcess) -> None:
    status, body = await _put(mm, "[" * 100_000 + "]" * 100_000)
    assert status in (400, 413), body
    status, body = await _put(mm, '{"rules": ' + "[" * 5000 + "]" * 5000 + "}")
    assert status == 400, body


async def test_a_large_body_is_refused(mm: ServiceProcess) -> None:
    status, _ = await _put(mm, json.dumps({"rules": [], "pad": "x" * (128 << 10)}))
    assert status == 413
    assert (await _get(mm, "/healthz"))[0] == 200
