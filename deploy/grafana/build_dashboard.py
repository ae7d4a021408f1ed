"""Builds deploy/grafana/dashboards/kernsim.json, the dashboard Grafana provisions.

    python deploy/grafana/build_dashboard.py          # rewrite the JSON
    python deploy/grafana/build_dashboard.py --check  # exit 1 if the JSON is stale

The JSON is made by grafana-foundation-sdk's typed builders (generated from
Grafana's own dashboard schema), so every field has the name and type Grafana
reads; ``--check`` also parses the file back through the SDK's models.  The
PromQL sits in one short table a reviewer can hold beside services/metrics.py.
Every metric named here is exported by a service; tests/deploy runs each
expression against a real Prometheus scraping a real cluster and expects data.

Each series is labelled with its kernel variant (``none``, ``upstream``, ...):
the expressions join ``kernsim_build_info`` on the stack.  The data source is
the ``${datasource}`` variable, and ``__inputs`` names it for Grafana's import
dialog, so the JSON imports into any Grafana with a Prometheus that scrapes
kernsim; the compose deployment provisions it as it is.

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

from grafana_foundation_sdk.builders import common, prometheus, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as ds

OUT = Path(__file__).resolve().parent / "dashboards" / "kernsim.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: One series per stack carrying its variant; ``by_variant`` joins it onto a query.
VARIANT = "max by (stack, variant) (kernsim_build_info)"


def by_variant(expr: str) -> str:
    """``expr`` (which keeps its ``stack`` label) with the stack's ``variant`` label added."""
    return f"({expr}) * on (stack) group_left (variant) {VARIANT}"


WIDTH, HEIGHT = 12, 8  # half the 24-column grid: two panels a row


@dataclass(frozen=True, slots=True)
class Target:
    """A query as written (it keeps ``stack``); the dashboard runs ``by_variant(expr)``."""

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
            Target(f"kernsim_memcg_usage_bytes{{{CG}}}", "{{variant}} {{cgroup}} usage"),
            Target(
                f"kernsim_memcg_memsw_usage_bytes{{{CG}}}", "{{variant}} {{cgroup}} memsw.usage"
            ),
        ),
        full_width=True,
    ),
    Panel(
        "memsw.usage - usage (a leak when no task is left)",
        "kernsim_memcg_memsw_leak_bytes: memsw.usage - usage per cgroup (0 when not above). "
        "While tasks run this is their pages on swap; during the rest between rounds, with "
        "no task left, anything above 0 is the leak.",
        "bytes",
        (Target(f"kernsim_memcg_memsw_leak_bytes{{{CG}}}", "{{variant}} {{cgroup}}"),),
    ),
    Panel(
        "stale swap cache pages",
        "Cache-only swap-cache pages that nobody maps, locks or writes back, beside the "
        "whole swap cache.",
        "short",
        (
            Target("kernsim_stale_swapcache_pages", "{{variant}} stale"),
            Target("kernsim_swapcache_pages", "{{variant}} in swap cache"),
        ),
    ),
    Panel(
        "swap slots used of total",
        "Swap slots in use against the swap device's usable slots. 2.6.31 reuses cache-only "
        "slots once more than half are in use.",
        "short",
        (
            Target("kernsim_swap_slots_used", "{{variant}} used"),
            Target("kernsim_swap_slots_total", "{{variant}} total"),
        ),
    ),
    Panel(
        "memcg OOM kills",
        "Tasks killed by the memcg OOM killer, per minute, and the failcnt of the limit.",
        "short",
        (
            Target(
                f"increase(kernsim_memcg_oom_total{{{CG}}}[1m])", "{{variant}} {{cgroup}} kills"
            ),
            Target(
                f"increase(kernsim_memcg_failcnt_total{{{CG}}}[1m])",
                "{{variant}} {{cgroup}} failcnt",
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
                "{{variant}} {{result}}",
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
                _q(0.5, "kernsim_bio_latency_seconds", "direction"), "{{variant}} {{direction}} p50"
            ),
            Target(
                _q(0.99, "kernsim_bio_latency_seconds", "direction"),
                "{{variant}} {{direction}} p99",
            ),
        ),
    ),
    Panel(
        "RPC latency by operation (p99)",
        "Round trip of one kernel primitive (one critical section) as the calling CPU sees "
        "it, 99th percentile per operation.",
        "s",
        (Target(_q(0.99, "kernsim_rpc_latency_seconds", "op"), "{{variant}} {{op}}"),),
    ),
    Panel(
        "injected faults by kind",
        "Fault layer verdicts per second other than pass: delay, hold, paused.",
        "ops",
        (
            Target(
                'sum by (stack, kind) (rate(kernsim_faults_injected_total{kind!="pass"}[1m]))',
                "{{variant}} {{kind}}",
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
                "{{variant}} {{src}} -> {{dest}}",
            ),
        ),
    ),
    Panel(
        "services up",
        "Prometheus' scrape health per service (1 up, 0 down).",
        "short",
        (Target('up{job="kernsim"}', "{{variant}} {{service}}"),),
    ),
)


