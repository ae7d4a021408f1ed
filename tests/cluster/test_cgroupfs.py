"""The memcg service's cgroupfs files, /metrics and /statistics tell the same story,
and the limit files accept and refuse what the kernel does."""

from __future__ import annotations

import json
from typing import Any

from kernsim.services.launch.cluster import Cluster
from kernsim.services.runtime.config import SERVICES
from prometheus_client.parser import text_string_to_metric_families

from tests.support.admin import get_text, put_text
from tests.support.polling import eventually

MiB, KiB = 1 << 20, 1 << 10
KERNEL_SERVICES = [s for s in SERVICES if s not in ("mm", "memcg")]


def _sample(metrics_text: str, name: str, cgroup: str = "/A") -> float:
    for fam in text_string_to_metric_families(metrics_text):
        for s in fam.samples:
            if s.name == name and s.labels.get("cgroup") == cgroup:
                return float(s.value)
    raise AssertionError(f"{name}{{cgroup={cgroup}}} not in /metrics")


async def _faults(cluster: Cluster, change: dict[str, Any]) -> None:
    for name in KERNEL_SERVICES:
        status, _ = await put_text(cluster.admin_url(name) + "/faults", json.dumps(change))
        assert status == 200


async def _memcg_ops(cluster: Cluster) -> int:
    return int((await cluster.rpc("memcg", "statistics"))["stats"]["ops"])


async def test_files_metrics_and_statistics_agree_under_load(idle_cluster: Cluster) -> None:
    c = idle_cluster
    await c.rpc("tasks", "start_workload", {"scenario": "kamezawa", "duration_s": 30.0, "seed": 3})
    memcg = c.admin_url("memcg")

    async def charged() -> bool:
        _, text = await get_text(memcg + "/cgroup/A/memory.usage_in_bytes")
        return int(text) > 256 * 4096

    await eventually(charged)
    # Freeze the kernel: every CPU's messages to the state owners are held from now on.
    await _faults(c, {"pause": ["mm", "memcg"]})
    try:
        ops: list[int] = []

        async def settled() -> bool:
            ops.append(await _memcg_ops(c))
            return len(ops) >= 3 and ops[-1] == ops[-3]

        await eventually(settled, every_s=0.2)
        files = {
            f: int((await get_text(f"{memcg}/cgroup/A/memory.{f}"))[1])
            for f in ("usage_in_bytes", "memsw.usage_in_bytes", "limit_in_bytes", "failcnt")
        }
        _, metrics = await get_text(memcg + "/metrics")
        _, stats_text = await get_text(memcg + "/statistics")
        stats = json.loads(stats_text)["cgroups"]["/A"]
        assert files["usage_in_bytes"] > 0 and files["limit_in_bytes"] == 2 * MiB
        assert (
            files["usage_in_bytes"]
            == stats["usage_bytes"]
            == _sample(metrics, "kernsim_memcg_usage_bytes")
        )
        assert (
            files["memsw.usage_in_bytes"]
            == stats["memsw_usage_bytes"]
            == _sample(metrics, "kernsim_memcg_memsw_usage_bytes")
        )
        assert (
            files["limit_in_bytes"]
            == stats["limit_bytes"]
            == _sample(metrics, "kernsim_memcg_limit_bytes")
        )
        assert (
            files["failcnt"] == stats["failcnt"] == _sample(metrics, "kernsim_memcg_failcnt_total")
        )
        leak = files["memsw.usage_in_bytes"] - files["usage_in_bytes"]
        assert max(0, leak) == _sample(metrics, "kernsim_memcg_memsw_leak_bytes")
        _, memory_stat = await get_text(memcg + "/cgroup/A/memory.stat")
        # rss counts committed charges (the memcg LRU, as 2.6.30's MEM_CGROUP_STAT_RSS is
        # counted at commit); usage also holds a charge tried but not yet committed, which
        # a CPU frozen between the two leaves.
        rss = int(memory_stat.split("rss ", 1)[1].split("\n", 1)[0])
        assert rss == stats["lru_pages"] * 4 * KiB and 0 < rss <= files["usage_in_bytes"]
        _, tasks = await get_text(memcg + "/cgroup/A/tasks")
        assert len(tasks.split()) == stats["tasks"] > 0
    finally:
        await _faults(c, {"resume": ["mm", "memcg"]})
        await c.rpc("tasks", "kill_all")


async def test_limit_files_accept_suffixes_and_refuse_what_the_kernel_refuses(
    idle_cluster: Cluster,
) -> None:
    base = idle_cluster.admin_url("memcg") + "/cgroup/A/"

    async def write(file: str, value: str) -> tuple[int, Any]:
        status, text = await put_text(base + file, value)
        return status, json.loads(text) if text else None

    async def read(file: str) -> int:
        return int((await get_text(base + file))[1])

    # memsw cannot go below the (still unlimited) memory limit: lower memory first.
    assert (await write("memory.memsw.limit_in_bytes", "4M"))[1]["errno"] == 22
    assert (await write("memory.limit_in_bytes", "2M"))[0] == 200
    assert (await write("memory.memsw.limit_in_bytes", "4M"))[0] == 200
    assert await read("memory.limit_in_bytes") == 2 * MiB
    assert await read("memory.memsw.limit_in_bytes") == 4 * MiB
    # memsw below the memory limit: the kernel's write returns -EINVAL.
    status, err = await write("memory.memsw.limit_in_bytes", "512K")
    assert (status, err["errno"], err["error"]) == (400, 22, "EINVAL")
    assert await read("memory.memsw.limit_in_bytes") == 4 * MiB
    # The memory limit above memsw: EINVAL as well.
    status, err = await write("memory.limit_in_bytes", "8M")
    assert (status, err["errno"]) == (400, 22)
    # Lowering the memory limit with a K suffix is fine, and so is a plain number.
    assert (await write("memory.limit_in_bytes", "512K"))[0] == 200
    assert await read("memory.limit_in_bytes") == 512 * KiB
    assert (await write("memory.limit_in_bytes", "1048576"))[0] == 200
    assert await read("memory.limit_in_bytes") == MiB
    # Not a size at all, and a read-only file.
    assert (await write("memory.limit_in_bytes", "lots"))[1]["errno"] == 22
    assert (await write("memory.usage_in_bytes", "0"))[0] == 403
    # -1 is unlimited, as in the kernel (memsw first, then memory).
    assert (await write("memory.memsw.limit_in_bytes", "-1"))[0] == 200
    assert (await write("memory.limit_in_bytes", "-1"))[0] == 200
    assert await read("memory.limit_in_bytes") >= 1 << 62  # RESOURCE_MAX, page-rounded
