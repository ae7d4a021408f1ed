"""The cgroupfs writes 2.6.30 accepts (mm/memcontrol.c mem_cgroup_files[]), memory.stat,
the directory listings, and the tasks service's HTTP commands."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from kernsim.services.launch.cluster import Cluster

from tests.support.admin import get_text, put_text
from tests.support.polling import eventually

PAGE = 4096


async def post(url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, str | None) else json.dumps(body)
    async with aiohttp.ClientSession() as http, http.post(url, data=data) as resp:
        return resp.status, await resp.json()


async def read(c: Cluster, file: str, group: str = "A") -> str:
    status, text = await get_text(f"{c.admin_url('memcg')}/cgroup/{group}/{file}")
    assert status == 200, (file, text)
    return text


async def load_and_wait(c: Cluster, seconds: float = 6.0) -> None:
    tasks = c.admin_url("tasks")
    status, body = await post(tasks + "/workload", {"scenario": "kamezawa", "duration_s": seconds})
    assert status == 202 and body["started"] is True, body

    async def quiet() -> bool:
        return bool((await get_json(tasks + "/workload"))["quiescent"])

    # Each kill may wait up to ten periods for the tasks' progress (kernsim/workloads.py).
    await eventually(quiet, timeout_s=seconds * 12 + 60, every_s=0.3)


async def get_json(url: str) -> dict[str, Any]:
    status, text = await get_text(url)
    assert status == 200, text
    out: dict[str, Any] = json.loads(text)
    return out


async def test_writes_2_6_30_accepts(idle_cluster: Cluster) -> None:
    c = idle_cluster
    m = c.admin_url("memcg") + "/cgroup"
    await load_and_wait(c)
    usage = int(await read(c, "memory.usage_in_bytes"))
    assert int(await read(c, "memory.max_usage_in_bytes")) >= 512 * PAGE  # hit the 2M limit
    assert int(await read(c, "memory.failcnt")) > 0
    # Triggers: any write resets (res_counter_reset_max / _failcnt).
    for file in ("memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes"):
        assert (await put_text(f"{m}/A/{file}", "0"))[0] == 200
    assert int(await read(c, "memory.max_usage_in_bytes")) == usage
    assert int(await read(c, "memory.memsw.max_usage_in_bytes")) == int(
        await read(c, "memory.memsw.usage_in_bytes")
    )
    for file in ("memory.failcnt", "memory.memsw.failcnt"):
        assert (await put_text(f"{m}/A/{file}", "0"))[0] == 200
        assert await read(c, file) == "0\n"
    # swappiness: 0-100 in a child group; the root's is vm.swappiness.
    assert await read(c, "memory.swappiness") == "60\n"
    assert (await put_text(f"{m}/A/memory.swappiness", "30\n"))[0] == 200
    assert await read(c, "memory.swappiness") == "30\n"
    for group, value in (("A", "101"), ("A", "-1"), ("A", "x"), ("root", "10")):
        status, text = await put_text(f"{m}/{group}/memory.swappiness", value)
        assert (status, json.loads(text)["error"]) == (400, "EINVAL"), (group, value, text)
    assert await read(c, "memory.swappiness") == "30\n"
    # use_hierarchy: 0 or 1; the root has a child (/A), so EBUSY there.
    assert (await put_text(f"{m}/A/memory.use_hierarchy", "1"))[0] == 200
    assert await read(c, "memory.use_hierarchy") == "1\n"
    assert json.loads((await put_text(f"{m}/A/memory.use_hierarchy", "2"))[1])["error"] == "EINVAL"
    status, text = await put_text(f"{m}/root/memory.use_hierarchy", "1")
    assert (status, json.loads(text)["error"]) == (409, "EBUSY")
    # Read-only files refuse a write as a 0444 file does.
    status, text = await put_text(f"{m}/A/memory.usage_in_bytes", "0")
    assert (status, json.loads(text)["error"]) == (403, "EACCES")


async def test_memory_stat_counts_charges(idle_cluster: Cluster) -> None:
    c = idle_cluster
    await load_and_wait(c)
    stat = dict(line.split() for line in (await read(c, "memory.stat")).splitlines())
    rows = list(stat)
    assert rows[:9] == [
        "cache",
        "rss",
        "pgpgin",
        "pgpgout",
        "inactive_anon",
        "active_anon",
        "inactive_file",
        "active_file",
        "unevictable",
    ]
    assert "swap" not in stat  # 2.6.30 has no swap row (2.6.34 added it)
    assert rows[9:11] == ["hierarchical_memory_limit", "hierarchical_memsw_limit"]
    assert int(stat["hierarchical_memory_limit"]) == 2 << 20
    rss, pgin, pgout = int(stat["rss"]), int(stat["pgpgin"]), int(stat["pgpgout"])
    assert pgin > 768 and pgout > 0  # three tasks of 256 pages went in, kills took them out
    assert (pgin - pgout) * PAGE == rss  # every page charged in and not out is still charged
    stats = (await c.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
    assert rss == stats["lru_pages"] * PAGE
    assert stat["total_rss"] == stat["rss"] and stat["cache"] == "0"


async def test_force_empty_reclaims_an_empty_group_and_refuses_a_busy_one(
    idle_cluster: Cluster,
) -> None:
    c = idle_cluster
    m = c.admin_url("memcg") + "/cgroup/A"
    tasks = c.admin_url("tasks")
    status, _ = await post(tasks + "/workload", {"scenario": "kamezawa", "duration_s": 12})
    assert status == 202

    async def running() -> bool:
        return (await read(c, "tasks")) != ""

    await eventually(running, timeout_s=30)
    status, text = await put_text(m + "/memory.force_empty", "0")
    assert (status, json.loads(text)["error"]) == (409, "EBUSY")
    # A second workload while one runs is refused, not queued.
    status, body = await post(tasks + "/workload", {"scenario": "kamezawa", "duration_s": 5})
    assert (status, body["errno"]) == (409, 16)
    status, body = await post(tasks + "/kill_all")
    assert status == 200 and body["killed"] >= 1

    async def stopped() -> bool:
        # The controller starts a new round after a kill: kill until the workload ends.
        await post(tasks + "/kill_all")
        return not (await get_json(tasks + "/workload"))["running"]

    await eventually(stopped, timeout_s=60, every_s=0.5)
    await eventually(lambda: _quiescent(tasks), timeout_s=60, every_s=0.3)  # I/O in flight finishes
    status, text = await put_text(m + "/memory.force_empty", "0")
    assert status == 200, text
    assert await read(c, "memory.usage_in_bytes") == "0\n"


async def _quiescent(tasks: str) -> bool:
    return bool((await get_json(tasks + "/workload"))["quiescent"])


async def test_listings_and_bad_requests(idle_cluster: Cluster) -> None:
    c = idle_cluster
    m = c.admin_url("memcg") + "/cgroup"
    assert (await get_text(m + "/"))[1] == "root/\nA/\n"
    files = (await get_text(m + "/A/"))[1].split()
    assert "memory.force_empty" in files and "memory.memsw.failcnt" in files and "tasks" in files
    status, text = await get_text(m + "/B/memory.stat")
    assert status == 404 and text.startswith("no such cgroup: B")
    tasks = c.admin_url("tasks")
    for body, field in (
        ("{", "not JSON"),
        ("[1]", "JSON object"),
        ({"duration_s": -1}, "duration_s"),
        ({"duration_s": "9"}, "duration_s"),
        ({"seed": -2}, "seed"),
        ({"scenario": "nosuch"}, "nosuch"),
        ({"rounds": 3}, "unknown field"),
    ):
        status, reply = await post(tasks + "/workload", body)
        assert status == 400 and field in reply["error"], (body, reply)
    assert (await get_json(tasks + "/workload"))["running"] is False
