"""The launcher's own death: SIGTERM and SIGKILL of ``kernsim run`` / ``kernsim up``.

SIGTERM (what ``timeout``, CI cancellation and ``docker stop`` send) must stop
the cluster and leave what was measured: a record saying the run was
interrupted, and ``results.json`` with the unfinished run marked incomplete.
SIGKILL cannot be caught, so the services watch their parent themselves (a
lifeline pipe) and exit on their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kernsim.services.launch.records import proc_state

from kernsim.exits import killed_by
from tests.support.polling import eventually_fine as eventually
from tests.support.processes import kill_all

EXIT_SIGTERM = killed_by(signal.SIGTERM)


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(t) for t in text)
    return out


def _gone(pids: list[int]) -> bool:
    return all(proc_state(pid) in (None, "Z") for pid in pids)


async def _start_run(out: Path) -> tuple[asyncio.subprocess.Process, list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "KERNSIM_TOKEN"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernsim", "run", "--duration", "120", "--out", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip

    async def loaded() -> list[dict[str, Any]]:
        assert proc.returncode is None, "kernsim run exited early"
        return [r for r in _records(out / "records.jsonl") if r["kind"] == "progress"]

    try:
        await eventually(loaded, timeout_s=60)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    started = next(r for r in _records(out / "records.jsonl") if r["kind"] == "cluster_started")
    return proc, list(started["pids"].values())


async def test_sigterm_of_run_stops_the_cluster_and_keeps_what_was_measured(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    proc, pids = await _start_run(out)
    try:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == EXIT_SIGTERM, stderr.decode()
        assert "interrupted by SIGTERM" in stderr.decode()
        assert _gone(pids), "services left running after SIGTERM of kernsim run"
        records = _records(out / "records.jsonl")
        assert records[-1]["kind"] == "interrupted" and records[-1]["signal"] == "SIGTERM"
        results = json.loads((out / "results.json").read_text())
        assert results and results[-1]["incomplete"] is True
        assert results[-1]["interrupted_by"] == "SIGTERM" and results[-1]["variant"] == "none"
        assert results[-1]["last_progress"]["ops"] > 0  # what was measured before the signal
        assert (out / "logs" / "none" / "mm.log").exists()  # --out keeps the services' logs
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        kill_all(pids)


async def test_sigkill_of_run_leaves_no_service_behind(tmp_path: Path) -> None:
    proc, pids = await _start_run(tmp_path / "run")
    try:
        proc.kill()
        await proc.wait()

        async def gone() -> bool:
            return _gone(pids)

        # The services notice within 2 s; the deadline leaves room for a loaded machine.
        await eventually(gone, timeout_s=10)
    finally:
        kill_all(pids)


async def _start_up() -> tuple[asyncio.subprocess.Process, list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "KERNSIM_TOKEN"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernsim", "up", "--load",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        while True:  # `up` prints its URLs once every service is healthy
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "kernsim up exited before it was up"
            if line.startswith(b"logs:"):
                break
        return proc, _children(proc.pid)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise


async def test_sigkill_of_up_leaves_no_service_behind() -> None:
    proc, pids = await _start_up()
    try:
        assert len(pids) == 6, pids
        proc.kill()
        await proc.wait()

        async def gone() -> bool:
            return _gone(pids)

        await eventually(gone, timeout_s=10)
    finally:
        kill_all(pids)


async def test_sigterm_of_up_stops_every_service() -> None:
    proc, pids = await _start_up()
    try:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0
        assert _gone(pids)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        kill_all(pids)
