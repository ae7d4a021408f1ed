"""How close to raw msgpack is the protocol layer? Frames per second, and ratios.

Every RPC is encoded once and decoded once, so framing and validation bound
the message rate of a service. Each case is timed against bare msgpack
(`packb` / `unpackb` of the same envelope) in the same process, interleaved
and best-of-`repeat`, so the ratios compare across machines; a ratio of 1.0
means the protocol adds nothing. The message is a request with a 10-field body.

    python bench/bench_protocol.py [--n 100000] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]
from kernsim.protocol import (
    Envelope,
    FrameDecoder,
    MessageSchema,
    default_registry,
    encode_frame,
    parse_fields,
)

BODY: dict[str, Any] = {
    "entry": 0x1F40,
    "page": 4711,
    "mapcount": 1,
    "refcount": 3,
    "flags": 0x45,
    "memcg": "cg0",
    "dirty": False,
    "delay_s": 0.004,
    "pages": [1, 2, 3, 4],
    "cpu": 1,
}
SCHEMA = MessageSchema(
    "bench_primitive",
    parse_fields(
        "entry:int", "page:int", "mapcount:int", "refcount:int", "flags:int",
        "memcg:str", "dirty:bool", "delay_s:float", "pages:list_int", "cpu:int",
    ),
    parse_fields("ret:int"),
)  # fmt: skip
ENV = Envelope("cpu0", "mm", 123456, None, "bench_primitive", BODY)
BATCH = 64


def cases() -> dict[str, tuple[Callable[[], object], Callable[[], object], int]]:
    """name -> (protocol call, bare msgpack baseline, frames per call)."""
    wire = ENV.to_wire()
    payload = msgpack.packb(wire)
    frame = encode_frame(wire)
    batch = frame * BATCH
    decoder = FrameDecoder()
    registry = default_registry()
    registry.register(SCHEMA)

    def receive() -> object:
        # The whole receive path of one request: frame, envelope, schema.
        env = Envelope.from_wire(decoder.feed(frame)[0])
        return registry.validate_request(env)

    def bare_batch() -> object:
        return [msgpack.unpackb(payload) for _ in range(BATCH)]

    def bare_decode() -> object:
        return msgpack.unpackb(payload)

    return {
        "encode": (lambda: encode_frame(ENV.to_wire()), lambda: msgpack.packb(wire), 1),
        "decode, 1 frame per feed": (lambda: decoder.feed(frame), bare_decode, 1),
        f"decode, {BATCH} frames per feed": (lambda: decoder.feed(batch), bare_batch, BATCH),
        "decode + from_wire + validate": (receive, bare_decode, 1),
    }


def best_ns(fn: Callable[[], object], calls: int) -> float:
    return min(timeit.repeat(fn, number=calls, repeat=1)) / calls * 1e9


def run(n: int, repeat: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, (proto, bare, frames) in cases().items():
        calls = max(1, n // frames)
        proto_ns, bare_ns = [], []
        for _ in range(repeat):  # interleaved, so machine noise hits both alike
            proto_ns.append(best_ns(proto, calls))
            bare_ns.append(best_ns(bare, calls))
        per_frame_ns = min(proto_ns) / frames
        baseline_ns = min(bare_ns) / frames
        results[name] = {
            "frames_per_s": 1e9 / per_frame_ns,
            "baseline_frames_per_s": 1e9 / baseline_ns,
            "ns_per_frame": per_frame_ns,
            "ratio": per_frame_ns / baseline_ns,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="frames per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings per case (best kept)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = run(args.n, args.repeat)
    print(f"{'case':34} {'frames/s':>12} {'msgpack/s':>12} {'ns/frame':>9} {'ratio':>6}")
    for name, r in results.items():
        print(
            f"{name:34} {r['frames_per_s']:12,.0f} {r['baseline_frames_per_s']:12,.0f}"
            f" {r['ns_per_frame']:9.0f} {r['ratio']:6.2f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
