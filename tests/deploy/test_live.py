"""The dashboard, the alert rules and ``kernsim plot`` against a real Prometheus
scraping a running local cluster (the ``live`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kernsim import plot
from kernsim.cli import main
from kernsim.exits import Exit
from tests.support.livestack import DEPLOY, Live
from tests.support.polling import eventually_slow as eventually
from tests.support.prometheus import query

pytestmark = pytest.mark.asyncio(loop_scope="module")


def panel_targets() -> list[tuple[str, str]]:
    d = json.loads((DEPLOY / "grafana" / "dashboards" / "kernsim.json").read_text())
    return [(p["title"], t["expr"]) for p in d["panels"] for t in p["targets"]]


def rule(name: str) -> str:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    (expr,) = [r["expr"] for g in rules["groups"] for r in g["rules"] if r["alert"] == name]
    return str(expr)


@pytest.mark.parametrize(("title", "expr"), panel_targets())
async def test_every_panel_query_parses_and_returns_data(live: Live, title: str, expr: str) -> None:
    async def answered() -> list[dict[str, Any]]:
        status, result = await query(live.prometheus, expr)
        assert status in (0, 200), f"{title}: {expr!r} does not parse (HTTP {status})"
        return result

    result = await eventually(answered, timeout_s=30)
    assert result, (title, expr)


async def test_prometheus_loaded_the_rules(live: Live) -> None:
    import aiohttp

    async def rules() -> dict[str, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(live.prometheus + "/api/v1/rules") as r,
        ):
            groups = (await r.json())["data"]["groups"]
        return {x["name"]: x["health"] for g in groups for x in g["rules"] if x.get("health")}

    seen = await eventually(rules, timeout_s=20)
    assert seen == dict.fromkeys(
        ("KernsimMemswLeak", "KernsimMemcgOOMKill", "KernsimStaleSwapCache"), "ok"
    )


async def test_stale_swap_cache_alert_sees_the_idle_cluster(live: Live) -> None:
    """After the kill: no task, and cache-only swap-cache pages still hold slots."""
    stale = (await live.cluster.rpc("mm", "statistics"))["stats"]["stale_swapcache_pages"]
    if stale == 0:
        pytest.xfail("this round left no stale swap cache page (real timing)")

    async def firing() -> list[dict[str, Any]]:
        # Compared with a fresh reading each time: the scrape a query sees may be older.
        now = (await live.cluster.rpc("mm", "statistics"))["stats"]["stale_swapcache_pages"]
        result = (await query(live.prometheus, rule("KernsimStaleSwapCache")))[1]
        return result if result and float(result[0]["value"][1]) == now else []

    result = await eventually(firing, timeout_s=20)
    assert result[0]["metric"]["service"] == "mm" and float(result[0]["value"][1]) > 0


async def test_memsw_leak_alert_matches_the_cluster(live: Live) -> None:
    """The leak rule's expression returns memsw.usage - usage exactly when the cgroup has
    no task and memsw.usage stays above usage; promtool's rule tests cover its shapes.

    The interleavings come from real timing: a round without a leak checks that the
    rule stays quiet and reports XFAIL with the numbers.
    """
    stats = (await live.cluster.rpc("memcg", "statistics"))["stats"]["cgroups"]["/A"]
    usage, memsw, tasks = stats["usage_bytes"], stats["memsw_usage_bytes"], stats["tasks"]
    expr = rule("KernsimMemswLeak")

    async def scraped() -> bool:
        _, r = await query(live.prometheus, 'kernsim_memcg_memsw_usage_bytes{cgroup="/A"}')
        return bool(r) and float(r[0]["value"][1]) == memsw

    await eventually(scraped, timeout_s=20)
    _, result = await query(live.prometheus, expr)
    assert tasks == 0
    if memsw > usage:
        assert [float(r["value"][1]) for r in result] == [memsw - usage], result
        assert result[0]["metric"]["cgroup"] == "/A"
    else:
        assert result == []
        pytest.xfail(f"no memsw leak this round (usage {usage}, memsw.usage {memsw})")


async def test_kernsim_plot_draws_the_headline(live: Live, tmp_path: Path) -> None:
    out = tmp_path / "headline.png"
    assert main(["plot", "--prometheus", live.prometheus, "--since", "2m", "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    # The picture's queries are the dashboard's.
    exprs = {e for _, e in panel_targets()}
    assert {expr for _, targets, _ in plot.PANELS for expr, _ in targets} <= exprs


async def test_kernsim_plot_out_in_a_missing_folder_exits_2(live: Live, tmp_path: Path) -> None:
    out = tmp_path / "no" / "headline.png"
    argv = ["plot", "--prometheus", live.prometheus, "--since", "2m", "--out", str(out)]
    assert main(argv) == Exit.USAGE
    assert not out.exists()
