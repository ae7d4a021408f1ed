"""The deployment's files, checked without starting anything: compose, Prometheus
config and rules (with promtool), the Grafana provisioning and dashboard JSON."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.livestack import DEPLOY, REPO

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "kernsim.json"
SERVICES = ("mm", "memcg", "blockdev", "vmscan", "workqueue", "tasks")


def run(cmd: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)


def compose_config() -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load(run(["docker-compose", "config"]).stdout)
    return cfg


needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose (v1) not installed: apt-get install -y docker-compose",
)
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool not installed: apt-get install -y prometheus"
)


@needs_compose
def test_compose_file_is_valid() -> None:
    r = run(["docker-compose", "config", "-q"])
    assert r.returncode == 0, r.stderr


@needs_compose
def test_compose_services_healthchecks_and_order() -> None:
    cfg = compose_config()["services"]
    stacks = {"": 7100, "-compare": 7110}
    for suffix, rpc_base in stacks.items():
        for i, name in enumerate(SERVICES):
            svc = cfg[name + suffix]
            env = svc["environment"]
            assert svc["network_mode"] == "host" and svc["init"] is True
            assert env["KERNSIM_HOST"] == "127.0.0.1"
            assert env["KERNSIM_PORT"] == str(rpc_base + i + 1)
            assert env["KERNSIM_ADMIN_PORT"] == str(rpc_base + 2000 + i + 1)
            assert svc["command"] == ["python", "-m", f"kernsim.services.{name}"]
            assert "healthcheck" in svc
            # Kernel calls slow under load, never abandoned half-way (the model with them).
            assert float(env["KERNSIM_RPC_TIMEOUT_S"]) >= 3600
        assert set(cfg["tasks" + suffix]["depends_on"]) == {
            s + suffix for s in SERVICES if s != "tasks"
        }
        assert float(cfg["load" + suffix]["environment"]["KERNSIM_RPC_TIMEOUT_S"]) <= 120
        for dep in cfg["load" + suffix]["depends_on"].values():
            assert dep["condition"] == "service_healthy"
    # The .env defaults reach the services: vanilla beside the 2.6.31 fix.
    assert cfg["mm"]["environment"]["KERNSIM_VARIANT"] == "none"
    assert cfg["mm-compare"]["environment"]["KERNSIM_VARIANT"] == "upstream"
    assert cfg["mm"]["environment"]["KERNSIM_FAULTS"] == "cluster-hdd"
    assert "--web.listen-address=127.0.0.1:9090" in cfg["prometheus"]["command"]
    assert cfg["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"


@needs_compose
def test_compose_variant_and_faults_come_from_the_environment() -> None:
    env = {"KERNSIM_VARIANT": "v5", "KERNSIM_FAULTS": "cluster-hdd", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        ["docker-compose", "config"], cwd=REPO, capture_output=True, text=True, env=env
    )
    svc = yaml.safe_load(r.stdout)["services"]["memcg"]["environment"]
    assert (svc["KERNSIM_VARIANT"], svc["KERNSIM_FAULTS"]) == ("v5", "cluster-hdd")


def test_prometheus_targets_match_the_compose_ports() -> None:
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    # Prometheus scrapes itself, beside the twelve services.
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]
    job = jobs["kernsim"]
    seen = {
        (g["labels"]["stack"], g["labels"]["service"]): g["targets"] for g in job["static_configs"]
    }
    for stack, base in (("main", 9100), ("compare", 9110)):
        for i, name in enumerate(SERVICES):
            assert seen[(stack, name)] == [f"127.0.0.1:{base + i + 1}"]


@needs_promtool
def test_promtool_checks_config_and_rules() -> None:
    r = run([PROMTOOL, "check", "config", "prometheus.yml"], cwd=DEPLOY / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([PROMTOOL, "check", "rules", "rules.yml"], cwd=DEPLOY / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 rules found" in r.stdout


@needs_promtool
def test_alerts_fire_on_the_leak_and_only_on_it() -> None:
    """promtool's rule unit tests: a leak, upstream's clean exit, a loaded cgroup, OOM kills."""
    r = run([PROMTOOL, "test", "rules", "rules_test.yml"], cwd=DEPLOY / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_dashboard_is_what_the_builder_writes() -> None:
    """The committed JSON is the builder's output, and parses with grafana-foundation-sdk's
    models of Grafana's dashboard schema."""
    r = run([sys.executable, str(DEPLOY / "grafana" / "build_dashboard.py"), "--check"])
    assert r.returncode == 0, r.stderr


