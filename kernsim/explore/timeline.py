"""memory.usage_in_bytes and memory.memsw.usage_in_bytes over virtual time, for a replayed
failure: sampled by an engine observer after every memcg primitive, drawn as a PNG."""

from __future__ import annotations

from pathlib import Path

from kernsim.model.port import PrimitiveInfo
from kernsim.sim.engine import Engine

#: Plot markers: label -> (CPU name prefix, kernel functions): the first event of that
#: CPU, or of one of those functions, starts it.
MARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "a task exits": ("-", ("exit_mmap", "zap_page_range")),
    "all gone: drain, check": ("kworker", ()),
    "global reclaim": ("reclaim", ()),
}


class CounterSampler:
    """Records (t, usage, memsw) of every non-root memcg whenever a memcg primitive ran."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, int, int]]] = {}
        #: When the run's phases began (virtual seconds): the first task exit, the
        #: settle-phase drain before the check, and global reclaim.
        self.marks: dict[str, float] = {}

    def __call__(self, engine: Engine, info: PrimitiveInfo) -> None:
        if len(self.marks) < len(MARKS) and engine.trace:
            ev = engine.trace[-1]
            for label, (cpu, funcs) in MARKS.items():
                if label not in self.marks and (ev.cpu.startswith(cpu) or ev.func in funcs):
                    self.marks[label] = engine.now
        if info.owner != "memcg":
            return
        for g in engine.memcg.groups.values():
            if g.name == "/":
                continue
            series = self.samples.setdefault(g.name, [])
            point = (engine.now, g.res.usage, g.memsw.usage)
            if not series or series[-1][1:] != point[1:]:
                series.append(point)


def plot_usage(path: Path, sampler: CounterSampler, title: str) -> bool:
    """Step plot of usage and memsw.usage per cgroup; False when there is nothing to draw
    or no matplotlib."""
    if not any(sampler.samples.values()):
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, series in sorted(sampler.samples.items()):
        ts = [t * 1e3 for t, _, _ in series]
        ax.step(ts, [u / 1024 for _, u, _ in series], where="post", label=f"{name} usage")
        ax.step(ts, [m / 1024 for _, _, m in series], where="post", linestyle="--",
                label=f"{name} memsw.usage")  # fmt: skip
    for i, (label, t) in enumerate(sorted(sampler.marks.items(), key=lambda kv: kv[1])):
        ax.axvline(t * 1e3, color="grey", linestyle=":", linewidth=1)
        ax.annotate(label, (t * 1e3, 1 - 0.08 * (i + 1)), xycoords=("data", "axes fraction"),
                    fontsize=7, color="dimgrey", ha="right", rotation=0)  # fmt: skip
    ax.set_xlabel("virtual time (ms)")
    ax.set_ylabel("KiB")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
