"""The cluster's costs, each as a ratio against a baseline measured in the same run.

1. one RPC round trip through the runtime vs a bare msgpack request/response
   over asyncio streams (goal: <= 1.3x);
2. calls per second with 64 in flight on one connection (goal: >= 100,000);
3. the fault layer's cost per message with no fault set, against a bare
   write (goal: < 10 us);
4. kernel operations per second of the whole cluster (six processes, TCP)
   against the simulation of the same scenario in one process.

Client and server of 1-3 share one event loop and one process, for the
baseline and for the runtime alike, so the ratios compare like with like.

    python bench/bench_cluster.py [--n 20000] [--json bench/results/cluster.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import time
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
from kernsim.services.catalog import registry
from kernsim.services.runtime import Node
from kernsim.services.runtime.faultlayer import FaultLayer
from kernsim.services.runtime.plumbing import loop_factory

from kernsim.faults import load_profile

HOST = "127.0.0.1"
HEADER = struct.Struct(">I")


async def bare_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (n,) = HEADER.unpack(await reader.readexactly(4))
                req = msgpack.unpackb(await reader.readexactly(n))
                out = msgpack.packb({"i": 0, "r": req["i"], "t": "ping_ok", "b": {}})
                writer.write(HEADER.pack(len(out)) + out)
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    return server, server.sockets[0].getsockname()[1]


async def bare_round_trips(port: int, n: int) -> float:
    reader, writer = await asyncio.open_connection(HOST, port)
    t0 = time.perf_counter()
    for i in range(n):
        out = msgpack.packb({"s": "a", "d": "b", "i": i, "t": "ping", "b": {}})
        writer.write(HEADER.pack(len(out)) + out)
        (size,) = HEADER.unpack(await reader.readexactly(4))
        msgpack.unpackb(await reader.readexactly(size))
    dt = time.perf_counter() - t0
    writer.close()
    return dt / n


async def bare_in_flight(port: int, n: int, width: int = 64) -> float:
    """The baseline of item 2: 64 requests in flight, bare frames, a dict of futures."""
    reader, writer = await asyncio.open_connection(HOST, port)
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[None]] = {}

    async def read_replies() -> None:
        unpacker_buf = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            unpacker_buf += data
            pos = 0
            while len(unpacker_buf) - pos >= 4:
                (size,) = HEADER.unpack_from(unpacker_buf, pos)
                if len(unpacker_buf) - pos - 4 < size:
                    break
                reply = msgpack.unpackb(unpacker_buf[pos + 4 : pos + 4 + size])
                pos += 4 + size
                waiting.pop(reply["r"]).set_result(None)
            unpacker_buf = unpacker_buf[pos:]

    ids = iter(range(1 << 62))

    async def worker(k: int) -> None:
        for _ in range(k):
            i = next(ids)
            fut = waiting[i] = loop.create_future()
            out = msgpack.packb({"s": "a", "d": "b", "i": i, "t": "ping", "b": {}})
            writer.write(HEADER.pack(len(out)) + out)
            await fut

    task = asyncio.ensure_future(read_replies())
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n // width) for _ in range(width)))
    rate = (n // width) * width / (time.perf_counter() - t0)
    writer.close()
    await asyncio.gather(task, return_exceptions=True)
    return rate


async def node_pair() -> tuple[Node, Node]:
    server = Node("mm", registry())
    server.handlers["ping"] = lambda env: {}
    port = await server.serve(HOST, 0)
    client = Node("bench", registry(), peers={"mm": (HOST, port)})
    await client.peer("mm")
    return server, client


async def node_round_trips(client: Node, n: int) -> float:
    conn = await client.peer("mm")
    t0 = time.perf_counter()
    for _ in range(n):
        await conn.call("ping", {})
    return (time.perf_counter() - t0) / n


async def node_in_flight(client: Node, n: int, width: int = 64) -> float:
    conn = await client.peer("mm")

    async def worker(k: int) -> None:
        for _ in range(k):
            await conn.call("ping", {})

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n // width) for _ in range(width)))
    return (n // width) * width / (time.perf_counter() - t0)


class _Sink:
    def write(self, frame: bytes) -> None:
        pass


async def fault_layer_cost_s(n: int) -> tuple[float, float]:
    layer = FaultLayer(load_profile("none"), 1)
    sink, frame = _Sink(), b"x" * 40
    t0 = time.perf_counter()
    for _ in range(n):
        sink.write(frame)
    bare = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        layer.send(sink, "tasks", "mm", "page_flags", frame)
    return bare, (time.perf_counter() - t0) / n


async def cluster_ops(duration_s: float) -> dict[str, float]:
    from kernsim.services.launch.cluster import Cluster
    from kernsim.services.launch.launcher import experiment

    from kernsim.sim.run import simulate

    t0 = time.perf_counter()
    sim = simulate("kamezawa", "none", 1, "hdd", params={"rounds": 1}, keep_trace=False)
    sim_rate = sim.events / (time.perf_counter() - t0)
    cluster = Cluster(variant="none", scenario="kamezawa", faults="hdd")
    try:
        await cluster.start()
        r = await experiment(cluster, duration_s)
    finally:
        await cluster.stop()
    rate = r.events / r.virtual_s
    return {
        "cluster_ops_per_s": round(rate),
        "sim_events_per_s": round(sim_rate),
        "ratio": round(rate / sim_rate, 4),
    }


async def main_async(n: int, duration_s: float, rounds: int = 5) -> dict[str, Any]:
    server, port = await bare_server()
    srv, client = await node_pair()
    # Rounds interleave baseline and runtime, so that a noisy neighbour on the
    # machine weighs on both; each figure is the best of its rounds.
    bares, ours_l, rates, bare_rates = [], [], [], []
    for _ in range(rounds):
        bares.append(await bare_round_trips(port, n))
        ours_l.append(await node_round_trips(client, n))
        bare_rates.append(await bare_in_flight(port, n * 5))
        rates.append(await node_in_flight(client, n * 5))
    bare, ours, rate, bare_rate = min(bares), min(ours_l), max(rates), max(bare_rates)
    await client.close()
    await srv.close()
    server.close()
    base_write, faulted = await fault_layer_cost_s(n * 10)
    return {
        "rpc_round_trip": {
            "bare_us": round(bare * 1e6, 2),
            "runtime_us": round(ours * 1e6, 2),
            "ratio": round(ours / bare, 3),
            "goal": "<= 1.3",
        },
        "in_flight_64": {
            "calls_per_s": round(rate),
            "ratio_to_goal": round(rate / 100_000, 3),
            "bare_frames_calls_per_s": round(bare_rate),
            "ratio_to_bare": round(rate / bare_rate, 3),
            "goal": ">= 100000",
        },
        "fault_layer_no_rules": {
            "bare_write_us": round(base_write * 1e6, 3),
            "with_layer_us": round(faulted * 1e6, 3),
            "cost_us": round((faulted - base_write) * 1e6, 3),
            "goal": "< 10 us",
        },
        "cluster_kernel_ops": await cluster_ops(duration_s),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--json", default="bench/results/cluster.json")
    p.add_argument(
        "--event-loop", choices=("asyncio", "uvloop"), default="asyncio",
        help="the loop both the baselines and the runtime run on (compose runs uvloop)",
    )  # fmt: skip
    a = p.parse_args()
    factory = loop_factory(a.event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        out = {"event_loop": a.event_loop, **runner.run(main_async(a.n, a.duration))}
    print(json.dumps(out, indent=2))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
