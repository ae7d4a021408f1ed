"""Interleavings that need a lock held across steps, or two threads of one mm, each
forced by a scripted schedule and checked against the 2.6.30 end state."""

from __future__ import annotations

import pytest

from kernsim.check.invariants import quiescent_violations
from kernsim.explore.job import Job, execute
from kernsim.faults import load_profile
from kernsim.model.fork import mm_users_inc
from kernsim.model.madvise import madvise_dontneed
from kernsim.model.memcontrol import mem_cgroup_attach_task
from kernsim.model.memory import PTE_SWAP, do_page_fault
from kernsim.model.mm import MmConfig
from kernsim.model.mm_types import PAGE_SIZE
from kernsim.model.mmap import do_munmap
from kernsim.model.port import Cpu
from kernsim.model.swap import lru_add_drain_all
from kernsim.model.vmscan import ScanControl, shrink_page_list
from kernsim.sim.cpu import SimCpu
from kernsim.sim.engine import TraceEvent
from kernsim.sim.scripted import Run, call
from kernsim.sim.scripting import Script, isolate
from kernsim.sim.world import World
from kernsim.variants import get_variant
from kernsim.workloads import touch


def _world(variant: str = "none") -> World:
    var = get_variant(variant)
    return World.create(
        var,
        1,
        load_profile("none"),
        MmConfig(total_pages=1024, swap_pages=16, swap_has_cache=var.swap_has_cache),
    )


def _steps(trace: list[TraceEvent], cpu: str) -> list[tuple[str, object]]:
    return [(e.prim, e.result) for e in trace if e.cpu == cpu]


def test_pageout_sees_free_swap_and_cache_reference_and_keeps_the_page() -> None:
    """Issue 12 section 2.  kswapd has added A's page P to the swap cache and unmapped it
    (swap_map 2: A's swap pte + the cache).  A exits: free_swap_and_cache() takes
    swap_lock, swap_entry_free() leaves 1 (cache only) and find_get_page() takes a
    reference.  pageout()'s lock-free is_page_cache_freeable() now sees page_count 3
    (cache, isolation, find_get_page) and answers PAGE_KEEP: keep_locked.  A's
    trylock_page() then fails on kswapd's lock and drops its reference.

    2.6.30 end state (mm/vmscan.c pageout(), mm/swapfile.c free_swap_and_cache()): P
    stays in the swap cache, dirty, unmapped, still charged; swap_map 1; nothing freed.
    """
    w = _world()
    a = Script(w).task("A")
    pfn = Script(w).fault(a, 0)
    pte = w.engine.mm.mms[a.task].ptes[0]
    pte.young = False  # aged: try_to_unmap succeeds
    k = Script(w).kthread()

    async def reclaim() -> None:
        await shrink_page_list(k, await isolate(k, [pfn], True), ScanControl())

    Script(w).race(
        [
            Run("kswapd", through=call("try_to_unmap", a0=pfn)),
            Run("A", through=call("find_get_page")),
            Run("kswapd", through=call("pageout_prepare", a0=pfn)),
            Run("A"),
        ],
        [(k, reclaim()), (a, Script(w).exit(a))],
    )
    trace = w.engine.trace
    assert ("pageout_prepare", "keep") in _steps(trace, "kswapd")
    zap = _steps(trace, "A")
    i = zap.index(("find_get_page", pfn))
    assert zap[i - 1][0] == "swap_entry_free_locked" and zap[i - 1][1] == (1, 0, True)
    assert zap[i + 1 : i + 4] == [
        ("trylock_page", False),
        ("page_cache_release", False),
        ("spin_unlock_swap_lock", None),
    ]
    assert w.engine.results == {"keep_locked": 1}
    mm = w.engine.mm
    page = mm.pages[pfn]
    entry = page.private
    assert page.swapcache and page.dirty and not page.mapcount and not page.locked
    assert page.count == 1  # the swap cache's reference only
    assert mm.swap.swap_map[entry] == 1
    g = w.engine.memcg.group(w.memcg_id)
    assert g.res.usage == g.memsw.usage == PAGE_SIZE  # still charged, as a cache page


