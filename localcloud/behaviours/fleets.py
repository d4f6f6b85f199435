"""The containers behind endpoints: each variant served by the image's own model server.

SageMaker gives every production and shadow variant of the configuration an endpoint serves a
fleet of instances, runs the model's image on each (``serve``) with the artifact extracted into
``/opt/ml/model``, and sends traffic only once the container answers ``GET /ping`` with 200.
Here each (endpoint, configuration, variant) gets one :class:`~model_code.serving.process.ServerProcess`
on 127.0.0.1: ``mlops serve``, the gunicorn server the image runs, started from a clean
environment (the image's, then the model package's and the model's ``Environment``) in a
throwaway home, forked from the warm-start zygote that has already imported scikit-learn and
pandas (:mod:`pipelines.local.warm`; ``MLOPS_COLD_STARTS=1``: a fresh interpreter each).

* **Artifact.** The ``ModelDataUrl`` of the model's container, or of its model package, read
  from the emulator's S3 and extracted. A missing object or an archive that is not a tar.gz
  fails the deployment with SageMaker's reason.
* **Health check.** The server must answer /ping with 200 within four minutes of starting
  (SageMaker's limit); one that exits first (a model that cannot load) fails the deployment:
  "The primary container for production variant <variant> did not pass the ping health check."
  A failed ``CreateEndpoint`` leaves the endpoint ``Failed``; a failed ``UpdateEndpoint``
  leaves it ``InService`` on its old configuration, both with that ``FailureReason``
  (:mod:`.rollouts`).
* **Workers.** ``SAGEMAKER_MODEL_SERVER_WORKERS`` from the model's environment, else one: on
  AWS a worker per core of the instance; here every variant and pipeline step share this
  machine's cores.
* **Logs.** Each server's output goes to CloudWatch Logs, group ``/aws/sagemaker/Endpoints/<endpoint>``
  (created if the stack has not), stream ``<variant>/<instance id>``: once it has started or failed
  its health check, then at each clock step.
* **Instance metrics.** Once a minute, ``CPUUtilization`` (percent of one core, summed over the
  server's processes, as SageMaker sums cores) and ``MemoryUtilization`` (their proportional
  set size, percent of this machine's memory) per variant under ``/aws/sagemaker/Endpoints``.
* **Retirement.** A fleet that no longer serves (its rollout completed or rolled back, the
  endpoint deleted) gets SIGTERM: it answers the requests it has accepted, then exits.

* **Reaching AWS.** A container's AWS calls (a model server's online feature lookup) go to
  the emulator: its address, region and credentials are in the environment, as SageMaker gives
  a container its role's credentials. moto keeps no ``EnableNetworkIsolation`` (it reads back
  false), so isolation is not enforced here: a container could call out where AWS would block it.

Not emulated: instance counts (one server per variant) and autoscaling, provisioning time
(a server starts in well under a second, warm), the 2 s limit on each /ping during health
checks (the server answers in milliseconds), GPU metrics and disk utilisation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from moto.cloudwatch.models import MetricDatum, cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends
from moto.sagemaker import responses as sm_responses
from moto.utilities.utils import get_partition

from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher
from localcloud.emulator import authorisation
from model_code.serving.process import Launcher, ServerProcess
from model_code.serving.serve import EXIT_WITH_PARENT_VARIABLE, WORKERS_VARIABLE
from pipelines.local import warm
from pipelines.local.containers import IMAGE_ENV, IMAGE_PATH, REPO_ROOT

log = logging.getLogger(__name__)

# SageMaker fails a container that has not answered /ping with 200 four minutes after it started.
HEALTH_CHECK_SECONDS = 240
LOCAL_WORKERS = "1"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"


class DeploymentFailed(Exception):
    """A variant's container could not start; the message is the endpoint's FailureReason."""


@dataclass
class Container:
    """One variant's running server and where its log has been shipped to."""

    endpoint: str
    config: str
    variant: str
    region: str
    server: ServerProcess
    folder: Path
    instance: str
    shipped: int = 0
    cpu: tuple[float, float] = field(default=(0.0, 0.0))
    shipping: threading.Lock = field(default_factory=threading.Lock)

    @property
    def stream(self) -> str:
        return f"{self.variant}/{self.instance}"


