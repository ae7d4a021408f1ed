"""Scenarios: the machines and workloads the simulation runs.

Load scenarios (a seeded random schedule):
- ``kamezawa``: the v4/v5 mails' reproducer -- memory.limit_in_bytes 2M, three
  tasks that each allocate and touch 1M, all killed every 3 s, in a loop.
  The program (malloc_and_touch) was not posted; ours writes its pages over
  and over, 250 ms apart, so that a kill finds swap-ins (and readahead) in
  flight.  pkill does not wait: the next round starts while the last exits.
- ``nishimura``: swap 50MB, memory limit 32MB, five tasks of 8MB that
  allocate, touch and exit, again and again (LTP page01 in his report).
- ``race``: the smallest setting in which the known races can happen, for
  schedule search: two tasks of three pages over a four-page memcg limit, a
  small swap, killed at a seeded random moment while they fault, reclaim and
  read ahead.
- ``race-threads``: ``race`` with threads: each process has three threads
  sharing its mm; two write its pages, the third drops pages with
  MADV_DONTNEED (mmap_sem held for read, beside the other threads' faults)
  or munmap (held for write).
- ``race-fork``: ``race`` with fork: each task writes its pages and, after each
  of its first three passes, forks a child that shares them (present pages
  write-protected, swapped ones by swap count), writes one of them and exits;
  simulation only (the cluster's tasks service does not fork).

Catalogue scenarios (a scripted schedule that forces one interleaving of
docs/KERNEL.md section 8): ``example-a``, ``example-b``, ``type-1``,
``type-2``; see kernsim.sim.catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernsim.sim.world import World
from kernsim.workloads import kamezawa, nishimura, race, race_fork, race_threads

MiB = 1 << 20
KiB = 1 << 10


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[World, dict[str, Any]], None]
    mm: dict[str, int] = field(default_factory=dict)
    limit_bytes: int | None = None
    memsw_limit_bytes: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    scripted: bool = False
    #: The fault profile used when none is named: swap I/O is slow next to the CPUs.
    faults: str = "none"


def _load(world: World, controller: Callable[..., Any], params: dict[str, Any]) -> None:
    from kernsim.sim.cpu import SimCpu

    world.shell = SimCpu(world.engine, "shell", "tasks", "shell")
    world.engine.start(world.shell, controller(world, params))
    world.engine.run()


def _controlled(controller: Callable[..., Any]) -> Callable[[World, dict[str, Any]], None]:
    return lambda world, params: _load(world, controller, params)


def _catalogue(name: str) -> Callable[[World, dict[str, Any]], None]:
    def run(world: World, params: dict[str, Any]) -> None:
        from kernsim.sim.catalogue import CATALOGUE

        CATALOGUE[name](world)

    return run


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "kamezawa",
            "limit 2M; 3 tasks x 1M allocate and touch; all killed every 3 s, in a loop",
            _controlled(kamezawa),
            mm={"total_pages": 16384, "swap_pages": 4096},
            limit_bytes=2 * MiB,
            params={
                "rounds": 3,
                "tasks": 3,
                "pages": 256,
                "think_s": 0.25,
                "period_s": 3.0,
                "fork_s": 0.002,
            },
            faults="hdd",
        ),
        Scenario(
            "nishimura",
            "swap 50MB, limit 32MB; 5 tasks x 8MB allocate, touch and exit repeatedly",
            _controlled(nishimura),
            mm={"total_pages": 65536, "swap_pages": 12800},
            limit_bytes=32 * MiB,
            params={"tasks": 5, "pages": 2048, "think_s": 0.05, "passes": 2, "generations": 2},
            faults="hdd",
        ),
        Scenario(
            "race",
            "2 tasks x 3 pages over a 4-page limit, 16 swap slots, killed at a random moment",
            _controlled(race),
            mm={"total_pages": 1024, "swap_pages": 16},
            limit_bytes=16 * KiB,
            params={
                "tasks": 2,
                "pages": 3,
                "think_s": 0.0002,
                "kill_min_s": 0.0005,
                "kill_max_s": 0.003,
            },
        ),
        Scenario(
            "race-threads",
            "2 processes x 3 threads (2 write 4 pages, 1 MADV_DONTNEEDs or munmaps 2) "
            "over a 4-page limit, 16 swap slots, killed at a random moment",
            _controlled(race_threads),
            mm={"total_pages": 1024, "swap_pages": 16},
            limit_bytes=16 * KiB,
            params={
                "tasks": 2,
                "pages": 4,
                "think_s": 0.0002,
                "dontneed_pages": 2,
                "dontneed_s": 0.0003,
                "munmap_every": 4,
                "kill_min_s": 0.0005,
                "kill_max_s": 0.003,
            },
        ),
        Scenario(
            "race-fork",
            "2 tasks x 3 pages over a 4-page limit, each forks a child after each of its "
            "first 3 passes that writes one of the pages and exits, 16 swap slots, killed "
            "at a random moment",
            _controlled(race_fork),
            mm={"total_pages": 1024, "swap_pages": 16},
            limit_bytes=16 * KiB,
            params={
                "tasks": 2,
                "pages": 3,
                "think_s": 0.0002,
                "forks": 3,
                "child_passes": 1,
                "child_pages": 1,
                "kill_min_s": 0.0005,
                "kill_max_s": 0.003,
            },
        ),
        *[
            Scenario(
                name,
                summary,
                _catalogue(name),
                mm={"total_pages": 1024, "swap_pages": 16},
                scripted=True,
            )
            for name, summary in [
                ("example-a", "zap vs shrink_page_list holding the page lock (seed, Ex. A)"),
                ("example-b", "zap between readahead's swap_duplicate and add_to_swap_cache"),
                ("type-1", "zap while the readahead page is locked for I/O (Nishimura T1)"),
                ("type-2", "zap between page_referenced and add_to_swap in reclaim (T2)"),
            ]
        ],
    ]
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ValueError(f"unknown scenario {name!r} (known: {known})") from None


# --- Window scenarios: one catalogue window each, for systematic search ----------------
#
# The starting state is built as the catalogue builds it (kernsim.sim.catalogue),
# one code path at a time under the default scheduler; then the two racing code
# paths start together and the search's own strategy decides every interleaving,
# with no script.  Readahead reads as few slots as the window needs: page_cluster
# 2 (an aligned block of 4 slots) holds A's and B's, page_cluster 1 none besides.


def _window(
    setup: Callable[[World], list[tuple[Any, Any]]],
) -> Callable[[World, dict[str, Any]], None]:
    def run(world: World, params: dict[str, Any]) -> None:
        from kernsim.sim.scripted import Scripted
        from kernsim.sim.scripting import Script

        engine = world.engine
        search = engine.strategy
        engine.strategy = Scripted(engine.rng, [])  # the setup: in time order
        starts = setup(world)
        engine.strategy = search
        for cpu, coro in starts:
            engine.start(cpu, coro)
        engine.run()
        Script(world).exit_all()

    return run


def _readahead_window(world: World) -> list[tuple[Any, Any]]:
    """B swaps in eB (reading eA ahead) while A exits: Ex. B and Type-1."""
    from kernsim.model.memory import do_swap_page
    from kernsim.sim.catalogue import two_swapped_tasks
    from kernsim.sim.scripting import Script

    s = Script(world)
    a, b, _, eb = two_swapped_tasks(s)
    return [(b, do_swap_page(b, b.task, 0, eb, True)), (a, s.exit(a))]


def _reclaim_lock_window(world: World) -> list[tuple[Any, Any]]:
    """kswapd reclaims A's written-out swap-cache page while A exits: Ex. A."""
    from kernsim.sim.scripting import Script

    s = Script(world)
    a = s.task("A")
    pfn = s.fault(a, 0)
    kswapd = s.kthread()
    s.run(kswapd, s.reclaim(kswapd, [pfn], drain=True, age=True))
    return [(kswapd, s.reclaim(kswapd, [pfn], drain=False, age=False)), (a, s.exit(a))]


