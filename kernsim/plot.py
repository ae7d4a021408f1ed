"""``kernsim plot``: the dashboard's headline panels as a PNG, from Prometheus.

For people without Grafana: one ``query_range`` per series against the
Prometheus that scrapes the cluster (the compose deployment's, or any other),
drawn with matplotlib's Agg backend (no display needed):

- memory.usage vs memory.memsw.usage per cgroup (the headline),
- memsw.usage - usage (the leak, when no task is left),
- stale swap cache pages.

The queries are the dashboard's own (deploy/grafana/build_dashboard.py), so the
picture and the Grafana panel show the same numbers.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: One series per stack carrying its kernel variant (deploy/grafana/build_dashboard.py's join).
_VARIANT = "max by (stack, variant) (kernsim_build_info)"


def _by_variant(expr: str) -> str:
    return f"({expr}) * on (stack) group_left (variant) {_VARIANT}"


#: (panel title, [(PromQL, legend template)], unit): a subset of the dashboard's panels,
#: each series named by its kernel variant (none, upstream, ...).
PANELS: tuple[tuple[str, tuple[tuple[str, str], ...], str], ...] = (
    (
        "memory.usage vs memory.memsw.usage per cgroup",
        (
            (_by_variant('kernsim_memcg_usage_bytes{cgroup!="/"}'), "{variant} {cgroup} usage"),
            (
                _by_variant('kernsim_memcg_memsw_usage_bytes{cgroup!="/"}'),
                "{variant} {cgroup} memsw.usage",
            ),
        ),
        "bytes",
    ),
    (
        "memsw.usage - usage (a leak when no task is left)",
        ((_by_variant('kernsim_memcg_memsw_leak_bytes{cgroup!="/"}'), "{variant} {cgroup}"),),
        "bytes",
    ),
    (
        "stale swap cache pages",
        ((_by_variant("kernsim_stale_swapcache_pages"), "{variant} stale"),),
        "pages",
    ),
)
#: One term of a duration; a duration is one or more, Prometheus-style (``1h30m``).
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_POINTS = 1000  # stays under Prometheus' 11,000-point limit per series


class PrometheusError(Exception):
    """Prometheus could not be reached, or refused a query: one line for the user."""


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    times: list[float]
    values: list[float]


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``1.5h``, ``2d``, ``1h30m`` -> seconds (a positive amount)."""
    terms = list(_DURATION.finditer(text.strip()))
    joined = "".join(m.group(0) for m in terms)
    total = sum(float(m.group(1)) * _UNIT_S[m.group(2)] for m in terms)
    if not terms or joined != text.strip() or total <= 0:
        raise ValueError(f"not a duration: {text!r} (try 90s, 10m, 1h30m)")
    return total


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not a Prometheus URL: {url!r} (try http://127.0.0.1:9090)")
    return url.rstrip("/")


def query_range(
    base: str, expr: str, start: float, end: float, step_s: float, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """One /api/v1/query_range; a server that cannot be reached or refuses is a
    PrometheusError."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step_s})
    try:
        with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=timeout_s) as r:
            body = json.load(r)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:200]
        raise PrometheusError(f"Prometheus refused {expr!r}: HTTP {exc.code} {detail}") from exc
    except (OSError, ValueError) as exc:
        raise PrometheusError(f"cannot query Prometheus at {base}: {exc}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused {expr!r}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def fetch(base: str, since_s: float, step_s: float | None, end: float) -> list[list[Series]]:
    """Every panel's series over the last ``since_s`` seconds up to ``end``."""
    start = end - since_s
    step = step_s or max(1.0, since_s / MAX_POINTS)
    panels = []
    for _title, targets, _unit in PANELS:
        series = []
        for expr, legend in targets:
            for r in query_range(base, expr, start, end, step):
                labels = {"variant": "", "stack": "", "cgroup": "", **r["metric"]}
                series.append(
                    Series(
                        legend.format(**labels).strip(),
                        [float(t) - end for t, _ in r["values"]],
                        [float(v) for _, v in r["values"]],
                    )
                )
        panels.append(series)
    return panels


def draw(panels: list[list[Series]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [2.0] + [1.0] * (len(PANELS) - 1)
    fig, axes = plt.subplots(
        len(PANELS), 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": heights}
    )
    for ax, (ptitle, _targets, unit), series in zip(axes, PANELS, panels, strict=True):
        scale, unit_label = (1024.0, "KiB") if unit == "bytes" else (1.0, unit)
        for s in series:
            # memsw dashed over usage: where they part, the gap is swap (or the leak).
            style = "--" if "memsw" in s.label else "-"
            ax.plot(s.times, [v / scale for v in s.values], style, label=s.label, linewidth=1.2)
        ax.set_title(ptitle, fontsize=10, loc="left")
        ax.set_ylabel(unit_label)
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("seconds before the end of the window")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
