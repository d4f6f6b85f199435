"""The local cloud's AWS emulator: moto's threaded server on 127.0.0.1, plus what a deploy needs.

moto serves every AWS API from one in-process HTTP server. Where it drops or lacks what the
Pulumi program's resources need, one small module here patches it, each with its own test
through boto3 (tests/infra/local/test_emulator.py):

    s3_tls      a bucket policy's conditions are evaluated against the request context the
                emulator supplies (aws:SecureTransport true, TLS 1.3), so a TLS-only policy
                no longer refuses every object read and write
    sagemaker   endpoint configurations keep their shadow variants; feature groups keep their
                description, online-store config (its KMS key) and data catalog config;
                CreateEndpoint refuses an existing name; UpdateEndpoint switches an endpoint's
                configuration at once and records its DeploymentConfig; the MLflow tracking
                server API (Create/Describe/Update/Delete/List)

The next issue's behaviours (running pipeline executions, serving endpoints, rollouts,
alarm evaluation, event delivery, the feature store runtime) belong beside these.

moto keeps its state in module-level backends, so every emulator in a process shares it:
``Emulator.reset()`` empties it (what a "fresh emulator" means in tests).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from infra.local.emulator import s3_tls, sagemaker

ACCOUNT = "123456789012"  # moto's default account
SEED = 42  # moto's random ids are seeded: the same deploy gives the same ARNs
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_install_lock = threading.Lock()
_installed = False


def install_extensions() -> None:
    """Patch moto once per process with the extensions above (idempotent)."""
    global _installed
    with _install_lock:
        if not _installed:
            s3_tls.install()
            sagemaker.install()
            _installed = True


class Emulator:
    """An AWS emulator on 127.0.0.1: ``with Emulator() as emu: emu.client("s3")``."""

    def __init__(self, port: int = 0, region: str = "eu-west-1"):
        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> Emulator:
        install_extensions()
        # werkzeug logs every request on stderr; a deploy makes hundreds.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        requests.post(f"{self.endpoint_url}/moto-api/seed?a={SEED}", timeout=10).raise_for_status()
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self, seed: int = SEED) -> None:
        """Forget every resource (moto's backends are shared by the whole process).

        moto's random ids (KMS key ids among them) are seeded again, so the same deploy into a
        fresh emulator gives the same ARNs, and the program's pipeline definitions (which
        name the key) the same bytes: a run is repeatable.
        """
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        requests.post(f"{self.endpoint_url}/moto-api/seed?a={seed}", timeout=10).raise_for_status()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def session(self) -> boto3.Session:
        return session_for(self.region)

    def client(self, service: str):
        return self.session().client(service, endpoint_url=self.endpoint_url)


def session_for(region: str) -> boto3.Session:
    """A boto3 session with the emulator's dummy credentials (it never checks them)."""
    return boto3.Session(region_name=region, **CREDENTIALS)


class EmulatorProcess:
    """The emulator in a child process (``python -m infra.local.emulator``), stopped with it."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "infra.local.emulator"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[3],
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
