"""deploy/acceptance.sh (the mail's acceptance test with curl) and ``kernsim faults``
against a local cluster, as README.md shows them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from kernsim.services.launch.cluster import Cluster, free_ports
from kernsim.services.runtime.config import SERVICES

from tests.support.admin import get_text

REPO = Path(__file__).resolve().parents[2]


async def acceptance(c: Cluster, seconds: int = 9) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KERNSIM_MM": c.admin_url("mm"),
        "KERNSIM_MEMCG": c.admin_url("memcg"),
        "KERNSIM_TASKS": c.admin_url("tasks"),
    }
    proc = await asyncio.create_subprocess_exec(
        str(REPO / "deploy" / "acceptance.sh"),
        str(seconds),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 300)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return subprocess.CompletedProcess([], proc.returncode, out.decode(), err.decode())


def reading(out: str, label: str) -> int:
    (line,) = [x for x in out.splitlines() if x.startswith(label)]
    return int(line.split(":", 1)[1].split()[0])


async def test_acceptance_script_under_the_fix() -> None:
    """2.6.31: memsw.usage equals usage after the kill, every time: exit 0."""
    c = Cluster(variant="upstream", scenario="kamezawa", faults="cluster-hdd")
    try:
        await c.start()
        r = await acceptance(c)
        a = (await c.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
    finally:
        await c.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert reading(r.stdout, "tasks left") == 0
    assert reading(r.stdout, "memory.usage_in_bytes") == a["usage_bytes"]
    assert reading(r.stdout, "memory.memsw.usage_in_bytes") == a["memsw_usage_bytes"]
    assert "ok: memsw.usage == usage" in r.stdout


async def test_acceptance_script_reports_what_vanilla_did() -> None:
    """2.6.30: the script's verdict is the cluster's (exit 1 exactly when memsw > usage)."""
    c = Cluster(variant="none", scenario="kamezawa", faults="cluster-hdd")
    try:
        await c.start()
        r = await acceptance(c)
        a = (await c.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
        mm = (await c.rpc("mm", "statistics"))["stats"]
    finally:
        await c.stop()
    leak = a["memsw_usage_bytes"] - a["usage_bytes"]
    assert r.returncode == (1 if leak > 0 else 0), r.stdout + r.stderr
    assert reading(r.stdout, "memory.memsw.usage_in_bytes") == a["memsw_usage_bytes"]
    assert reading(r.stdout, "swap entries in use") == mm["mm"]["swap_slots_used"]
    if leak:
        assert f"FAIL: memsw.usage is {leak} bytes above usage" in r.stdout


async def test_acceptance_script_without_a_cluster_exits_2() -> None:
    port = free_ports(1)[0]
    env = {**os.environ, **{k: f"http://127.0.0.1:{port}" for k in ("KERNSIM_MEMCG",)}}
    r = subprocess.run(
        [str(REPO / "deploy" / "acceptance.sh")], env=env, capture_output=True, text=True
    )
    assert r.returncode == 2 and "acceptance:" in r.stderr
    r = subprocess.run(
        [str(REPO / "deploy" / "acceptance.sh"), "x"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "SECONDS" in r.stderr


def faults(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernsim", "faults", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_faults_command_sets_every_service(idle_cluster: Cluster) -> None:
    c = idle_cluster
    admin = ",".join(c.admin_url(s) for s in SERVICES)

    async def profiles() -> set[str]:
        return {
            json.loads((await get_text(c.admin_url(s) + "/faults"))[1])["profile"]["name"]
            for s in SERVICES
        }

    assert await profiles() == {"none"}
    r = await asyncio.to_thread(faults, "set", "hdd", "--admin", admin)
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == list(SERVICES)
    assert await profiles() == {"hdd"}
    r = await asyncio.to_thread(faults, "show", "--admin", admin, "--json")
    assert [json.loads(line)["profile"]["name"] for line in r.stdout.splitlines()] == ["hdd"] * 6
    # A bad profile is refused before anything is sent.
    r = await asyncio.to_thread(faults, "set", "nosuch", "--admin", admin)
    assert r.returncode == 2 and "unknown fault profile 'nosuch'" in r.stderr
    assert await profiles() == {"hdd"}
    r = await asyncio.to_thread(faults, "reset", "--admin", admin)
    assert r.returncode == 0 and await profiles() == {"none"}
    # A service that does not answer is named; the others still get the change.
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    r = await asyncio.to_thread(faults, "set", "lan", "--admin", f"{admin},{dead}")
    assert r.returncode == 3 and dead in r.stderr
    assert await profiles() == {"lan"}


async def test_every_admin_port_describes_its_api_as_openapi(idle_cluster: Cluster) -> None:
    from openapi_spec_validator import validate

    c = idle_cluster
    docs = {}
    for s in ("mm", "memcg", "tasks"):
        status, text = await get_text(c.admin_url(s) + "/openapi.json")
        assert status == 200
        docs[s] = json.loads(text)
        validate(docs[s])  # raises on a document that is not valid OpenAPI 3.1
    for doc in docs.values():
        assert {"get", "put"} <= set(doc["paths"]["/faults"])
        example = doc["paths"]["/faults"]["put"]["requestBody"]["content"]["application/json"]
        assert example["example"]["profile"] == "hdd"
    assert "put" in docs["memcg"]["paths"]["/cgroup/{name}/{file}"]
    assert "/workload" not in docs["memcg"]["paths"]
    assert {"get", "post"} <= set(docs["tasks"]["paths"]["/workload"])
    # GET / lists every route of that service, its own ones included.
    status, text = await get_text(c.admin_url("memcg") + "/")
    assert status == 200
    listed = json.loads(text)["endpoints"]
    assert {"GET /metrics", "PUT /faults", "PUT /cgroup/{name}/{file}"} <= set(listed)
    assert len(listed) == sum(len(ops) for ops in docs["memcg"]["paths"].values())
    assert "post" in docs["tasks"]["paths"]["/kill_all"]