def test_pageout_without_the_zap_writes_the_page() -> None:
    """The same reclaim with no zap in its way: page_count is 2 and pageout() writes
    (the control of the test above: PAGE_KEEP came from find_get_page's reference)."""
    w = _world()
    a = Script(w).task("A")
    pfn = Script(w).fault(a, 0)
    w.engine.mm.mms[a.task].ptes[0].young = False
    k = Script(w).kthread()

    async def reclaim() -> None:
        await shrink_page_list(k, await isolate(k, [pfn], True), ScanControl())

    Script(w).run(k, reclaim())
    assert ("pageout_prepare", "write") in _steps(w.engine.trace, "kswapd")
    assert w.engine.results == {"keep": 1}


def _thread(w: World, parent: SimCpu, name: str) -> SimCpu:
    """clone(CLONE_VM): a task sharing ``parent``'s mm, in /A."""
    cpu = w.new_task_cpu(name)
    w.mm_of[cpu.task] = parent.task

    async def clone() -> None:
        await parent.call(mm_users_inc, parent.task, cpu.task)
        await parent.call(mem_cgroup_attach_task, w.memcg_id, cpu.task)

    Script(w).run(parent, clone())
    return cpu


def _w6(variant: str, window: str = "charge") -> tuple[World, int, int]:
    """A race a review found (its W6).  Thread A faults on its swapped-out page (swap
    entry e) and reads it into a new cache page P.  Thread T2 of the same mm zaps the swap pte with
    MADV_DONTNEED (mmap_sem read, beside A's fault): swap_entry_free() takes e from 2
    to 1, find_get_page() finds P, trylock_page() fails -- on do_swap_page()'s lock
    while A charges P (``window="charge"``), or on the read's lock while P is under
    I/O (``"read"``).  A's pte_same() fails: out_nomap cancels the charge."""
    w = _world(variant)
    a = Script(w).task("A")
    pfn = Script(w).fault(a, 0)
    Script(w).swap_out([pfn])
    entry = w.engine.mm.mms[a.task].ptes[0].val
    t2 = _thread(w, a, "T2")
    irq = "irq1"  # the swap-out's write completed on "irq": the read completes here
    if window == "charge":
        script = [
            Run("A", until=call("lock_page")),
            Run(irq),  # end_swap_bio_read(): uptodate, (v5: the hint), unlock
            Run("A", through=call("res_counter_charge")),
            Run("T2"),
            Run("A"),
        ]
    else:
        script = [Run("A", until=call("lock_page")), Run("T2"), Run(irq), Run("A")]
    Script(w).race(
        script,
        [(a, do_page_fault(a, a.task, 0, True)), (t2, madvise_dontneed(t2, a.task, 0, 1))],
    )
    trace = [(e.cpu, e.prim) for e in w.engine.trace]
    read_done = trace.index((irq, "unlock_page"))
    zap = trace.index(("T2", "swap_entry_free_locked"))
    assert (read_done < zap) is (window == "charge"), "the script missed its window"
    return w, a.task, entry


def test_madvise_dontneed_beside_do_swap_page_leaks_memsw_in_2_6_30() -> None:
    """2.6.30 end state (mm/memory.c do_swap_page() out_nomap, mm/swapfile.c
    free_swap_and_cache()): the new page P is in the swap cache of e, swap_map 1, not
    mapped, uncharged; swap_cgroup still charges e's memsw to /A.  Once the process
    exits, memory.memsw.usage_in_bytes stays one page above memory.usage_in_bytes."""
    w, task, entry = _w6("none")
    trace = w.engine.trace
    t2 = _steps(trace, "T2")
    assert ("trylock_page", False) in t2
    assert ("pte_same", False) in _steps(trace, "A")
    mm = w.engine.mm
    pfn = mm.swapper_space[entry]
    page = mm.pages[pfn]
    assert page.swapcache and not page.mapcount and mm.swap.swap_map[entry] == 1
    pc = w.engine.memcg.page_cgroup.get(pfn)
    assert pc is None or not pc.used  # uncharged: out_nomap cancelled the charge
    assert mm.swap.swap_cgroup[entry] == w.memcg_id
    assert task in mm.mms and not mm.mms[task].ptes  # A's mm: nothing mapped any more
    for cpu in list(w.tasks.values()):
        Script(w).run(cpu, w.exit_task(cpu))
    kinds = {v.kind for v in quiescent_violations(mm, w.engine.memcg)}
    assert "memsw_leak" in kinds


