"""Fixtures for pipeline tests: an S3 + SageMaker emulator that subprocesses can reach too.

moto's in-process ``mock_aws`` patches this interpreter only; the local executor's steps run
as their own processes, so the emulator is moto's HTTP server on 127.0.0.1 and everything
(boto3 here and in the steps) finds it through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import urllib.request

import pytest
from moto.server import ThreadedMotoServer

REGION = "eu-west-1"


@pytest.fixture(scope="session")
def moto_server():
    """moto's server on a free loopback port (the OS picks it) for the session; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def use_emulator(monkeypatch: pytest.MonkeyPatch, url: str) -> str:
    """Empty the emulator and point boto3 (here and in subprocesses) at it with fake credentials."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    return url


@pytest.fixture
def aws(moto_server, monkeypatch) -> str:
    """An empty emulator for this test; yields its URL."""
    return use_emulator(monkeypatch, moto_server)


@pytest.fixture(scope="module")
def aws_module(moto_server):
    """An emulator emptied once for a module whose tests share one expensive run."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield use_emulator(monkeypatch, moto_server)
