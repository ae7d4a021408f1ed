"""End-to-end: the compose deployment on a real Docker engine, via deploy/e2e.sh.

On by default where an engine can be started: as root, with docker.io,
docker-compose, debootstrap and prometheus installed (tests/run installs them).
It starts a private dockerd, mounts overlay filesystems and debootstraps a base
image from the Debian mirror, about 1 min with the base images cached and under
3 min from nothing.  ``KERNSIM_E2E_DOCKER=0`` leaves it out.  Grafana is left
out: it cannot be installed here (no registry, no Debian package); its
provisioning is checked in test_files.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.livestack import DEPLOY

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("KERNSIM_E2E_DOCKER") == "0", reason="KERNSIM_E2E_DOCKER=0 leaves it out"
    ),
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="the Docker end-to-end test starts its own dockerd: run tests/run as root",
    ),
]


def test_compose_deployment_end_to_end() -> None:
    missing = [
        t for t in ("dockerd", "docker-compose", "debootstrap", "prometheus") if not shutil.which(t)
    ]
    if missing:
        pytest.fail(
            f"{missing} missing: tests/run installs them (apt-get install -y docker.io "
            "docker-compose debootstrap prometheus)"
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
        "variant none joined onto the main stack's series",
        "Prometheus scrapes itself",
    ):
        assert any(line.startswith("  ok ") and check in line for line in out.splitlines()), (
            check,
            out[-6000:],
        )