def _reclaim_mapped_window(world: World) -> list[tuple[Any, Any]]:
    """kswapd reclaims A's mapped page while A exits: Type-2."""
    from kernsim.model.vmscan import ScanControl, shrink_page_list
    from kernsim.sim.scripting import Script, isolate

    s = Script(world)
    a = s.task("A")
    pfn = s.fault(a, 0)
    kswapd = s.kthread()

    async def reclaim() -> None:
        await shrink_page_list(kswapd, await isolate(kswapd, [pfn], True), ScanControl())

    return [(kswapd, reclaim()), (a, s.exit(a))]


WINDOW_MM = {"total_pages": 1024, "swap_pages": 16, "page_cluster": 1}
SCENARIOS.update(
    {
        s.name: s
        for s in [
            Scenario(
                "window-readahead",
                "A exits while B swaps in the next slot with readahead (Ex. B, Type-1)",
                _window(_readahead_window),
                mm={**WINDOW_MM, "page_cluster": 2},
            ),
            Scenario(
                "window-example-a",
                "A exits while kswapd reclaims its swap-cache page (Ex. A)",
                _window(_reclaim_lock_window),
                mm=WINDOW_MM,
            ),
            Scenario(
                "window-type-2",
                "A exits while kswapd reclaims its mapped page (Type-2)",
                _window(_reclaim_mapped_window),
                mm=WINDOW_MM,
            ),
        ]
    }
)


def _fork_cow_window(world: World) -> list[tuple[Any, Any]]:
    """A writes the page it shares with its fork child C (do_wp_page()) while C exits and
    kswapd reclaims the page: fork-cow-type-2 (docs/fork.md)."""
    from kernsim.model.memory import handle_mm_fault
    from kernsim.sim.scripting import Script

    s = Script(world)
    a = s.task("A")
    pfn = s.fault(a, 0)
    c = s.fork(a, "C")
    kswapd = s.kthread()
    return [
        (a, handle_mm_fault(a, a.task, 0, True)),
        (c, s.exit(c)),
        (kswapd, s.reclaim(kswapd, [pfn], drain=True)),
    ]


SCENARIOS["window-fork"] = Scenario(
    "window-fork",
    "A writes the page its fork child shares while the child exits and kswapd reclaims it",
    _window(_fork_cow_window),
    mm=WINDOW_MM,
)


def _two_readers(world: World) -> list[tuple[Any, Any]]:
    """Two CPUs that each read A's page flags twice: 3 decisions each (start, 2 reads),
    every one on the same page.  Its schedule count is worked out by hand in
    tests/explore/test_systematic.py."""
    from kernsim.model.filemap import page_flags
    from kernsim.sim.cpu import SimCpu
    from kernsim.sim.scripting import Script

    s = Script(world)
    a = s.task("A")
    pfn = s.fault(a, 0)

    async def reader(cpu: SimCpu) -> None:
        await cpu.call(page_flags, pfn)
        await cpu.call(page_flags, pfn)

    cpus = [SimCpu(world.engine, name, "vmscan", "vmscan") for name in ("r1", "r2")]
    return [(cpu, reader(cpu)) for cpu in cpus]


SCENARIOS["tiny-readers"] = Scenario(
    "tiny-readers",
    "two CPUs read one page's flags twice each (a schedule count to work out by hand)",
    _window(_two_readers),
    mm=WINDOW_MM,
)
