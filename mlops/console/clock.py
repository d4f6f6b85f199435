"""What "now" is for the cloud a boto3 session reaches: one clock for ``mlops status`` and ``mlops dashboard``.

On AWS, now is the wall clock (UTC). The local cloud runs on a virtual clock (a ten-minute
canary bake takes milliseconds), so everything it did happened at its time, not the machine's:
asking "what happened in the last hours" with the wall clock finds nothing there. A session
whose endpoint is not AWS's is asked for its clock on the emulator's control route
(``GET /_mlops/clock``, :mod:`localcloud.behaviours.control`); an endpoint that does not answer
it (another emulator, a proxy) falls back to the wall clock.

The route's answer also gives where the clock started (``started``): nothing in the local
cloud can have happened before, which bounds the window a dashboard reads.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

# localcloud.behaviours.control.ROUTE (not imported: it would import moto into every command).
CONTROL_PATH = "/_mlops/clock"
TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class CloudClock:
    now: datetime
    started: datetime | None  # the virtual clock's first instant; None on AWS
    source: str  # "wall clock" or "local cloud <url>"

    @property
    def virtual(self) -> bool:
        return self.started is not None


def is_aws(endpoint_url: str) -> bool:
    host = urlparse(endpoint_url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def endpoint_url(session: Any) -> str:
    """The address the session's clients call (``AWS_ENDPOINT_URL`` or AWS's own)."""
    return session.client("cloudwatch").meta.endpoint_url


def read(session: Any) -> CloudClock:
    """The clock of the cloud ``session`` reaches: the emulator's, else the wall clock."""
    url = endpoint_url(session)
    if not is_aws(url):
        try:
            with urllib.request.urlopen(url.rstrip("/") + CONTROL_PATH, timeout=TIMEOUT_SECONDS) as answer:
                state = json.loads(answer.read())
            now = datetime.fromisoformat(state["now"])
            started = datetime.fromisoformat(state.get("started") or state["now"])
            return CloudClock(now.astimezone(UTC), started.astimezone(UTC), f"local cloud {url}")
        except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError):
            pass  # not the local cloud: an endpoint without the control route
    return CloudClock(datetime.now(UTC), None, "wall clock")
