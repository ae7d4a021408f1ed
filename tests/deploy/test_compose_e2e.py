"""End-to-end: the compose deployment on a real Docker engine, via deploy/e2e.sh.

Behind KERNSIM_E2E_DOCKER=1 (``.ci/run`` sets it after installing docker.io,
docker-compose and debootstrap), not because it is slow (about 1 min with the
base images cached, under 3 min from nothing) but because it starts a private
dockerd as root, mounts overlay filesystems and debootstraps a base image from
the Debian mirror: a plain ``pytest`` on a developer's machine should not do
that uninvited.  Grafana is left out: it cannot be installed here (no
registry, no Debian package); its provisioning is checked in test_files.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .conftest import DEPLOY

pytestmark = pytest.mark.skipif(
    os.environ.get("KERNSIM_E2E_DOCKER") != "1",
    reason="set KERNSIM_E2E_DOCKER=1 to run the Docker end-to-end test (needs root, "
    "docker.io, docker-compose, debootstrap, prometheus)",
)


def test_compose_deployment_end_to_end() -> None:
    missing = [
        t for t in ("dockerd", "docker-compose", "debootstrap", "prometheus") if not shutil.which(t)
    ]
    if missing:
        pytest.fail(
            f"KERNSIM_E2E_DOCKER=1 but {missing} missing: apt-get install -y docker.io "
            "docker-compose debootstrap prometheus"
        )
    r = subprocess.run([str(DEPLOY / "e2e.sh")], capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    for check in (
        "containers healthy",
        "every Prometheus target of main up",
        "alert rules loaded",
        "load reached cgroup /A",
        "leak metric scraped under the main stack",
    ):
        assert any(line.startswith("  ok ") and check in line for line in out.splitlines()), (
            check,
            out[-6000:],
        )
