"""One clock: the local cloud's virtual clock where the session reaches it, AWS's wall clock elsewhere."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from localcloud.behaviours.control import ROUTE
from mlops.console import clock

VIRTUAL_NOW = "2026-01-03T02:06:00+00:00"
VIRTUAL_START = "2026-01-02T23:50:00+00:00"


class _ControlRoute(BaseHTTPRequestHandler):
    """The emulator's control route as ``localcloud.behaviours.control`` answers it."""

    def do_GET(self):
        if self.path != ROUTE:
            self.send_error(404)
            return
        body = json.dumps({"now": VIRTUAL_NOW, "started": VIRTUAL_START, "following": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def emulator_address():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ControlRoute)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _session(monkeypatch, endpoint_url: str | None):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    if endpoint_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    else:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return boto3.Session(region_name="eu-west-1")


def test_the_local_cloud_is_read_on_its_own_clock(monkeypatch, emulator_address):
    read = clock.read(_session(monkeypatch, emulator_address))
    assert (read.now, read.started) == (
        datetime.fromisoformat(VIRTUAL_NOW),
        datetime.fromisoformat(VIRTUAL_START),
    )
    assert read.source == f"local cloud {emulator_address}"


def test_aws_is_read_on_the_wall_clock_without_asking_it(monkeypatch):
    before = datetime.now(UTC)
    read = clock.read(_session(monkeypatch, None))
    assert before <= read.now <= datetime.now(UTC)
    assert (read.started, read.source) == (None, "wall clock")


def test_an_endpoint_without_the_control_route_falls_back_to_the_wall_clock(monkeypatch, emulator_address):
    # Any other emulator: the route answers 404 there.
    read = clock.read(_session(monkeypatch, emulator_address + "/elsewhere"))
    assert read.source == "wall clock" and not read.virtual


def test_the_route_asked_is_the_emulators():
    assert clock.CONTROL_PATH == ROUTE
