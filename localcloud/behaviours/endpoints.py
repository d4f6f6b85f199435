"""Endpoints that serve: ``InvokeEndpoint`` answered by each variant's container, as SageMaker routes it.

Requests to ``/endpoints/<name>/invocations`` (the runtime's REST path) are routed from the
endpoint as the emulator stores it: its configuration's production variants (weights as
``DescribeEndpoint`` reports them, or the traffic split of a rollout in progress, see
:mod:`.rollouts`), the configuration's data capture and shadow variants. Each variant's
container is the image's model server (``mlops serve``) running on 127.0.0.1 (:mod:`.fleets`):
the request is sent to its ``POST /invocations`` with the caller's body, ``Content-Type`` and
``Accept``, as SageMaker forwards it.

* ``TargetVariant`` picks the variant; otherwise the weights do (a seeded draw per endpoint, so a
  run is repeatable);
* a container's 4xx or 5xx reaches the caller as SageMaker reports it: ``ModelError`` (HTTP 424)
  with ``OriginalStatusCode`` and ``OriginalMessage``; a container that does not answer within
  60 s, or drops the connection, is a ``ModelError`` with status 0; an unknown endpoint is a
  ``ValidationError``;
* a shadow variant gets a copy of its sampled share of the requests (its weight relative to the
  production variants'); its answer is captured and measured, never returned;
* data capture: sampled requests and responses as JSON Lines in SageMaker's layout
  ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``, written at
  each clock step (SageMaker writes every few minutes);
* metrics per variant under ``AWS/SageMaker`` (``Invocations``, ``Invocation4XXErrors``,
  ``Invocation5XXErrors``, ``ModelLatency``: the container's round trip, and ``OverheadLatency``,
  in microseconds, unit ``Microseconds`` as SageMaker documents them) at the virtual time of the
  request, one raw value per request; instance metrics come from :mod:`.fleets`;
* ``GetMetricData`` answers percentiles (``p99``) of raw values per period, as CloudWatch does
  (moto answers none): what the latency alarm judges is what the dashboard draws;
* an endpoint's and an endpoint configuration's ``CreationTime`` (and the endpoint's
  ``LastModifiedTime``) are the virtual clock's, as every other time the emulator reports, so a
  dashboard can mark deployments on its time axis.

Not emulated: serverless and async endpoints, multi-model and inference components, custom
attributes, response streaming, ``InferenceId`` beyond capture.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch import models as cw_models
from moto.cloudwatch.models import MetricDatum, cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.sagemaker import models as sm_models
from werkzeug.wrappers import Request, Response

from localcloud.behaviours.alarms import statistic
from localcloud.behaviours.clock import Clock
from localcloud.behaviours.fleets import DeploymentFailed, Fleets
from localcloud.behaviours.patching import Patcher

_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
_ENCODINGS = {"text/csv": "CSV", "application/json": "JSON"}
# SageMaker's limit on a container's answer to one invocation.
INVOCATION_TIMEOUT_SECONDS = 60


def _error(code: str, status: int, message: str, **extra: Any) -> Response:
    return Response(
        json.dumps({"message": message, **extra}),
        status=status,
        headers={"x-amzn-ErrorType": code},
        mimetype="application/json",
    )


class EndpointBehaviour:
    def __init__(self, clock: Clock, patcher: Patcher, fleets: Fleets) -> None:
        self.clock = clock
        self.fleets = fleets
        self._lock = threading.Lock()
        self._captures: dict[str, list[str]] = defaultdict(list)
        self._random: dict[str, random.Random] = {}
        clock.subscribe(self.on_step)
        patcher.on_restore(lambda: clock.unsubscribe(self.on_step))
        patcher.wrap(cw_models.CloudWatchBackend, "get_metric_data", _with_percentiles)
        for kind in ("endpoint", "endpoint_config"):
            patcher.wrap(sm_models.SageMakerModelBackend, f"create_{kind}", _on_clock(clock, kind))

    # -- HTTP ------------------------------------------------------------------------------

    @staticmethod
    def matches(path: str) -> bool:
        return _PATH.match(path) is not None

    def handle(self, environ: dict[str, Any]) -> Response:
        started = time.perf_counter()
        request = Request(environ)
        name = _PATH.match(request.path).group(1)
        found = re.search(r"Credential=[^/]+/\d+/([^/]+)/", request.headers.get("Authorization", ""))
        region = found.group(1) if found else "us-east-1"
        backend = sm_models.sagemaker_backends[DEFAULT_ACCOUNT_ID][region]
        endpoint = backend.endpoints.get(name)
        if endpoint is None or endpoint.endpoint_status not in ("InService", "Updating"):
            state = "not found" if endpoint is None else f"in status {endpoint.endpoint_status}"
            return _error("ValidationError", 400, f"Endpoint {name} of account {DEFAULT_ACCOUNT_ID} {state}.")
        body = request.get_data()
        content_type, accept = request.headers.get("Content-Type"), request.headers.get("Accept")
        config, variants = self.route(
            backend, endpoint, request.headers.get("X-Amzn-SageMaker-Target-Variant")
        )
        if variants is None:
            target = request.headers.get("X-Amzn-SageMaker-Target-Variant")
            return _error("ValidationError", 400, f"Variant {target} not found for endpoint {name}.")
        variant = variants
        status, answer, answer_type, model_seconds = self._serve(
            backend, name, config, variant, body, content_type, accept
        )
        now = self.clock.now()
        self._capture(
            config, name, variant["VariantName"], body, content_type, answer, answer_type, now, request
        )
        for shadow in getattr(config, "shadow_production_variants", None) or []:
            if self._rng(name).random() < self._shadow_share(config, shadow):
                s_status, s_answer, s_type, s_seconds = self._serve(
                    backend, name, config, shadow, body, content_type, accept
                )
                self._capture(
                    config, name, shadow["VariantName"], body, content_type, s_answer, s_type, now, request
                )
                self._metrics(region, name, shadow["VariantName"], s_status, s_seconds, 0.0, now)
        overhead = time.perf_counter() - started - model_seconds
        self._metrics(region, name, variant["VariantName"], status, model_seconds, overhead, now)
        if status != 200:
            message = answer.decode(errors="replace")
            kind = "client" if 400 <= status < 500 else "server"
            return _error(
                "ModelError",
                424,
                f'Received {kind} error ({status}) from primary with message "{message}". See '
                f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:"
                f"group=/aws/sagemaker/Endpoints/{name} in account {DEFAULT_ACCOUNT_ID} for more information.",
                OriginalStatusCode=status,
                OriginalMessage=message,
                LogStreamArn=f"arn:aws:logs:{region}:{DEFAULT_ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/{name}",
            )
        return Response(
            answer,
            headers={
                "Content-Type": answer_type,
                "x-Amzn-Invoked-Production-Variant": variant["VariantName"],
            },
        )

    # -- routing ---------------------------------------------------------------------------

    def _rng(self, name: str) -> random.Random:
        if name not in self._random:
            self._random[name] = random.Random(name)
        return self._random[name]

    def route(self, backend: Any, endpoint: Any, target: str | None) -> tuple[Any, dict[str, Any] | None]:
        """(configuration, variant) for one request: the rollout's fleets first, then the weights."""
        fleets = getattr(endpoint, "mlops_fleets", None) or [(endpoint.endpoint_config_name, 1.0)]
        rng = self._rng(endpoint.endpoint_name)
        draw, chosen = rng.random(), fleets[-1][0]
        for config_name, share in fleets:
            if draw < share:
                chosen = config_name
                break
            draw -= share
        config = backend.endpoint_configs[chosen]
        variants = config.production_variants
        if target is not None:
            return config, next((v for v in variants if v["VariantName"] == target), None)
        current = {v["VariantName"]: v.get("CurrentWeight") for v in endpoint.production_variants}
        weights = [
            float(
                current.get(v["VariantName"])
                if current.get(v["VariantName"]) is not None
                else v.get("InitialVariantWeight", 1.0)
            )
            for v in variants
        ]
        if len(fleets) > 1 or sum(weights) <= 0:  # during a rollout each fleet keeps its configured weights
            weights = [float(v.get("InitialVariantWeight", 1.0)) for v in variants]
        return config, rng.choices(variants, weights=weights)[0]

    @staticmethod
    def _shadow_share(config: Any, shadow: dict[str, Any]) -> float:
        production = sum(float(v.get("InitialVariantWeight", 1.0)) for v in config.production_variants) or 1.0
        return min(1.0, float(shadow.get("InitialVariantWeight", 1.0)) / production)

    # -- serving ---------------------------------------------------------------------------

    def _serve(
        self,
        backend: Any,
        endpoint: str,
        config: Any,
        variant: dict[str, Any],
        body: bytes,
        content_type: str | None,
        accept: str | None,
    ) -> tuple[int, bytes, str, float]:
        """(status, body, content type, seconds) as the variant's container answers."""
        try:
            container = self.fleets.container(backend, endpoint, config.endpoint_config_name, variant)
        except DeploymentFailed as failure:  # started on demand (a fleet retired, or never provisioned)
            return 0, str(failure).encode(), "text/plain", 0.0
        headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
        started = time.perf_counter()
        connection = http.client.HTTPConnection(
            container.server.host, container.server.port, timeout=INVOCATION_TIMEOUT_SECONDS
        )
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            answer = connection.getresponse()
            status, data = answer.status, answer.read()
            answer_type = answer.getheader("Content-Type") or "application/octet-stream"
        except (OSError, http.client.HTTPException) as error:
            status, data, answer_type = 0, f"{type(error).__name__}: {error}".encode(), "text/plain"
        finally:
            connection.close()
        return status, data, answer_type, time.perf_counter() - started

    # -- capture and metrics ---------------------------------------------------------------

    def _capture(
        self,
        config: Any,
        endpoint: str,
        variant: str,
        body: bytes,
        content_type: str | None,
        answer: bytes,
        answer_type: str,
        now: datetime,
        request: Request,
    ) -> None:
        capture = config.data_capture_config or {}
        if not capture.get("EnableCapture"):
            return
        if self._rng(endpoint + "/capture").random() * 100 >= float(
            capture.get("InitialSamplingPercentage", 100)
        ):
            return
        modes = {
            o["CaptureMode"]
            for o in capture.get("CaptureOptions") or [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
        }

        def side(data: bytes, observed: str | None, mode: str) -> dict[str, Any]:
            media = (observed or "").split(";")[0].strip().lower()
            encoding = _ENCODINGS.get(media, "BASE64")
            text = base64.b64encode(data).decode() if encoding == "BASE64" else data.decode(errors="replace")
            return {"observedContentType": observed or "", "mode": mode, "data": text, "encoding": encoding}

        data: dict[str, Any] = {}
        if "Input" in modes:
            data["endpointInput"] = side(body, content_type, "INPUT")
        if "Output" in modes:
            data["endpointOutput"] = side(answer, answer_type, "OUTPUT")
        metadata = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        if request.headers.get("X-Amzn-SageMaker-Inference-Id"):
            metadata["inferenceId"] = request.headers["X-Amzn-SageMaker-Inference-Id"]
        line = json.dumps({"captureData": data, "eventMetadata": metadata, "eventVersion": "0"})
        prefix = f"{capture['DestinationS3Uri'].rstrip('/')}/{endpoint}/{variant}/{now:%Y/%m/%d/%H}"
        with self._lock:
            self._captures[prefix].append(line)

    def _metrics(
        self,
        region: str,
        endpoint: str,
        variant: str,
        status: int,
        model: float,
        overhead: float,
        now: datetime,
    ) -> None:
        dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
        stamp = now.replace(tzinfo=None)
        values = {
            "Invocations": 1.0,
            "Invocation4XXErrors": float(400 <= status < 500),
            # A container that answers nothing counts as a server error.
            "Invocation5XXErrors": float(status >= 500 or status == 0),
            "ModelLatency": model * 1e6,
            "OverheadLatency": max(overhead, 0.0) * 1e6,
        }
        # Appended as PutMetricData would store them (the list only grows: safe across threads).
        data = cloudwatch_backends[DEFAULT_ACCOUNT_ID][region].metric_data
        for metric, value in values.items():
            unit = "Microseconds" if metric.endswith("Latency") else "None"
            data.append(MetricDatum("AWS/SageMaker", metric, value, dims, stamp, unit))

    def on_step(self, now: datetime) -> None:
        """Write the captured lines of the step."""
        with self._lock:
            captures, self._captures = self._captures, defaultdict(list)
        # S3 keeps buckets per partition; the emulator serves the "aws" partition.
        for prefix, lines in captures.items():
            bucket, _, key = prefix.removeprefix("s3://").partition("/")
            name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            s3_backends[DEFAULT_ACCOUNT_ID]["aws"].put_object(
                bucket, f"{key}/{name}", ("\n".join(lines) + "\n").encode()
            )


def _on_clock(clock: Clock, kind: str) -> Any:
    """``Create<kind>`` with the virtual clock's time as creation (and modification) time."""

    def wrap(original: Any) -> Any:
        def create(backend: Any, *args: Any, **kwargs: Any) -> Any:
            answer = original(backend, *args, **kwargs)
            name = kwargs.get(f"{kind}_name") or (args[0] if args else None)
            found = (backend.endpoints if kind == "endpoint" else backend.endpoint_configs).get(name)
            if found is not None:
                found.creation_time = clock.naive_now()
                if kind == "endpoint":
                    found.last_modified_time = found.creation_time
            return answer

        return create

    return wrap


def _with_percentiles(original: Any) -> Any:
    """GetMetricData with ``pNN`` statistics computed on the raw values of each period."""

    def get_metric_data(backend: Any, queries: list[dict[str, Any]], start_time: datetime, end_time: datetime,
                        *args: Any, **kwargs: Any) -> list[dict[str, Any]]:  # fmt: skip
        results = original(backend, queries, start_time, end_time, *args, **kwargs)
        wanted = {
            q["Id"]: q["MetricStat"]
            for q in queries
            if "MetricStat" in q and re.fullmatch(r"p\d+(\.\d+)?", q["MetricStat"]["Stat"])
        }
        if not wanted:
            return results
        start, end = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
        data = [d for d in backend.get_all_metrics() if start <= d.timestamp < end and hasattr(d, "value")]
        for result in results:
            stat = wanted.get(result["id"])
            if stat is None:
                continue
            metric = stat["Metric"]
            dims = sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
            period = int(stat["Period"])
            buckets: dict[int, list[Any]] = defaultdict(list)
            for d in data:
                if (
                    d.namespace == metric["Namespace"]
                    and d.name == metric["MetricName"]
                    and sorted((x.name, x.value) for x in d.dimensions) == dims
                ):
                    buckets[int((d.timestamp - start).total_seconds() // period)].append(d)
            points = sorted((n, statistic(stat["Stat"], datums)) for n, datums in buckets.items())
            points = [(start + timedelta(seconds=n * period), v) for n, v in points if v is not None]
            if kwargs.get("scan_by", args[0] if args else None) == "TimestampDescending":
                points.reverse()
            result["timestamps"], result["values"] = [t for t, _ in points], [v for _, v in points]
        return results

    return get_metric_data
