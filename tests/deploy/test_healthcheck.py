"""deploy/healthcheck.sh, the containers' healthcheck: a service is healthy when its admin
port answers /healthz with 200, the load generator when its heartbeat file is fresh."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.livestack import DEPLOY

SCRIPT = DEPLOY / "healthcheck.sh"


def check(**env: str) -> int:
    full = {"PATH": os.environ["PATH"], **env}
    return subprocess.run([str(SCRIPT)], env=full, capture_output=True, timeout=30).returncode


class Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def admin() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_service_answering_healthz_is_healthy(admin: ThreadingHTTPServer) -> None:
    assert check(KERNSIM_ADMIN_PORT=str(admin.server_address[1])) == 0


def test_a_service_answering_an_error_is_not(
    admin: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Healthz, "status", 503)
    assert check(KERNSIM_ADMIN_PORT=str(admin.server_address[1])) == 1


def test_a_closed_port_or_no_port_is_not_healthy() -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert check(KERNSIM_ADMIN_PORT=str(port)) == 1
    assert check() == 1
    assert check(KERNSIM_ADMIN_PORT="not-a-port") == 1


def test_the_load_generator_is_healthy_while_its_heartbeat_is_fresh(tmp_path: Path) -> None:
    beat = tmp_path / "alive"
    assert check(KERNSIM_HEARTBEAT=str(beat)) == 1  # never touched
    beat.touch()
    assert check(KERNSIM_HEARTBEAT=str(beat)) == 0
    old = time.time() - 31
    os.utime(beat, (old, old))
    assert check(KERNSIM_HEARTBEAT=str(beat)) == 1
    assert check(KERNSIM_HEARTBEAT=str(beat), KERNSIM_HEARTBEAT_MAX_AGE_S="60") == 0
