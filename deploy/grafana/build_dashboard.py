"""Builds deploy/grafana/dashboards/kernsim.json, the dashboard Grafana provisions.

    python deploy/grafana/build_dashboard.py          # rewrite the JSON
    python deploy/grafana/build_dashboard.py --check  # exit 1 if the JSON is stale

A builder rather than hand-edited JSON so that every panel has the same
shape, ids and grid positions are computed, and the PromQL sits in one short
table a reviewer can hold beside services/metrics.py.  Every metric named here
is exported by a service; tests/deploy runs each expression against a real
Prometheus scraping a real cluster and expects data.

Queries use a fixed ``[1m]`` window rather than Grafana's ``$__rate_interval``
so that the same text runs unchanged in the tests and in ``kernsim plot``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "kernsim.json"
DATASOURCE = {"type": "prometheus", "uid": "kernsim-prometheus"}
WIDTH, HEIGHT = 12, 8  # half the 24-column grid: two panels a row


@dataclass(frozen=True, slots=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]
    full_width: bool = False
    stack: bool = False
    overrides: list[dict[str, Any]] = field(default_factory=list)


def _q(quantile: float, metric: str, by: str) -> str:
    return f"histogram_quantile({quantile}, sum by (stack, {by}, le) (rate({metric}_bucket[1m])))"


#: The cgroup every scenario's tasks run in is /A; the root cgroup is never charged
#: in this model, so it is left out of the per-cgroup panels rather than drawn as 0.
CG = 'cgroup!="/"'

PANELS: tuple[Panel, ...] = (
    Panel(
        "memory.usage vs memory.memsw.usage per cgroup",
        "The headline: memsw.usage (memory + swap) above usage with no task left is the "
        "2.6.30 stale swap cache leak. The load generator rests between rounds with no task "
        "in the cgroup, so a gap that stays during the rest is the leak.",
        "bytes",
        (
            Target(f"kernsim_memcg_usage_bytes{{{CG}}}", "{{stack}} {{cgroup}} usage"),
            Target(f"kernsim_memcg_memsw_usage_bytes{{{CG}}}", "{{stack}} {{cgroup}} memsw.usage"),
        ),
        full_width=True,
    ),
    Panel(
        "memsw.usage - usage (a leak when no task is left)",
        "kernsim_memcg_memsw_leak_bytes: memsw.usage - usage per cgroup (0 when not above). "
        "While tasks run this is their pages on swap; during the rest between rounds, with "
        "no task left, anything above 0 is the leak.",
        "bytes",
        (Target(f"kernsim_memcg_memsw_leak_bytes{{{CG}}}", "{{stack}} {{cgroup}}"),),
    ),
    Panel(
        "stale swap cache pages",
        "Cache-only swap-cache pages that nobody maps, locks or writes back, beside the "
        "whole swap cache.",
        "short",
        (
            Target("kernsim_stale_swapcache_pages", "{{stack}} stale"),
            Target("kernsim_swapcache_pages", "{{stack}} in swap cache"),
        ),
    ),
    Panel(
        "swap slots used of total",
        "Swap slots in use against the swap device's usable slots. 2.6.31 reuses cache-only "
        "slots once more than half are in use.",
        "short",
        (
            Target("kernsim_swap_slots_used", "{{stack}} used"),
            Target("kernsim_swap_slots_total", "{{stack}} total"),
        ),
    ),
    Panel(
        "memcg OOM kills",
        "Tasks killed by the memcg OOM killer, per minute, and the failcnt of the limit.",
        "short",
        (
            Target(f"increase(kernsim_memcg_oom_total{{{CG}}}[1m])", "{{stack}} {{cgroup}} kills"),
            Target(
                f"increase(kernsim_memcg_failcnt_total{{{CG}}}[1m])",
                "{{stack}} {{cgroup}} failcnt",
            ),
        ),
    ),
    Panel(
        "reclaim results by kind",
        "shrink_page_list() outcomes per second (keep, keep_locked, activate, freed, ...).",
        "ops",
        (
            Target(
                "sum by (stack, result) (rate(kernsim_vmscan_results_total[1m]))",
                "{{stack}} {{result}}",
            ),
        ),
        stack=True,
    ),
    Panel(
        "swap bio latency",
        "Block device completion latency of swap bios, median and 99th percentile, by "
        "direction (the fault profile's disk).",
        "s",
        (
            Target(
                _q(0.5, "kernsim_bio_latency_seconds", "direction"), "{{stack}} {{direction}} p50"
            ),
            Target(
                _q(0.99, "kernsim_bio_latency_seconds", "direction"), "{{stack}} {{direction}} p99"
            ),
        ),
    ),
    Panel(
        "RPC latency by operation (p99)",
        "Round trip of one kernel primitive (one critical section) as the calling CPU sees "
        "it, 99th percentile per operation.",
        "s",
        (Target(_q(0.99, "kernsim_rpc_latency_seconds", "op"), "{{stack}} {{op}}"),),
    ),
    Panel(
        "injected faults by kind",
        "Fault layer verdicts per second other than pass: delay, hold, paused.",
        "ops",
        (
            Target(
                'sum by (stack, kind) (rate(kernsim_faults_injected_total{kind!="pass"}[1m]))',
                "{{stack}} {{kind}}",
            ),
        ),
        stack=True,
    ),
    Panel(
        "messages per second between services",
        "msgpack messages sent per second on each link (src -> dest).",
        "ops",
        (
            Target(
                "sum by (stack, src, dest) (rate(kernsim_messages_total[1m]))",
                "{{stack}} {{src}} -> {{dest}}",
            ),
        ),
    ),
    Panel(
        "services up",
        "Prometheus' scrape health per service (1 up, 0 down).",
        "short",
        (Target('up{job="kernsim"}', "{{stack}} {{service}}"),),
    ),
)


def panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    custom: dict[str, Any] = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if panel.stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "id": pid,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": 24 if panel.full_width else WIDTH, "h": HEIGHT},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "custom": custom},
            "overrides": panel.overrides,
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": t.expr,
                "legendFormat": t.legend,
                "range": True,
            }
            for i, t in enumerate(panel.targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for pid, panel in enumerate(PANELS, start=1):
        if panel.full_width and x:
            x, y = 0, y + HEIGHT
        panels.append(panel_json(panel, pid, x, y))
        x += 24 if panel.full_width else WIDTH
        if x >= 24:
            x, y = 0, y + HEIGHT
    return {
        "uid": "kernsim",
        "title": "kernsim: memcg stale swap cache",
        "description": "The 2.6.30 memcg stale swap cache leak on the compose cluster: "
        "main stack ($KERNSIM_VARIANT) beside compare ($KERNSIM_COMPARE_VARIANT).",
        "tags": ["kernsim"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is stale")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(PANELS)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