def test_v5_misses_it_its_end_of_read_check_ran_before_the_zap() -> None:
    """v5's mem_cgroup_staleswap_hint() runs at end_swap_bio_read(), when swap_map is
    still 2 (A's pte and the cache): the page is not queued, and the leak stays."""
    w, _, _ = _w6("v5")
    hints = [e.result for e in w.engine.trace if e.prim == "mem_cgroup_staleswap_hint"]
    assert hints[-1] is True  # the read's: "stable", not queued for the worker
    for cpu in list(w.tasks.values()):
        Script(w).run(cpu, w.exit_task(cpu))
    w.run_to_idle()
    kinds = {v.kind for v in quiescent_violations(w.engine.mm, w.engine.memcg)}
    assert "memsw_leak" in kinds


@pytest.mark.parametrize(("variant", "leak"), [("none", True), ("v5", False)])
def test_zap_during_the_read_leaks_in_2_6_30_and_v5_catches_it(variant: str, leak: bool) -> None:
    """The window race-threads' search found (docs/threads.md): the zap's trylock fails on
    the read's lock.  2.6.30 leaks as above; v5's hint at the end of that read sees
    swap_map 1, queues the page, and its worker frees it."""
    w, _, _ = _w6(variant, window="read")
    assert ("pte_same", False) in _steps(w.engine.trace, "A")
    for cpu in list(w.tasks.values()):
        Script(w).run(cpu, w.exit_task(cpu))
    w.run_to_idle()
    kinds = {v.kind for v in quiescent_violations(w.engine.mm, w.engine.memcg)}
    assert ("memsw_leak" in kinds) is leak


def test_the_same_schedule_in_2_6_31_uncharges_memsw() -> None:
    """2.6.31 ("memcg: fix swap accounting"): swap_entry_free() drops the count to 0
    (SWAP_HAS_CACHE left) and uncharges memsw at once: no memsw leak, the cache page is
    only a stale page for reclaim to free."""
    w, _, entry = _w6("upstream")
    assert w.engine.mm.swap.swap_cgroup[entry] == 0
    for cpu in list(w.tasks.values()):
        Script(w).run(cpu, w.exit_task(cpu))
    kinds = {v.kind for v in quiescent_violations(w.engine.mm, w.engine.memcg)}
    assert "memsw_leak" not in kinds


def _two_thread_zaps(trace: list[TraceEvent]) -> list[int]:
    """Slots where one CPU zapped the swap pte (mm, addr) of slot e, its
    free_swap_and_cache() trylock failed, and another CPU faulting on that same pte
    of that same mm then failed pte_same(): two threads of one mm."""
    slots = []
    for i, ev in enumerate(trace):
        if ev.prim != "zap_pte" or ev.result[0] != PTE_SWAP:
            continue
        mm, addr, entry = ev.args[0], ev.args[1], ev.result[1]
        mine = [e for e in trace[i + 1 :] if e.cpu == ev.cpu][:6]
        if ("trylock_page", False) not in [(e.prim, e.result) for e in mine]:
            continue
        fault = next(
            (e for e in trace[i:] if e.prim == "pte_same" and e.args == (mm, addr, entry)), None
        )
        if fault is not None and fault.cpu != ev.cpu and fault.result is False:
            slots.append(entry)
    return slots


