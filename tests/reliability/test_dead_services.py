"""kill -9 or SIGSTOP of one service in the middle of ``kernsim run``.

The launcher must notice (a death within 2 s), name the service, stop the
rest and exit 3, leaving a records file whose every line is a whole record.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kernsim.services.launch.records import proc_state

from kernsim.exits import Exit
from tests.support.polling import eventually_fine as eventually
from tests.support.processes import kill_all

EXIT_SERVICE = Exit.SERVICE


def _records(path: Path) -> list[dict[str, Any]]:
    """Every line must be a complete JSON record: the test fails on half of one."""
    if not path.exists():
        return []
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the records file ends in half a record"
    return [json.loads(line) for line in text.splitlines()]


async def _run_and_hit(tmp_path: Path, victim: str, sig: signal.Signals) -> dict[str, Any]:
    out = tmp_path / "run"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kernsim",
        "run",
        "--scenario",
        "kamezawa",
        "--duration",
        "60",
        "--faults",
        "lan",
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    records = out / "records.jsonl"
    pids: list[int] = []
    try:

        async def loaded() -> list[dict[str, Any]]:
            return [r for r in _records(records) if r["kind"] == "progress"]

        await eventually(loaded, timeout_s=60)
        started = next(r for r in _records(records) if r["kind"] == "cluster_started")
        pids = list(started["pids"].values())
        t_hit = time.time()
        os.kill(started["pids"][victim], sig)
        _stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        t_exit = time.time()
        return {
            "rc": proc.returncode,
            "stderr": stderr.decode(),
            "records": _records(records),
            "t_hit": t_hit,
            "t_exit": t_exit,
            "pids": pids,
        }
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        kill_all(pids)


@pytest.mark.parametrize("victim", ["mm", "vmscan"])
async def test_kill_9_is_noticed_named_and_stops_the_rest(tmp_path: Path, victim: str) -> None:
    r = await _run_and_hit(tmp_path, victim, signal.SIGKILL)
    assert r["rc"] == EXIT_SERVICE, r["stderr"]
    assert f"service {victim} exited" in r["stderr"]
    failure = [x for x in r["records"] if x["kind"] == "failure"]
    assert len(failure) == 1 and failure[0]["service"] == victim
    assert failure[0]["ts"] - r["t_hit"] < 2.0, "the death was noticed too late"
    # The trace before the failure is there, whole: start, phases, progress samples.
    kinds = [x["kind"] for x in r["records"]]
    assert kinds[0] == "cluster_started" and "progress" in kinds and kinds[-1] == "failure"
    # Everyone else was stopped: no process of the cluster is left.
    assert all(proc_state(pid) in (None, "Z") for pid in r["pids"])


async def test_stopped_service_is_noticed_through_rpc_timeouts(tmp_path: Path) -> None:
    r = await _run_and_hit(tmp_path, "memcg", signal.SIGSTOP)
    assert r["rc"] == EXIT_SERVICE, r["stderr"]
    assert "service memcg stopped answering" in r["stderr"]
    failure = [x for x in r["records"] if x["kind"] == "failure"]
    assert len(failure) == 1 and failure[0]["service"] == "memcg"
    assert "process is stopped" in failure[0]["why"]
    # The liveness ping's deadline (5 s) plus one ping period, not the 30 s RPC timeout.
    assert failure[0]["ts"] - r["t_hit"] < 10.0
    assert all(proc_state(pid) in (None, "Z") for pid in r["pids"])
