"""The port: how a kernel code path reaches the state it works on.

Theory of operation
-------------------
The kernel's shared memory is split between two state owners, ``mm`` (struct
page, page tables, swap_map, the swap cache, the LRU) and ``memcg`` (the
res_counters, page_cgroup).  Each owner exposes *primitives*: plain
synchronous functions, each one critical section of the kernel (what the
kernel does under one spinlock or with one atomic op).  A primitive runs to
completion on its owner and is never interleaved with another primitive of
the same owner.

Code paths (free_swap_and_cache, shrink_page_list, ...) are ``async def``
functions that take a :class:`Cpu` and ``await cpu.call(primitive, *args)``
for every critical section.  Every ``await`` is a point where another CPU can
run: the deterministic simulation decides who runs next from a seed, the
cluster sends the call as a msgpack message over TCP.  The model itself does
no I/O: only the Cpu implementation behind this interface differs.

A primitive that would sleep (lock_page on a locked page) returns
:class:`WouldBlock`; it must have changed nothing.  The Cpu implementation
parks the caller and runs the primitive again when its owner wakes the key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from kernsim.model.hooks import Hooks

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class WouldBlock:
    """Returned by a primitive that must wait: the caller sleeps on ``key``."""

    key: tuple[str, int]


@dataclass(frozen=True, slots=True)
class PrimitiveInfo:
    name: str
    owner: str  # "mm" or "memcg"
    obj: str  # what the first argument names: "page", "swp", "task", "memcg", ""
    fn: Callable[..., Any]


#: Every primitive of the model, by name (its message type on the wire).
PRIMITIVES: dict[str, PrimitiveInfo] = {}
#: The same, by function, for the hot path of Cpu.call().
PRIMITIVE_BY_FN: dict[Callable[..., Any], PrimitiveInfo] = {}
#: Code paths that another service can be asked to run (bio completions, work items).
CODE_PATHS: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {}


def primitive(owner: str, obj: str = "") -> Callable[[F], F]:
    """Register ``fn`` as a primitive of ``owner``; ``obj`` names its first argument."""

    def register(fn: F) -> F:
        name = fn.__name__
        if name in PRIMITIVES:
            raise ValueError(f"primitive {name} registered twice")
        info = PrimitiveInfo(name, owner, obj, fn)
        PRIMITIVES[name] = info
        PRIMITIVE_BY_FN[fn] = info
        return fn

    return register


def code_path(fn: F) -> F:
    """Register ``fn`` as a code path that can be posted to a service by name."""
    CODE_PATHS[fn.__name__] = fn
    return fn


class Cpu(ABC):
    """One simulated CPU running one kernel code path at a time.

    ``name`` is what the trace and the race diagrams call it (``task1``,
    ``kswapd``, ``irq3``); ``service`` is the service that plays it; ``pvec``
    names its per-CPU pagevecs.
    """

    name: str
    service: str
    pvec: str
    variant: Hooks  # the variant running: vanilla 2.6.30 or a patch's hooks
    memcg: int  # the memcg of the task running here (0 for kernel threads)
    memdie: bool  # TIF_MEMDIE: chosen by the OOM killer, charges bypass the memcg
    task: int  # the task (pid) running here, 0 for kernel threads
    killed: bool  # SIGKILL pending

    def _init_cpu(
        self, name: str, service: str, pvec: str, variant: Hooks, memcg: int, task: int
    ) -> None:
        """The fields every port sets, in one place (SimCpu, RemoteCpu)."""
        self.name = name
        self.service = service
        self.pvec = pvec
        self.variant = variant
        self.memcg = memcg
        self.memdie = False
        self.task = task
        self.killed = False

    @abstractmethod
    def call(
        self, fn: Callable[Concatenate[Any, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[R]:
        """Run one primitive (one critical section) on its owner."""

    @abstractmethod
    def post(self, service: str, path: str, *args: int, delay_s: float = 0.0) -> Awaitable[None]:
        """Ask ``service`` to run code path ``path`` on one of its CPUs after ``delay_s``.

        Used for what the kernel hands to another context: submit_bio() (the
        completion runs in the block device's interrupt), schedule_delayed_work(),
        waking kswapd, an OOM kill.  Fire and forget; never dropped.
        """

    @abstractmethod
    def submit_bio(self, rw: str, pfn: int) -> Awaitable[None]:
        """submit_bio(): the block device completes it after its latency by running
        end_swap_bio_read() or end_swap_bio_write() (``rw`` "read" / "write") on its CPU."""

    @abstractmethod
    def sleep(self, delay_s: float) -> Awaitable[None]:
        """Let time pass on this CPU (a task's think time)."""

    @abstractmethod
    def fatal_signal_pending(self) -> bool:
        """True once this CPU's task has been sent SIGKILL."""

    @abstractmethod
    def note_result(self, label: str) -> None:
        """Count a shrink_page_list() outcome (kernsim_vmscan_results_total{result})."""
