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

from botocore.config import Config

from localcloud.emulator.session import session_for
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
def client(endpoint_url: str, region: str, service: str):
    """One strict, counted client per emulator, region and service (making one takes ~0.3 s)."""
    with _clients_lock:
        service_models.share()
        client = session_for(region).client(
            service, endpoint_url=endpoint_url, config=Config(retries={"total_max_attempts": 1})
        )
    install(client)
    client.meta.events.register("before-call", _count)
    return client
