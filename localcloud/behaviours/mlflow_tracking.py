"""SageMaker managed MLflow, answered by a real local MLflow server.

moto has no ``CreateMlflowTrackingServer`` (it answers 500); this adds Create, Describe, List and
Delete. Creating a tracking server starts ``mlflow server`` on a free 127.0.0.1 port, its runs
in a SQLite file of the emulator's temporary folder and its artifacts proxied to the server's
``ArtifactStoreUri`` in the emulator's S3 (``MLFLOW_S3_ENDPOINT_URL`` points there). The server
is ``Creating`` until it answers ``/health``, then ``Created`` and ``Active``; its
``TrackingServerUrl`` is the local server's address, so a training run given it as
``MLFLOW_TRACKING_URI`` is tracked there. Deleting it (or uninstalling the behaviours) stops
the process.

Starting takes MLflow's own start-up (its database migrations: seconds on an idle machine);
``mlflow server``'s output goes to ``server.log`` beside the database.

Not emulated: the ``sagemaker-mlflow`` authentication plugin (the URL is plain HTTP, no SigV4),
sizes, maintenance windows, start/stop/update, automatic model registration, presigned URLs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import ValidationError

from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher
from localcloud.emulator import authorisation


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowBehaviour:
    def __init__(self, clock: Clock, patcher: Patcher, endpoint_url: str | None) -> None:
        self.clock = clock
        self.endpoint_url = endpoint_url
        self._workdir = tempfile.TemporaryDirectory(prefix="mlops-mlflow-")
        self._processes: dict[str, subprocess.Popen] = {}
        behaviour = self
        for action in ("create", "describe", "delete"):
            method = getattr(self, action)
            patcher.set(
                sm_responses.SageMakerResponse,
                f"{action}_mlflow_tracking_server",
                (lambda m: lambda response: sm_responses.ActionResult(m(response)))(method),
            )
        patcher.set(
            sm_responses.SageMakerResponse,
            "list_mlflow_tracking_servers",
            lambda response: sm_responses.ActionResult(behaviour.list(response)),
        )
        patcher.on_restore(self.close)

    def close(self) -> None:
        for process in self._processes.values():
            _stop(process)
        self._processes.clear()
        self._workdir.cleanup()

    @staticmethod
    def _servers(response: Any) -> dict[str, dict[str, Any]]:
        return response.sagemaker_backend.__dict__.setdefault("mlops_mlflow_servers", {})

    def create(self, response: Any) -> dict[str, Any]:
        name = response._get_param("TrackingServerName")
        servers = self._servers(response)
        if name in servers:
            raise ValidationError(f"Tracking server {name} already exists.")
        if self.endpoint_url is None:
            raise ValidationError(
                "endpoint_url: install(endpoint_url=...) is needed to run a tracking server"
            )
        backend = response.sagemaker_backend
        arn = f"arn:aws:sagemaker:{backend.region_name}:{backend.account_id}:mlflow-tracking-server/{name}"
        port = _free_port()
        folder = Path(self._workdir.name) / name
        folder.mkdir()
        store = response._get_param("ArtifactStoreUri")
        role = response._get_param("RoleArn")
        try:
            credentials = authorisation.service_credentials(role, "sagemaker.amazonaws.com", arn)
        except authorisation.AccessDenied as denial:
            raise ValidationError(f"RoleArn: SageMaker cannot assume {role}: {denial}") from None
        env = {
            **os.environ,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            # The server reaches its artifact store as the tracking server's role, assumed by SageMaker.
            **{key.upper(): value for key, value in credentials.items()},
            "AWS_DEFAULT_REGION": backend.region_name,
            # MLflow 3's job runner (GenAI scorers, not part of what SageMaker's tracking serves)
            # starts seven huey consumer processes, each importing MLflow: 15 s of CPU for nothing.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--serve-artifacts", "--artifacts-destination", store,
        ]  # fmt: skip
        log = (folder / "server.log").open("wb")
        # A process group of its own: stopping it stops whatever the server started too.
        self._processes[name] = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        now = self.clock.naive_now()
        servers[name] = {
            "TrackingServerArn": arn,
            "TrackingServerName": name,
            "ArtifactStoreUri": store,
            "TrackingServerSize": response._get_param("TrackingServerSize") or "Small",
            "MlflowVersion": response._get_param("MlflowVersion") or _mlflow_version(),
            "RoleArn": response._get_param("RoleArn"),
            "TrackingServerStatus": "Creating",
            "IsActive": "Inactive",
            "TrackingServerUrl": f"http://127.0.0.1:{port}",
            "AutomaticModelRegistration": bool(response._get_param("AutomaticModelRegistration")),
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        if response._get_param("WeeklyMaintenanceWindowStart"):
            servers[name]["WeeklyMaintenanceWindowStart"] = response._get_param(
                "WeeklyMaintenanceWindowStart"
            )
        return {"TrackingServerArn": arn}

    def _refresh(self, server: dict[str, Any]) -> dict[str, Any]:
        if server["TrackingServerStatus"] != "Creating":
            return server
        process = self._processes.get(server["TrackingServerName"])
        if process is None or process.poll() is not None:
            server["TrackingServerStatus"] = "CreateFailed"
            return server
        try:
            with urllib.request.urlopen(f"{server['TrackingServerUrl']}/health", timeout=0.5) as answer:
                healthy = answer.status == 200
        except OSError:
            healthy = False
        if healthy:
            server |= {"TrackingServerStatus": "Created", "IsActive": "Active"}
        return server

    def describe(self, response: Any) -> dict[str, Any]:
        name = response._get_param("TrackingServerName")
        server = self._servers(response).get(name)
        if server is None:
            raise ValidationError(f"Tracking server {name} does not exist.")
        return dict(self._refresh(server))

    def list(self, response: Any) -> dict[str, Any]:
        summaries = [
            {k: s[k] for k in ("TrackingServerArn", "TrackingServerName", "CreationTime", "LastModifiedTime",
                               "TrackingServerStatus", "IsActive", "MlflowVersion")}
            for s in map(self._refresh, self._servers(response).values())
        ]  # fmt: skip
        return {"TrackingServerSummaries": summaries}

    def delete(self, response: Any) -> dict[str, Any]:
        name = response._get_param("TrackingServerName")
        server = self._servers(response).get(name)
        if server is None:
            raise ValidationError(f"Tracking server {name} does not exist.")
        process = self._processes.pop(name, None)
        if process is not None:
            _stop(process)
        del self._servers(response)[name]
        return {"TrackingServerArn": server["TrackingServerArn"]}


def _stop(process: subprocess.Popen) -> None:
    """Stop a server this behaviour started and its children (SIGTERM, then SIGKILL if it lingers)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the whole group has ended
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


__all__ = ["MlflowBehaviour"]
