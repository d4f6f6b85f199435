"""The SageMaker Feature Store runtime moto lacks: PutRecord, GetRecord, BatchGetRecord, DeleteRecord.

Requests to ``/FeatureGroup/<name>`` and ``/BatchGetRecord`` (the runtime's REST paths) are
answered here from the feature group as the emulator stores it (its feature definitions,
record identifier, event time feature and offline store configuration):

* the online store keeps the latest record per identifier (a put with an older event time than
  the stored one does not replace it, as in SageMaker); ``GetRecord`` of an unknown identifier is
  an empty answer, of an unknown group ``ResourceNotFound``;
* every put and delete is also written to the offline store in S3 in SageMaker's layout:
  ``<S3Uri>/<account>/sagemaker/<region>/offline-store/<group>-<creation epoch>/data/
  year=YYYY/month=MM/day=DD/hour=HH/<time>_<id>.parquet``, partitioned by the record's event time,
  with the features typed by their definitions plus ``write_time``, ``api_invocation_time`` and
  ``is_deleted`` columns. As on AWS, a record reaches the offline store some time after the call:
  ``api_invocation_time`` is when PutRecord (or DeleteRecord) was called, ``write_time`` when the
  row was written, at the first clock step at least ``offline_delay_seconds`` later (default
  :data:`OFFLINE_DELAY_SECONDS`, the 15 minutes AWS documents as the most it takes; set it with
  ``install(offline_store_delay=...)``), one file per partition and step. The two times are
  Parquet timestamps without a time zone, in UTC, at millisecond precision, as a reader of
  SageMaker's files must expect (not pandas' timezone-aware ones). The group's
  ``ResolvedOutputS3Uri`` is corrected to this layout (moto left out ``sagemaker/``).

Bad records get ``ValidationError`` naming the feature: unknown features, a missing identifier or
event time, values that are not of the feature's type, event times in a format SageMaker does not
accept: a String event time is ``yyyy-MM-dd'T'HH:mm:ssZ`` or ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (three
digits of fractions, no more, no fewer), a Fractional one epoch seconds.

Not emulated: TTL, ``TargetStores`` (both stores are written), ``BatchWriteRecord``,
``ListRecords``, ``UpdateRecord``, Iceberg tables, the Glue catalog's partitions; moto drops the
group's ``OnlineStoreConfig``, so every group is treated as having an online store.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.sagemaker import models as sm_models
from moto.utilities.utils import get_partition
from werkzeug.wrappers import Request, Response

from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher
from localcloud.emulator import authorisation

log = logging.getLogger(__name__)

# The two String forms SageMaker Feature Store accepts for an event time (its developer guide).
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
# How long after the API call a record is written to the offline store: AWS documents up to 15 minutes.
OFFLINE_DELAY_SECONDS = 900
_DTYPES = {"Integral": "Int64", "Fractional": "float64", "String": "string"}


class FeatureStoreError(Exception):
    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _region(request: Request) -> str:
    found = re.search(r"Credential=[^/]+/\d+/([^/]+)/", request.headers.get("Authorization", ""))
    return found.group(1) if found else "us-east-1"


def _group(region: str, name: str, missing: str = "ResourceNotFound") -> Any:
    backend = sm_models.sagemaker_backends[DEFAULT_ACCOUNT_ID][region]
    for group in backend.feature_groups.values():
        if group.feature_group_name == name or group.arn == name:
            return group
    status = 404 if missing == "ResourceNotFound" else 400
    raise FeatureStoreError(
        missing, status, f"Resource Not Found: Amazon SageMaker can't find a FeatureGroup with name {name}"
    )


def event_time(value: str, kind: str, feature: str) -> datetime:
    """The event time SageMaker accepts: epoch seconds (Fractional) or ISO-8601 UTC ending in Z (String)."""
    if kind == "String":
        if not _ISO.match(value):
            raise FeatureStoreError(
                "ValidationError",
                400,
                f"{feature}: {value!r} is not yyyy-MM-ddTHH:mm:ss[.SSS]Z, as event times must be",
            )
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        raise FeatureStoreError(
            "ValidationError", 400, f"{feature}: {value!r} is not a number of seconds"
        ) from None


def _check(group: Any, record: list[dict[str, Any]]) -> dict[str, str]:
    kinds = {d["FeatureName"]: d["FeatureType"] for d in group.feature_definitions}
    values = {}
    for item in record:
        name = item["FeatureName"]
        if name not in kinds:
            raise FeatureStoreError(
                "ValidationError",
                400,
                f"{name}: not a feature of {group.feature_group_name} ({', '.join(kinds)})",
            )
        value = item.get("ValueAsString")
        if value is None:
            raise FeatureStoreError(
                "ValidationError", 400, f"{name}: ValueAsStringList is only for collection features"
            )
        if kinds[name] == "Integral" and not re.fullmatch(r"-?\d+", value):
            raise FeatureStoreError("ValidationError", 400, f"{name}: {value!r} is not an Integral value")
        if kinds[name] == "Fractional":
            try:
                float(value)
            except ValueError:
                raise FeatureStoreError(
                    "ValidationError", 400, f"{name}: {value!r} is not a Fractional value"
                ) from None
        values[name] = value
    for required in (group.record_identifier_feature_name, group.event_time_feature_name):
        if required not in values:
            raise FeatureStoreError(
                "ValidationError", 400, f"{required}: the record has no value for this required feature"
            )
    event_time(
        values[group.event_time_feature_name],
        kinds[group.event_time_feature_name],
        group.event_time_feature_name,
    )
    return values


class FeatureStoreBehaviour:
    """Online records per group, and offline rows waiting for the next clock step."""

    def __init__(
        self, clock: Clock, patcher: Patcher, offline_delay_seconds: float = OFFLINE_DELAY_SECONDS
    ) -> None:
        if offline_delay_seconds < 0:
            raise ValueError(f"offline_delay_seconds: {offline_delay_seconds} must be 0 or more")
        self.clock = clock
        self.offline_delay_seconds = offline_delay_seconds
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        behaviour = self

        def create(original: Any) -> Any:
            def wrapped(backend: Any, *args: Any, **kwargs: Any) -> Any:
                arn = original(backend, *args, **kwargs)
                behaviour._resolve_offline_uri(backend, backend.feature_groups[arn])
                return arn

            return wrapped

        patcher.wrap(sm_models.SageMakerModelBackend, "create_feature_group", create)
        clock.subscribe(self.flush)
        patcher.on_restore(lambda: clock.unsubscribe(self.flush))

    def _resolve_offline_uri(self, backend: Any, group: Any) -> None:
        storage = (group.offline_store_config or {}).get("S3StorageConfig")
        if storage:
            created = int(self.clock.now().timestamp())
            storage["ResolvedOutputS3Uri"] = (
                f"{storage['S3Uri'].rstrip('/')}/{backend.account_id}/sagemaker/{backend.region_name}"
                f"/offline-store/{group.feature_group_name}-{created}/data"
            )

    # -- HTTP ------------------------------------------------------------------------------

    @staticmethod
    def matches(path: str) -> bool:
        return path.startswith("/FeatureGroup/") or path == "/BatchGetRecord"

    def handle(self, environ: dict[str, Any]) -> Response:
        request = Request(environ)
        region = _region(request)
        try:
            self._authorise(request, region)
            if request.path == "/BatchGetRecord":
                body = self.batch_get(region, json.loads(request.get_data(as_text=True)))
            else:
                name = request.path.split("/", 2)[2]
                args = request.args
                if request.method == "PUT":
                    self.put(region, name, json.loads(request.get_data(as_text=True))["Record"])
                    body = {}
                elif request.method == "GET":
                    body = self.get(
                        region, name, args["RecordIdentifierValueAsString"], args.getlist("FeatureName")
                    )
                elif request.method == "DELETE":
                    self.delete(region, name, args["RecordIdentifierValueAsString"], args["EventTime"])
                    body = {}
                else:
                    raise FeatureStoreError(
                        "ValidationError", 400, f"{request.method} {request.path} is not an operation"
                    )
        except FeatureStoreError as error:
            return Response(
                json.dumps({"message": error.message}),
                status=error.status,
                headers={"x-amzn-ErrorType": error.code},
                mimetype="application/json",
            )
        return Response(json.dumps(body), mimetype="application/json")

    @staticmethod
    def _authorise(request: Request, region: str) -> None:
        """Each operation as IAM authorises it: ``sagemaker:<Operation>`` on each feature group."""
        if request.path == "/BatchGetRecord":
            operation = "BatchGetRecord"
            names = {
                i.get("FeatureGroupName", "")
                for i in json.loads(request.get_data(as_text=True)).get("Identifiers", [])
            }
        else:
            operation = {"PUT": "PutRecord", "GET": "GetRecord", "DELETE": "DeleteRecord"}.get(
                request.method, ""
            )
            names = {request.path.split("/", 2)[2]}
        try:
            for name in sorted(names):
                arn = f"arn:aws:sagemaker:{region}:{DEFAULT_ACCOUNT_ID}:feature-group/{name.lower()}"
                authorisation.authorise_signed(request.headers, f"sagemaker:{operation}", arn)
        except authorisation.AccessDenied as denial:
            raise FeatureStoreError("AccessDeniedException", 403, str(denial)) from None
        except authorisation.InvalidToken:
            raise FeatureStoreError(
                "UnrecognizedClientException", 403, "The security token included in the request is invalid."
            ) from None

    # -- operations ------------------------------------------------------------------------

    def put(self, region: str, name: str, record: list[dict[str, Any]]) -> None:
        group = _group(region, name, missing="ValidationError")
        values = _check(group, record)
        kinds = {d["FeatureName"]: d["FeatureType"] for d in group.feature_definitions}
        when = event_time(values[group.event_time_feature_name], kinds[group.event_time_feature_name], "")
        online = group.__dict__.setdefault("mlops_online", {})
        with self._lock:
            current = online.get(values[group.record_identifier_feature_name])
            if current is None or when >= current[0]:
                online[values[group.record_identifier_feature_name]] = (when, record)
            self._queue(group, values, when, deleted=False)

    def get(self, region: str, name: str, identifier: str, features: list[str]) -> dict[str, Any]:
        group = _group(region, name)
        found = group.__dict__.get("mlops_online", {}).get(identifier)
        if found is None:
            return {}
        record = [item for item in found[1] if not features or item["FeatureName"] in features]
        return {"Record": record}

    def batch_get(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        records, errors = [], []
        for ask in body.get("Identifiers", []):
            name = ask["FeatureGroupName"]
            for identifier in ask["RecordIdentifiersValueAsString"]:
                try:
                    answer = self.get(region, name, identifier, ask.get("FeatureNames") or [])
                except FeatureStoreError as error:
                    errors.append(
                        {
                            "FeatureGroupName": name,
                            "RecordIdentifierValueAsString": identifier,
                            "ErrorCode": error.code,
                            "ErrorMessage": error.message,
                        }
                    )
                    continue
                if answer:
                    records.append(
                        {
                            "FeatureGroupName": name,
                            "RecordIdentifierValueAsString": identifier,
                            "Record": answer["Record"],
                        }
                    )
        return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": []}

    def delete(self, region: str, name: str, identifier: str, when_text: str) -> None:
        group = _group(region, name, missing="ValidationError")
        kinds = {d["FeatureName"]: d["FeatureType"] for d in group.feature_definitions}
        when = event_time(when_text, kinds[group.event_time_feature_name], "EventTime")
        online = group.__dict__.setdefault("mlops_online", {})
        with self._lock:
            current = online.get(identifier)
            if current is not None and when >= current[0]:
                del online[identifier]
            values = {
                group.record_identifier_feature_name: identifier,
                group.event_time_feature_name: when_text,
            }
            self._queue(group, values, when, deleted=True)

    # -- offline store ---------------------------------------------------------------------

    def _queue(self, group: Any, values: dict[str, str], when: datetime, deleted: bool) -> None:
        storage = (group.offline_store_config or {}).get("S3StorageConfig")
        if not storage:
            return
        partition = f"year={when:%Y}/month={when:%m}/day={when:%d}/hour={when:%H}"
        row = {**values, "api_invocation_time": self.clock.now(), "is_deleted": deleted}
        self._pending[(storage["ResolvedOutputS3Uri"], partition, group.arn)].append(row)

    @staticmethod
    def _may_write(group: Any, resource: str, region: str) -> bool:
        """SageMaker writes the offline store as the feature group's role (``RoleArn``), with the
        store's key: a refusal is logged and the rows wait, as nothing reaches the store."""
        principal = authorisation.role_principal(group.role_arn, "SageMaker")
        key = ((group.offline_store_config or {}).get("S3StorageConfig") or {}).get("KmsKeyId")
        try:
            authorisation.authorise(principal, "s3:PutObject", resource)
            authorisation.authorise_via_s3(principal, "s3:PutObject", resource, region, key)
        except authorisation.AccessDenied as denial:
            log.warning("the offline store of %s was not written: %s", group.feature_group_name, denial)
            return False
        return True

    def flush(self, now: datetime | None = None) -> None:
        """Write the rows whose call is at least the delay old, one Parquet file per group and partition."""
        now = now or self.clock.now()
        due: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        with self._lock:
            for place, rows in list(self._pending.items()):
                ready, left = [], []
                for row in rows:
                    waited = (now - row["api_invocation_time"]).total_seconds()
                    (ready if waited >= self.offline_delay_seconds else left).append(row)
                if ready:
                    due[place] = [{**row, "write_time": now} for row in ready]
                if left:
                    self._pending[place] = left
                else:
                    del self._pending[place]
        for (resolved, partition, arn), rows in due.items():
            region = arn.split(":")[3]
            group = next(
                g
                for g in sm_models.sagemaker_backends[DEFAULT_ACCOUNT_ID][region].feature_groups.values()
                if g.arn == arn
            )
            frame = pd.DataFrame(rows)
            for definition in group.feature_definitions:
                column = definition["FeatureName"]
                if column not in frame:
                    frame[column] = None
                frame[column] = frame[column].astype(_DTYPES[definition["FeatureType"]])
            for column in ("write_time", "api_invocation_time"):
                # UTC without a time zone, in milliseconds: what the offline store's Parquet holds.
                stamps = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
                frame[column] = stamps.astype("datetime64[ms]")
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            bucket, _, prefix = resolved.removeprefix("s3://").partition("/")
            stamp = now.strftime("%Y%m%dT%H%M%SZ")
            key = f"{prefix}/{partition}/{stamp}_{uuid.uuid4().hex[:16]}.parquet"
            if not self._may_write(group, f"arn:aws:s3:::{bucket}/{key}", region):
                # Kept for the next flush: the records reach the store once the role may write.
                with self._lock:
                    self._pending[(resolved, partition, arn)][:0] = [
                        {k: v for k, v in row.items() if k != "write_time"} for row in rows
                    ]
                continue
            s3_backends[DEFAULT_ACCOUNT_ID][get_partition(region)].put_object(bucket, key, buffer.getvalue())
