"""SageMaker container conventions shared by the steps that run in the project image.

A step that cannot go on writes its reason where SageMaker reads it for its job type, and
exits non-zero:

* a **processing** job's reason goes to ``/opt/ml/output/message``; SageMaker shows its
  first 1 KB as the job's ``ExitMessage``;
* a **training** job's reason goes to ``/opt/ml/output/failure``, shown as its
  ``FailureReason``.

Each file is ignored by the other job type, so an entry point names its job type when it
fails. The local executor reads only the file SageMaker reads for the step's type, so a
step writing the wrong file shows no reason on a laptop either. Outside SageMaker,
``MLOPS_OPT_ML`` says where this container's ``/opt/ml`` is (the local executor sets it to
the step's remapped folder; SageMaker never sets it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

PROCESSING = "processing"
TRAINING = "training"
# Relative to /opt/ml: the one file SageMaker reads a failed job's reason from, per job type.
REASON_FILES = {PROCESSING: "output/message", TRAINING: "output/failure"}
# SageMaker keeps the first 1 KB (ExitMessage and FailureReason are at most 1024 characters).
REASON_LIMIT = 1024


class StepFailed(RuntimeError):
    """A container step's own, expected failure (bad data, a model below the bar)."""


# What a processing step turns into its ExitMessage rather than a traceback: its own
# refusals, bad values and files, and AWS answers.
STEP_ERRORS = (StepFailed, ValueError, OSError, BotoCoreError, ClientError)


def opt_ml() -> Path:
    """This container's ``/opt/ml``: itself on SageMaker, ``MLOPS_OPT_ML`` when run locally."""
    return Path(os.environ.get("MLOPS_OPT_ML") or "/opt/ml")


def reason_file(job: str) -> Path:
    """Where a ``job`` (``processing`` or ``training``) writes the reason it failed."""
    if job not in REASON_FILES:
        raise ValueError(f"job: expected one of {', '.join(REASON_FILES)}, got {job!r}")
    return opt_ml() / REASON_FILES[job]


def fail(message: str, *, job: str) -> int:
    """Record ``message`` as the failed ``job``'s reason and return the exit status 1."""
    path = reason_file(job)
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


def run_processing(step: Callable[[], str], label: str) -> int:
    """Run a processing step and print its summary; a :data:`STEP_ERRORS` fails it as ``label``."""
    try:
        print(step())
    except STEP_ERRORS as exc:
        return fail(f"{label}: {exc}", job=PROCESSING)
    return 0
