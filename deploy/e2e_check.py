"""deploy/e2e.sh's checks on a running compose deployment (standard library only).

Each check polls against a deadline and prints what it saw; the first one that
fails ends the run with exit 1 and the last observation.

    python3 deploy/e2e_check.py --project kernsim-e2e mm memcg ... prometheus
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

HEALTH_S = 180.0  # image start, venv import and the depends_on chain
SCRAPE_S = 60.0


def poll(what: str, check: Callable[[], tuple[bool, str]], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    t0 = time.monotonic()
    while True:
        ok, seen = check()
        if ok:
            print(f"  ok   {what} ({time.monotonic() - t0:.1f} s): {seen}", flush=True)
            return
        if time.monotonic() > end:
            print(f"  FAIL {what} after {deadline_s:.0f} s: {seen}", file=sys.stderr)
            sys.exit(1)
        time.sleep(1.0)


def container_health(project: str) -> dict[str, str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--format",
            '{{.Label "com.docker.compose.service"}} {{.ID}}',
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    health = {}
    for line in out.splitlines():
        service, cid = line.split()
        state = json.loads(
            subprocess.run(
                ["docker", "inspect", "--format", "{{json .State}}", cid],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        health[service] = state.get("Health", {}).get("Status") or state["Status"]
    return health


def prom(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else base + path
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)["data"]
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--project", required=True)
    p.add_argument("--prometheus", default="http://127.0.0.1:9090")
    p.add_argument("services", nargs="+")
    a = p.parse_args()
    stacks = ["main"] + (["compare"] if any(s.endswith("-compare") for s in a.services) else [])

    def healthy() -> tuple[bool, str]:
        h = container_health(a.project)
        return all(h.get(s) == "healthy" for s in a.services), json.dumps(h, sort_keys=True)

    poll(f"{len(a.services)} containers healthy", healthy, HEALTH_S)

    def targets_up() -> tuple[bool, str]:
        data = prom(a.prometheus, "/api/v1/targets") or {"activeTargets": []}
        ours = [t for t in data["activeTargets"] if t["labels"].get("stack") in stacks]
        seen = {f"{t['labels']['stack']}/{t['labels']['service']}": t["health"] for t in ours}
        return len(ours) == 6 * len(stacks) and set(seen.values()) == {"up"}, str(seen)

    poll("every Prometheus target of " + "+".join(stacks) + " up", targets_up, SCRAPE_S)

    def rules_loaded() -> tuple[bool, str]:
        data = prom(a.prometheus, "/api/v1/rules") or {"groups": []}
        rules = {r["name"]: r["health"] for g in data["groups"] for r in g["rules"]}
        return len(rules) >= 3 and set(rules.values()) == {"ok"}, str(rules)

    poll("alert rules loaded", rules_loaded, SCRAPE_S)

    def query(expr: str) -> tuple[bool, str]:
        data = prom(a.prometheus, "/api/v1/query", query=expr)
        result = data["result"] if data else []
        return bool(result), str([(r["metric"], r["value"][1]) for r in result])

    # The workload runs in the containers: /A was charged at some point ...
    poll(
        "load reached cgroup /A",
        lambda: query('max_over_time(kernsim_memcg_usage_bytes{stack="main",cgroup="/A"}[5m]) > 0'),
        SCRAPE_S,
    )
    # ... and the leak gauge of the variant under test is scraped.
    poll(
        "leak metric scraped under the main stack",
        lambda: query('kernsim_memcg_memsw_leak_bytes{stack="main",cgroup="/A"}'),
        SCRAPE_S,
    )
    # Every series can be named by its kernel variant (the dashboard's join).
    poll(
        "variant none joined onto the main stack's series",
        lambda: query(
            'kernsim_memcg_usage_bytes{stack="main",cgroup="/A"} * on (stack) '
            'group_left (variant) max by (stack, variant) (kernsim_build_info{variant="none"})'
        ),
        SCRAPE_S,
    )
    poll("Prometheus scrapes itself", lambda: query('up{job="prometheus"} == 1'), SCRAPE_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
