"""The local cloud's AWS clients: strict, counted, one per emulator, region and service.

Every request goes through :mod:`pipelines.local.strict` before it is sent, and is counted in
``CALLS`` by (service, operation), so a deploy can report how many write calls it made. There
are no retries: a retried write would hide a failure (and duplicate a create).
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

from localcloud.emulator.session import CREDENTIALS, session_for
from pipelines import service_models
from pipelines.local.strict import install

# Every AWS call the local cloud makes, by (service, operation): a deploy reports the
# difference over its run (one deploy runs at a time: the Pulumi runtime is process-wide).
CALLS: Counter = Counter()
_calls_lock = threading.Lock()
_clients_lock = threading.Lock()


def _count(model, **_: Any) -> None:
    with _calls_lock:
        CALLS[(model.service_model.service_name, model.name)] += 1


@functools.cache
def client(endpoint_url: str, region: str, service: str, as_emulator: bool = False):
    """One strict, counted client per emulator, region and service (making one takes ~0.3 s),
    as the deploying identity; ``as_emulator``: as the emulator's administrator, for the checks
    AWS makes on its own side (a reference must exist), which no caller's policy governs."""
    with _clients_lock:
        service_models.share()
        session = boto3.Session(region_name=region, **CREDENTIALS) if as_emulator else session_for(region)
        client = session.client(
            service, endpoint_url=endpoint_url, config=Config(retries={"total_max_attempts": 1})
        )
    install(client)
    client.meta.events.register("before-call", _count)
    return client