def panel(p: Panel, pid: int, x: int, y: int) -> timeseries.Panel:
    b = (
        timeseries.Panel()
        .id(pid)
        .title(p.title)
        .description(p.description)
        .datasource(ds.DataSourceRef(type_val=DATASOURCE["type"], uid=DATASOURCE["uid"]))
        .grid_pos(ds.GridPos(h=HEIGHT, w=24 if p.full_width else WIDTH, x=x, y=y))
        .unit(p.unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(cm.VisibilityMode.NEVER)
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull"])
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(cm.TooltipDisplayMode.MULTI)
            .sort(cm.SortOrder.DESCENDING)
        )
    )
    if p.stack:
        b = b.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL).group("A"))
    for i, t in enumerate(p.targets):
        b = b.with_target(
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + i))
            .datasource(ds.DataSourceRef(type_val=DATASOURCE["type"], uid=DATASOURCE["uid"]))
            .expr(by_variant(t.expr))
            .legend_format(t.legend)
            .range()
        )
    return b


def dashboard() -> dict[str, Any]:
    d = (
        dashboard_b.Dashboard("kernsim: memcg stale swap cache")
        .uid("kernsim")
        .description(
            "The 2.6.30 memcg stale swap cache leak on a kernsim cluster, one series per "
            "kernel variant (compose: $KERNSIM_VARIANT beside $KERNSIM_COMPARE_VARIANT)."
        )
        .tags(["kernsim"])
        .timezone("browser")
        .editable()
        .tooltip(ds.DashboardCursorSync.CROSSHAIR)
        .refresh("5s")
        .time("now-15m", "now")
        .with_variable(
            dashboard_b.DatasourceVariable("datasource")
            .label("Prometheus")
            .type("prometheus")
            .current(ds.VariableOption(text="Prometheus", value="${DS_PROMETHEUS}"))
        )
    )
    x, y = 0, 0
    for pid, p in enumerate(PANELS, start=1):
        if p.full_width and x:
            x, y = 0, y + HEIGHT
        d = d.with_panel(panel(p, pid, x, y))
        x += 24 if p.full_width else WIDTH
        if x >= 24:
            x, y = 0, y + HEIGHT
    data: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    # Grafana's import dialog asks which Prometheus ${DS_PROMETHEUS} is; provisioning
    # ignores __inputs, and the datasource variable falls back to the default Prometheus.
    inputs = [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "the Prometheus that scrapes the kernsim services",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    return {"__inputs": inputs, **data}


def validate(data: dict[str, Any]) -> list[str]:
    """Problems found by parsing ``data`` with the SDK's models of Grafana's schema."""
    problems = []
    model = ds.Dashboard.from_json(data)
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if again.get(key) != data.get(key):
            problems.append(f"{key} does not survive Grafana's dashboard schema")
    for p in model.panels or []:
        if not getattr(p, "targets", None):
            problems.append(f"panel {getattr(p, 'title', '?')!r} has no query")
    return problems


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is stale")
    args = p.parse_args(argv)
    text = render()
    problems = validate(json.loads(text))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
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
