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

from localcloud.emulator.session import CREDENTIALS, deployer
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


def client(endpoint_url: str, region: str, service: str, as_emulator: bool = False):
    """One strict, counted client per emulator, region, service and identity (making one takes
    ~0.3 s): as the deploying identity; ``as_emulator``: as the emulator's administrator, for the
    checks AWS makes on its own side (a reference must exist), which no caller's policy governs.

    The identity is part of the key: after ``deploy_as`` a client made for an earlier identity
    must not be reused, or a CI job's deploy would run with the administrator's rights."""
    identity = CREDENTIALS if as_emulator else deployer()
    return _client(endpoint_url, region, service, tuple(sorted(identity.items())))


@functools.cache
def _client(endpoint_url: str, region: str, service: str, identity: tuple[tuple[str, str], ...]):
    with _clients_lock:
        service_models.share()
        made = boto3.Session(region_name=region, **dict(identity)).client(
            service, endpoint_url=endpoint_url, config=Config(retries={"total_max_attempts": 1})
        )
    install(made)
    made.meta.events.register("before-call", _count)
    return made
