"""SageMaker container conventions shared by the steps that run in the project image.

A step that cannot go on writes its reason where SageMaker reads it (``/opt/ml/output/
failure``, shown as the job's FailureReason) and exits non-zero; the local executor reads
the same file, so a user sees the same message on a laptop and in the console.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAILURE_FILE = Path(os.environ.get("SM_FAILURE_FILE", "/opt/ml/output/failure"))


class StepFailed(RuntimeError):
    """A container step's own, expected failure (bad data, a model below the bar)."""


def fail(message: str, failure_file: Path | None = None) -> int:
    """Record ``message`` as the step's failure reason and return the exit status 1."""
    path = failure_file or Path(os.environ.get("SM_FAILURE_FILE", FAILURE_FILE))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message)
    except OSError:
        pass  # outside a container /opt/ml may not be writable; stderr still carries it
    print(f"error: {message}", file=sys.stderr)
    return 1


def env_path(name: str, default: str) -> str:
    """A SageMaker-provided path (``SM_CHANNEL_TRAIN`` etc.) or its /opt/ml default."""
    return os.environ.get(name, default)


def current_host() -> tuple[str, list[str]]:
    """This instance's name and all the job's hosts (``algo-1`` ...), as SageMaker tells them.

    Processing jobs describe the cluster in ``/opt/ml/config/resourceconfig.json``; the local
    executor sets ``SM_CURRENT_HOST`` and ``SM_HOSTS`` (comma-separated) instead. A step that
    runs on several instances names its per-shard output after the host, so the shards'
    files do not overwrite each other in the shared S3 output prefix.
    """
    import json

    if os.environ.get("SM_CURRENT_HOST"):
        hosts = os.environ.get("SM_HOSTS", os.environ["SM_CURRENT_HOST"]).split(",")
        return os.environ["SM_CURRENT_HOST"], hosts
    config = Path(os.environ.get("SM_RESOURCE_CONFIG", "/opt/ml/config/resourceconfig.json"))
    if config.is_file():
        data = json.loads(config.read_text())
        return data["current_host"], list(data["hosts"])
    return "algo-1", ["algo-1"]