def test_dashboard_validation_catches_a_broken_dashboard() -> None:
    sys.path.insert(0, str(DEPLOY / "grafana"))
    try:
        import build_dashboard
    finally:
        sys.path.pop(0)
    good = dashboard()
    assert build_dashboard.validate(good) == []
    broken = json.loads(json.dumps(good))
    broken["panels"][0]["targets"] = []
    assert build_dashboard.validate(broken) == [
        f"panel {good['panels'][0]['title']!r} has no query"
    ]


def test_dashboard_structure() -> None:
    d = dashboard()
    assert d["uid"] == "kernsim" and d["panels"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    # The data source is a variable, named for Grafana's import dialog: any Grafana can load it.
    (var,) = d["templating"]["list"]
    assert (var["type"], var["name"], var["query"]) == ("datasource", "datasource", "prometheus")
    assert var["current"]["value"] == "${DS_PROMETHEUS}"
    assert [(i["name"], i["type"], i["pluginId"]) for i in d["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    uid = "${datasource}"
    for p in d["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        assert all(t["datasource"]["uid"] == uid and t["expr"] for t in p["targets"])
        # Every series is named by its kernel variant, never by the stack it runs in.
        assert all("{{variant}}" in t["legendFormat"] for t in p["targets"]), p["title"]
        assert all("{{stack}}" not in t["legendFormat"] for t in p["targets"]), p["title"]
        assert all("kernsim_build_info" in t["expr"] for t in p["targets"]), p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
    # No two panels overlap on the grid.
    cells = [
        (x, y)
        for p in d["panels"]
        for g in [p["gridPos"]]
        for x in range(g["x"], g["x"] + g["w"])
        for y in range(g["y"], g["y"] + g["h"])
    ]
    assert len(cells) == len(set(cells))
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/kernsim.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_covers_the_issue_panels() -> None:
    exprs = " ".join(t["expr"] for p in dashboard()["panels"] for t in p["targets"])
    for metric in (
        "kernsim_memcg_usage_bytes",
        "kernsim_memcg_memsw_usage_bytes",
        "kernsim_memcg_memsw_leak_bytes",
        "kernsim_stale_swapcache_pages",
        "kernsim_swap_slots_used",
        "kernsim_swap_slots_total",
        "kernsim_memcg_oom_total",
        "kernsim_vmscan_results_total",
        "kernsim_bio_latency_seconds_bucket",
        "kernsim_rpc_latency_seconds_bucket",
        "kernsim_faults_injected_total",
        "kernsim_messages_total",
    ):
        assert metric in exprs, metric


def exported_names() -> set[str]:
    """Every kernsim_ family name the services declare, with the suffixes Prometheus adds."""
    names: set[str] = set()
    for path in (REPO / "services").rglob("*.py"):
        for name in re.findall(r'"(kernsim_[a-z_]+)"', path.read_text()):
            names.add(name)
    out = set(names)
    for n in names:
        out |= {n + "_total", n + "_bucket", n + "_count", n + "_sum"}
    return out


def test_every_metric_in_the_deploy_files_is_exported() -> None:
    exported = exported_names()
    texts = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    texts += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for text in texts for m in re.findall(r"\bkernsim_[a-z_]+", text)}
    assert used and used <= exported, used - exported


def test_dockerfile_runs_any_service_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("FROM python:3.11-slim") == 1
    assert "python3 -m venv /opt/venv" in text and "/opt/venv/bin/pip install" in text
    assert re.search(r"^USER kernsim$", text, re.M)
    ignore = (REPO / ".dockerignore").read_text()
    assert "!deploy/faults/" in ignore and "**/*.egg-info" in ignore


def test_no_deploy_file_names_a_path_outside_the_repository() -> None:
    """The deployment's files, scripts and docs work from any checkout."""
    files = run(["git", "ls-files", "deploy", "docker-compose.yml", ".env", ".ci", "tests/run"])
    names = [*files.stdout.split(), "docs/compose.md", "README.md"]
    outside = []
    for name in names:
        path = REPO / name
        if path.is_file() and path.suffix not in (".png", ".gz"):
            text = path.read_text(errors="replace")
            outside += [f"{name}: {m}" for m in re.findall(r"/work/\S+|\.\.(?:/)shared\S*", text)]
    assert outside == []