def test_random_search_on_race_threads_finds_the_two_thread_leak() -> None:
    """docs/threads.md: among the first five schedules of `kernsim explore --scenario
    race-threads --variant none --strategy random`, one is a memsw leak whose leaked
    slot is a swap pte that one thread zapped while another thread of the same mm was
    faulting it in."""
    found = []
    for seed in range(5):
        run = execute(Job("race-threads", "none", seed, "random"))
        assert run.result is not None and run.result.world is not None
        leaked = {s for v in run.result.violations if v.kind == "memsw_leak" for s in v.slots}
        if leaked & set(_two_thread_zaps(run.result.world.engine.trace)):
            found.append(seed)
    assert found, "no two-thread memsw leak in the first five schedules"


def _drain_all(w: World) -> None:
    """lru_add_drain_all(), as the checker's quiescence does."""
    k = Script(w).kthread()

    async def drain() -> None:
        await k.call(lru_add_drain_all)

    Script(w).run(k, drain())


def test_threads_share_the_mm_and_the_last_user_tears_it_down() -> None:
    """clone(CLONE_VM): the thread faults into the leader's page tables; whichever exits
    first only drops mm_users, the last one runs exit_mmap()."""
    w = _world()

    async def leader(cpu: Cpu) -> None:
        await touch(cpu, 0)

    async def thread(cpu: Cpu, mm: int) -> None:
        await touch(cpu, 1, mm)
        await cpu.sleep(0.01)  # still running when the leader exits

    lead = w.spawn_task(leader, threads=[thread])
    w.run_to_idle()
    trace = w.engine.trace
    maps = [e.args[:2] for e in trace if e.prim == "do_anonymous_page_map"]
    assert sorted(maps) == [(lead.task, 0), (lead.task, 1)]
    drops = [(e.cpu, e.result) for e in trace if e.prim == "mm_users_dec_and_test"]
    assert drops == [(lead.name, False), ("task2", True)]
    assert [e.cpu for e in trace if e.prim == "mmput"] == ["task2"]
    assert not w.engine.mm.mms and not w.tasks and w.exited == 2
    _drain_all(w)
    assert quiescent_violations(w.engine.mm, w.engine.memcg) == []


def test_the_oom_killer_kills_the_whole_thread_group() -> None:
    w = _world()

    async def wait(cpu: Cpu) -> None:
        while not cpu.fatal_signal_pending():
            await cpu.sleep(0.001)

    async def wait_thread(cpu: Cpu, mm: int) -> None:
        await wait(cpu)

    a = w.spawn_task(wait, threads=[wait_thread])
    b = w.spawn_task(wait)
    w.engine.run(until_s=0.0005)
    w.oom_kill(a.task)
    group = sorted(t for t, mm in w.mm_of.items() if mm == a.task)
    assert len(group) == 2 and b.task not in group
    assert sorted(t for t, c in w.tasks.items() if c.killed) == group
    assert not b.killed
    w.kill_all()
    w.run_to_idle()
    assert not w.tasks


def test_munmap_waits_for_a_fault_and_madvise_does_not() -> None:
    """munmap() takes mmap_sem for write: it waits until the other thread's fault has
    done up_read().  MADV_DONTNEED takes it for read and runs beside the fault."""
    for zap, beside in ((do_munmap, False), (madvise_dontneed, True)):
        w = _world()
        a = Script(w).task("A")
        t2 = _thread(w, a, "T2")
        Script(w).race(
            [Run("A", through=call("down_read")), Run("T2"), Run("A")],
            [(a, do_page_fault(a, a.task, 0, True)), (t2, zap(t2, a.task, 0, 1))],
        )
        trace = [(e.cpu, e.prim) for e in w.engine.trace]
        a_up = trace.index(("A", "up_read"))
        t2_zap = trace.index(("T2", "pte_offset_map_lock"))
        assert (t2_zap < a_up) is beside
        assert (("T2", "down_write") in trace) is not beside
