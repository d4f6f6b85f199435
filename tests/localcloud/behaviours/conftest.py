"""An in-process moto server on a free 127.0.0.1 port with every behaviour installed, per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from localcloud.behaviours import Behaviours, Clock, install
from localcloud.emulator import authorisation
from tests.localcloud.behaviours.support import REGION, START


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def emulator(moto_server: str) -> Iterator[Behaviours]:
    """Behaviours installed on a fresh emulator state; everything reset after the test."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    behaviours = install(Clock(START), endpoint_url=moto_server)
    # These tests are about what each behaviour does (routing, schedules, rollouts) with
    # minimal fixtures, not about IAM: authorisation is off here. The stack's own roles and
    # policies are authorised in tests/localcloud/test_authorisation.py, the promotion and
    # bootstrap tests, and every `make local`.
    was, authorisation.ENABLED = authorisation.ENABLED, False
    yield behaviours
    authorisation.ENABLED = was
    behaviours.uninstall()
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)


@pytest.fixture
def client(moto_server: str) -> Callable[[str], object]:
    def make(service: str):
        return boto3.client(
            service,
            endpoint_url=moto_server,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make