class Fleets:
    """The running containers, by (endpoint, configuration, variant)."""

    def __init__(self, clock: Clock, patcher: Patcher, endpoint_url: str | None = None) -> None:
        self.clock = clock
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._containers: dict[tuple[str, str, str], Future] = {}
        self._workdir = tempfile.TemporaryDirectory(prefix="mlops-endpoints-")
        patcher.wrap(sm_responses.SageMakerResponse, "create_endpoint", self._wrap_create)
        patcher.wrap(sm_responses.SageMakerResponse, "delete_endpoint", self._wrap_delete)
        clock.subscribe(self.on_step)
        patcher.on_restore(lambda: clock.unsubscribe(self.on_step))
        patcher.on_restore(self.close)

    def _reach(self, backend: Any, endpoint: str, model_name: str) -> dict[str, str]:
        """What a container needs to call the emulator: its endpoint, region, and the model's
        execution role credentials, as SageMaker gives a container (assumed for the endpoint)."""
        if self.endpoint_url is None:
            return {}
        region = backend.region_name
        role = backend._models[model_name].execution_role_arn
        source = f"arn:aws:sagemaker:{region}:{backend.account_id}:endpoint/{endpoint.lower()}"
        try:
            credentials = authorisation.service_credentials(role, "sagemaker.amazonaws.com", source)
        except authorisation.AccessDenied as denial:
            raise DeploymentFailed(
                f"SageMaker could not assume the model's execution role: {denial}"
            ) from None
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            **{key.upper(): value for key, value in credentials.items()},
        }

    # -- deployments -------------------------------------------------------------------------

    def _wrap_create(self, original: Any) -> Any:
        fleets = self

        def create_endpoint(response: Any) -> Any:
            result = original(response)
            backend = response.sagemaker_backend
            endpoint = backend.endpoints[response._get_param("EndpointName")]
            try:
                fleets.provision(backend, endpoint.endpoint_name, endpoint.endpoint_config_name)
            except DeploymentFailed as failure:
                endpoint.endpoint_status = "Failed"
                endpoint.failure_reason = str(failure)
            return result

        return create_endpoint

    def _wrap_delete(self, original: Any) -> Any:
        fleets = self

        def delete_endpoint(response: Any) -> Any:
            result = original(response)
            fleets.retire(response._get_param("EndpointName"), keep=None)
            return result

        return delete_endpoint

    def provision(self, backend: Any, endpoint: str, config_name: str) -> None:
        """Start a server for every variant of the configuration; raise DeploymentFailed if any
        cannot serve (and leave none of this configuration's running)."""
        config = backend.endpoint_configs[config_name]
        variants = [
            *config.production_variants,
            *(getattr(config, "shadow_production_variants", None) or []),
        ]
        with ThreadPoolExecutor(max_workers=max(1, len(variants))) as pool:
            starts = [pool.submit(self.container, backend, endpoint, config_name, v) for v in variants]
        failures = [f.exception() for f in starts if f.exception() is not None]
        if failures:
            self.retire(endpoint, keep=None, only=config_name)
            first = failures[0]
            raise first if isinstance(first, DeploymentFailed) else DeploymentFailed(str(first))

    def container(self, backend: Any, endpoint: str, config_name: str, variant: dict[str, Any]) -> Container:
        """The variant's running container, started now if it is not running yet."""
        key = (endpoint, config_name, variant["VariantName"])
        with self._lock:
            future = self._containers.get(key)
            starting = future is None
            if starting:
                future = self._containers[key] = Future()
        if starting:
            try:
                future.set_result(self._start(backend, endpoint, config_name, variant))
            except BaseException as error:
                with self._lock:
                    self._containers.pop(key, None)
                future.set_exception(error)
        return future.result()

    def _start(self, backend: Any, endpoint: str, config_name: str, variant: dict[str, Any]) -> Container:
        name = variant["VariantName"]
        uri, environment, image = _model_data(backend, variant["ModelName"])
        folder = Path(tempfile.mkdtemp(prefix=f"{endpoint}-{name}-", dir=self._workdir.name))
        try:
            _read_as_role(backend, variant["ModelName"], uri, image)
            _extract(uri, backend.region_name, folder / "model")
        except DeploymentFailed:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        (folder / "home").mkdir()
        env = {
            **IMAGE_ENV,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{IMAGE_PATH}",
            "PYTHONPATH": str(REPO_ROOT),  # the image installs this checkout
            "HOME": str(folder / "home"),
            WORKERS_VARIABLE: LOCAL_WORKERS,
            **self._reach(backend, endpoint, variant["ModelName"]),
            **environment,
            # Never outlive the emulator, even one that is killed.
            EXIT_WITH_PARENT_VARIABLE: "1",
        }
        server = ServerProcess(str(folder / "model"), env=env, inherit_env=False, launch=_launcher())
        instance = "i-" + hashlib.sha256(f"{endpoint}/{config_name}/{name}".encode()).hexdigest()[:17]
        container = Container(endpoint, config_name, name, backend.region_name, server, folder, instance)
        try:
            server.start(timeout=HEALTH_CHECK_SECONDS)
        except (RuntimeError, TimeoutError) as error:
            log.info("variant %s of %s failed its health check: %s", name, endpoint, error)
            self._stop(container, create_group=True)  # its last words are where the reason points
            raise DeploymentFailed(
                f"The primary container for production variant {name} did not pass the ping health "
                "check. Please check CloudWatch logs for this endpoint."
            ) from None
        container.cpu = (_cpu_seconds(server), time.monotonic())
        self._ship(container)  # its start, as soon as SageMaker would show it
        return container

    def retire(self, endpoint: str, keep: str | None, only: str | None = None) -> None:
        """SIGTERM the endpoint's containers of every configuration but ``keep`` (or just ``only``)."""
        with self._lock:
            keys = [
                k
                for k in self._containers
                if k[0] == endpoint and k[1] != keep and (only is None or k[1] == only)
            ]
            leaving = [self._containers.pop(k) for k in keys]
        for future in leaving:
            # Once started (at once if it has): it answers what it accepted; nothing here waits.
            future.add_done_callback(self._stop_in_background)

    def _stop_in_background(self, future: Future) -> None:
        if future.exception() is None:
            threading.Thread(target=self._stop, args=(future.result(),), daemon=True).start()

    def _stop(self, container: Container, create_group: bool = False) -> None:
        container.server.stop()
        # Its last words; by default not into a group that has gone (a destroy deletes it after the endpoint).
        self._ship(container, create=create_group)
        container.server.close()
        shutil.rmtree(container.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop every server (each finishing its accepted requests) and remove their folders."""
        with self._lock:
            futures = list(self._containers.values())
            self._containers.clear()
        running = [f.result() for f in futures if f.exception() is None]  # waits for any starting
        for container in running:
            container.server.terminate()
        for container in running:
            self._stop(container)
        self._workdir.cleanup()

    # -- logs and instance metrics -------------------------------------------------------------

    def on_step(self, now: datetime) -> None:
        with self._lock:
            running = [f.result() for f in self._containers.values() if f.done() and f.exception() is None]
        for container in running:
            self._ship(container)
        if now.second == 0:
            for container in running:
                self._instance_metrics(container, now)

    def _ship(self, container: Container, create: bool = True) -> None:
        """Send what the server wrote since last time to its CloudWatch Logs stream (creating
        the group if it is missing, as SageMaker does, unless ``create`` is False)."""
        with container.shipping:  # the clock's step and a retirement may ship at once
            text = container.server.output(container.shipped)
            container.shipped += len(text)
        if not text:
            return
        backend = logs_backends[DEFAULT_ACCOUNT_ID][container.region]
        group = f"/aws/sagemaker/Endpoints/{container.endpoint}"
        if group not in backend.groups:
            if not create:
                return
            backend.create_log_group(group, {})
        if container.stream not in backend.groups[group].streams:
            backend.create_log_stream(group, container.stream)
        stamp = int(self.clock.now().timestamp() * 1000)
        lines = text.decode(errors="replace").splitlines()
        # Straight into the stream: PutLogEvents would refuse the virtual clock's old timestamps.
        backend.groups[group].put_log_events(
            container.stream, [{"timestamp": stamp, "message": line} for line in lines if line.strip()]
        )

    def _instance_metrics(self, container: Container, now: datetime) -> None:
        cpu, wall = _cpu_seconds(container.server), time.monotonic()
        busy = 100.0 * max(0.0, cpu - container.cpu[0]) / max(wall - container.cpu[1], 1e-6)
        container.cpu = (cpu, wall)
        memory = 100.0 * _memory_bytes(container.server) / psutil.virtual_memory().total
        dims = [
            {"Name": "EndpointName", "Value": container.endpoint},
            {"Name": "VariantName", "Value": container.variant},
        ]
        data = cloudwatch_backends[DEFAULT_ACCOUNT_ID][container.region].metric_data
        stamp = now.replace(tzinfo=None)
        data.append(MetricDatum(INSTANCE_NAMESPACE, "CPUUtilization", busy, dims, stamp))
        data.append(MetricDatum(INSTANCE_NAMESPACE, "MemoryUtilization", memory, dims, stamp))


def _launcher() -> Launcher | None:
    """Servers forked from the warm-start zygote, whose imports are done (as pipeline steps
    are), unless ``MLOPS_COLD_STARTS=1``: then each is a fresh interpreter."""
    if os.environ.get(warm.COLD) == "1":
        return None

    def launch(args: list[str], fd: int, env: dict[str, str], log: str) -> warm.WarmProcess:
        home = Path(env["HOME"])
        return warm.spawn("model_code.serving.serve", [*args, "--fd", "{fd}"], env, home, Path(log), fd)

    return launch


def _model_data(backend: Any, model_name: str) -> tuple[str, dict[str, str], str]:
    """The model's artifact URI, container environment (its package's, then its own) and image."""
    model = backend._models.get(model_name)
    if model is None:
        raise DeploymentFailed(f"Could not find model {model_name}.")
    container = model.primary_container or (model.containers or [{}])[0]
    environment: dict[str, str] = {}
    uri, image = container.get("ModelDataUrl"), container.get("Image") or ""
    if container.get("ModelPackageName"):
        package = backend.describe_model_package(container["ModelPackageName"])
        packaged = package.inference_specification["Containers"][0]
        uri, image = uri or packaged.get("ModelDataUrl"), image or packaged.get("Image", "")
        environment.update(packaged.get("Environment") or {})
    environment.update(container.get("Environment") or {})
    if not uri:
        raise DeploymentFailed(f"Model {model_name} has no ModelDataUrl, nor does its model package.")
    return uri, environment, image


def _read_as_role(backend: Any, model_name: str, uri: str, image: str) -> None:
    """SageMaker pulls the image and downloads the model data as the model's execution role:
    refused as on AWS."""
    role = backend._models[model_name].execution_role_arn
    found = re.fullmatch(r"(\d{12})\.dkr\.ecr\.([\w-]+)\.amazonaws\.com/([^:@]+).*", image)
    if found:
        account, region, repository = found.groups()
        principal = authorisation.role_principal(role, "SageMaker")
        try:
            authorisation.authorise(principal, "ecr:GetAuthorizationToken", "*")
            for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
                authorisation.authorise(
                    principal, action, f"arn:aws:ecr:{region}:{account}:repository/{repository}"
                )
        except authorisation.AccessDenied as denial:
            raise DeploymentFailed(
                f"The execution role for model {model_name} could not pull the image {image}: {denial}"
            ) from None
    try:
        authorisation.authorise_model_read(role, uri, backend.region_name)
    except authorisation.AccessDenied as denial:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        raise DeploymentFailed(
            f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there is "
            "an object located at the URL and that the role passed to CreateModel has permissions to "
            f"download the model. {denial}"
        ) from None


def _extract(uri: str, region: str, target: Path) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        data = bytes(s3_backends[DEFAULT_ACCOUNT_ID][get_partition(region)].get_object(bucket, key).value)
    except Exception:
        raise DeploymentFailed(
            f"Could not find model data at {uri}. Please ensure that the object exists."
        ) from None
    archive = target.parent / "model.tar.gz"
    archive.write_bytes(data)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError):
        raise DeploymentFailed(
            f'Failed to extract model data archive from URL "{uri}". Please ensure that the object '
            "located at the URL is a valid tar.gz archive."
        ) from None
    finally:
        archive.unlink()


def _processes(server: ServerProcess) -> list[psutil.Process]:
    try:
        master = psutil.Process(server.process.pid)
        return [master, *master.children(recursive=True)]
    except (psutil.Error, AttributeError):
        return []


def _cpu_seconds(server: ServerProcess) -> float:
    total = 0.0
    for process in _processes(server):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _memory_bytes(server: ServerProcess) -> float:
    total = 0.0
    for process in _processes(server):
        try:
            info = process.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return total
