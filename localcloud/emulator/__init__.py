"""The local cloud's AWS emulator: moto's threaded server on 127.0.0.1, plus what a deploy needs.

moto serves every AWS API from one in-process HTTP server. Where it drops or lacks what the
Pulumi program's resources need, one small module here patches it, each with its own test
through boto3 (tests/localcloud/test_emulator.py):

    s3_tls      a bucket policy's conditions are evaluated against the request context the
                emulator supplies (aws:SecureTransport true, TLS 1.3), so a TLS-only policy
                no longer refuses every object read and write
    iam         role lookups safe while other requests create roles (moto iterated a live dict)
    sagemaker   endpoint configurations keep their shadow variants; feature groups keep their
                description, online-store config (its KMS key) and data catalog config;
                CreateEndpoint refuses an existing name; UpdateEndpoint switches an endpoint's
                configuration at once and records its DeploymentConfig; the MLflow tracking
                server API (Create/Describe/Update/Delete/List)

``Emulator.start`` installs the behaviours over these (localcloud/behaviours/: running
pipeline executions, serving endpoints, rollouts, alarm evaluation, event delivery, the
feature store runtime, MLflow), on one virtual clock; they own ``UpdateEndpoint`` and the
MLflow tracking server API.

moto keeps its state in module-level backends, so every emulator in a process shares it:
``Emulator.reset()`` empties it (what a "fresh emulator" means in tests).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from localcloud.emulator import authorisation
from localcloud.emulator.extensions import install_extensions
from localcloud.emulator.session import EmulatorSession

ACCOUNT = "123456789012"  # moto's default account
SEED = 42  # moto's random ids are seeded: the same deploy gives the same ARNs


class Emulator:
    """An AWS emulator on 127.0.0.1: ``with Emulator() as emu: emu.client("s3")``.

    Starting it installs the behaviours (localcloud/behaviours/) on one virtual clock from
    ``clock_start`` (now when not given), so a deployed stack also runs: pipeline executions,
    endpoints and rollouts, alarms, events, schedules. ``behaviours`` is their handle (move the
    clock with ``emu.behaviours.advance(seconds)``); stopping the emulator uninstalls them.
    ``offline_store_delay`` is how long after PutRecord a record reaches the feature store's
    offline store (default: the behaviour's, the 15 minutes AWS documents as the most).
    """

    def __init__(
        self,
        port: int = 0,
        region: str = "eu-west-1",
        clock_start: datetime | None = None,
        offline_store_delay: float | None = None,
    ):
        self.region = region
        self._offline_store_delay = offline_store_delay
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._clock_start = clock_start
        self.endpoint_url = ""
        self.behaviours = None

    def start(self) -> Emulator:
        install_extensions()
        authorisation.ENABLED = True  # every request from here on is authorised as IAM would
        # werkzeug logs every request on stderr; a deploy makes hundreds.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        requests.post(f"{self.endpoint_url}/moto-api/seed?a={SEED}", timeout=10).raise_for_status()
        # Imported here: the behaviours build on the extensions this package installs.
        from localcloud.behaviours import Clock, install

        delay = (
            {} if self._offline_store_delay is None else {"offline_store_delay": self._offline_store_delay}
        )
        self.behaviours = install(Clock(self._clock_start), endpoint_url=self.endpoint_url, **delay)
        return self

    def stop(self) -> None:
        if self.behaviours is not None:
            self.behaviours.uninstall()
            self.behaviours = None
        self._server.stop()
        authorisation.ENABLED = False

    def reset(self, seed: int = SEED) -> None:
        """Forget every resource (moto's backends are shared by the whole process).

        moto's random ids (KMS key ids among them) are seeded again, so the same deploy into a
        fresh emulator gives the same ARNs, and the program's pipeline definitions (which
        name the key) the same bytes: a run is repeatable.
        """
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        requests.post(f"{self.endpoint_url}/moto-api/seed?a={seed}", timeout=10).raise_for_status()
        authorisation.reset()
        if self.behaviours is not None:
            from localcloud.behaviours import registry

            registry.seed_duplicates()  # the approval events sent twice are the same ones again

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def session(self) -> EmulatorSession:
        return EmulatorSession(self.endpoint_url, self.region)

    def client(self, service: str):
        return self.session().client(service)


class EmulatorProcess:
    """The emulator in a child process (``python -m localcloud.emulator``), stopped with it."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "localcloud.emulator"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        line = self._process.stdout.readline().strip()
        if not line.startswith("AWS_ENDPOINT_URL="):
            self._process.kill()
            raise RuntimeError(f"the emulator did not start (it printed {line!r})")
        self.endpoint_url = line.split("=", 1)[1]

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def embedded_or_named() -> tuple[str, EmulatorProcess | None]:
    """The emulator ``AWS_ENDPOINT_URL`` names, or a new embedded one (returned to stop later)."""
    named = os.environ.get("AWS_ENDPOINT_URL")
    if named:
        return named, None
    emulator = EmulatorProcess()
    return emulator.endpoint_url, emulator
