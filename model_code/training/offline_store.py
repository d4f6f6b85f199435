"""A point-in-time training set from a feature group's offline store.

The offline store keeps every version of every record (each PutRecord and DeleteRecord is a row,
with ``write_time``, ``api_invocation_time`` and ``is_deleted``). A training set as of a window
``(start, end]`` is, per record identifier, the latest version whose event time falls in the
window, ordered as Feature Store orders versions: by event time, then ``write_time``, then
``api_invocation_time``; a record whose latest version there is a deletion is left out, and the
bookkeeping columns are dropped.

Times are read with :func:`model_code.monitoring.new_data.offline_times`: SageMaker's Parquet
timestamps carry no time zone (UTC), a String event time is ISO-8601 text.

The training pipeline's EngineerFeatures step (``model_code.training.prepare``) reads the store
through :func:`read_offline_store`: where the feature group's ``DescribeFeatureGroup`` says it is
(``OfflineStoreConfig.S3StorageConfig.ResolvedOutputS3Uri``, the folder the Glue table's location
names), every Parquet file under it. The offline store lags PutRecord (AWS documents up to 15
minutes), so a run started right after an ingestion first waits (:func:`wait_for_records`) until
as many live rows are visible as the ingestion runs reported putting (``records_put`` of each
``IngestFeatures/report/ingest.json`` written since the group was created), at most
``OfflineStoreWaitSeconds``; past that bound it fails naming the parameter and the counts.
Every record of this platform reaches the group through ingestion, so a count is enough: a
record written some other way would count as visible and shorten the wait, never lengthen it.

Waiting sleeps; where ``MLOPS_VIRTUAL_CLOCK`` names a clock (the local cloud's control route,
``POST {"advance": seconds}``), a sleep moves that clock instead, so the emulator's offline store
catches up in virtual time and a rehearsal does not wait fifteen real minutes.
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from model_code.monitoring.new_data import offline_times

BOOKKEEPING = ("write_time", "api_invocation_time", "is_deleted")
# The pipeline parameter bounding the wait (pipelines.training); errors name it.
WAIT_PARAMETER = "OfflineStoreWaitSeconds"
CLOCK_ENV = "MLOPS_VIRTUAL_CLOCK"
# Where each ingestion run's IngestFeatures step reports what it put (pipelines.ingestion).
INGEST_REPORT_SUFFIX = "IngestFeatures/report/ingest.json"


def point_in_time(
    rows: pd.DataFrame,
    *,
    record_id: str,
    event_time: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per ``record_id``, the latest version with ``start < event time <= end`` (None: unbounded).

    ``rows`` are offline-store rows (every version); the answer has one row per record that is
    not deleted as of the window, sorted by event time then id, without the bookkeeping columns.
    """
    missing = [c for c in (record_id, event_time) if c not in rows.columns]
    if missing:
        raise ValueError(f"offline store: no {', '.join(missing)} column in the rows read")
    order = pd.DataFrame(
        {
            "event": offline_times(rows[event_time]),
            "written": offline_times(rows["write_time"]) if "write_time" in rows else pd.NaT,
            "called": offline_times(rows["api_invocation_time"]) if "api_invocation_time" in rows else pd.NaT,
        },
        index=rows.index,
    )
    inside = order["event"].notna()
    if start is not None:
        inside &= order["event"] > start
    if end is not None:
        inside &= order["event"] <= end
    ranked = order[inside].sort_values(["event", "written", "called"], kind="stable", na_position="first")
    latest = rows.loc[ranked.index].drop_duplicates(record_id, keep="last")
    if "is_deleted" in latest.columns:
        latest = latest[~latest["is_deleted"].fillna(False).astype(bool)]
    latest = latest.assign(_event=order.loc[latest.index, "event"])
    latest = latest.sort_values(["_event", record_id], kind="stable").drop(columns="_event")
    return latest.drop(columns=[c for c in BOOKKEEPING if c in latest.columns]).reset_index(drop=True)


def live_rows(rows: pd.DataFrame) -> int:
    """Rows that record a put (deletions apart): what one ingested record adds to the store."""
    if "is_deleted" not in rows.columns:
        return len(rows)
    return int((~rows["is_deleted"].fillna(False).astype(bool)).sum())


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def _objects(s3: Any, uri: str) -> list[dict[str, Any]]:
    bucket, prefix = _split(uri)
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [{**o, "Bucket": bucket} for o in page.get("Contents", [])]
    return found


@dataclass(frozen=True)
class OfflineStore:
    """Where a feature group keeps its offline store, read back from ``DescribeFeatureGroup``."""

    feature_group: str
    uri: str
    created: datetime
    record_id: str
    event_time: str

    @classmethod
    def describe(cls, sagemaker: Any, feature_group: str) -> OfflineStore:
        found = sagemaker.describe_feature_group(FeatureGroupName=feature_group)
        storage = (found.get("OfflineStoreConfig") or {}).get("S3StorageConfig") or {}
        uri = storage.get("ResolvedOutputS3Uri") or storage.get("S3Uri")
        if not uri:
            raise ValueError(f"feature group {feature_group}: it has no offline store to train from")
        return cls(
            feature_group,
            uri.rstrip("/") + "/",
            pd.Timestamp(found["CreationTime"]).tz_localize("UTC")
            if pd.Timestamp(found["CreationTime"]).tzinfo is None
            else pd.Timestamp(found["CreationTime"]),
            found["RecordIdentifierFeatureName"],
            found["EventTimeFeatureName"],
        )


def read_offline_store(s3: Any, uri: str) -> pd.DataFrame:
    """Every row (every version of every record) of the Parquet files under ``uri``."""
    frames = []
    for obj in _objects(s3, uri):
        if obj["Key"].endswith(".parquet"):
            body = s3.get_object(Bucket=obj["Bucket"], Key=obj["Key"])["Body"].read()
            frames.append(pd.read_parquet(io.BytesIO(body)))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def reported_records(s3: Any, reports_uri: str, feature_group: str, since: datetime) -> tuple[int, int]:
    """(records the ingestion runs reported putting into ``feature_group``, reports read): the
    ``ingest.json`` of each IngestFeatures step under ``reports_uri`` written after ``since``
    (the group's creation; an earlier group of the same name had another store)."""
    records = reports = 0
    # S3 keeps LastModified to the second: a report written in the second the group was
    # created would otherwise seem older than the group.
    since = pd.Timestamp(since).floor("s")
    for obj in _objects(s3, reports_uri):
        if not obj["Key"].endswith(INGEST_REPORT_SUFFIX) or pd.Timestamp(obj["LastModified"]) < since:
            continue
        report = json.loads(s3.get_object(Bucket=obj["Bucket"], Key=obj["Key"])["Body"].read())
        if report.get("feature_group") in (None, feature_group):
            records += int(report.get("records_put", 0))
            reports += 1
    return records, reports


class WaitExceeded(RuntimeError):
    """The offline store did not show the reported records within the wait's bound."""


@dataclass(frozen=True)
class Waited:
    """What a wait saw: the rows read at the end, and the counts the data window records."""

    rows: pd.DataFrame
    records_reported: int
    records_visible_at_start: int
    records_waited_for: int
    seconds_waited: float
    polls: int


def virtual_clock_sleep(url: str) -> Callable[[float], None]:
    """A sleep that moves the clock at ``url`` (``POST {"advance": seconds}``) instead of waiting."""

    def sleep(seconds: float) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps({"advance": seconds}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=600) as answer:
            answer.read()

    return sleep


def default_sleep() -> Callable[[float], None]:
    """``time.sleep``, or the virtual clock's advance where ``MLOPS_VIRTUAL_CLOCK`` names one."""
    url = os.environ.get(CLOCK_ENV)
    return virtual_clock_sleep(url) if url else time.sleep


def wait_for_records(
    read: Callable[[], pd.DataFrame],
    reported: int,
    *,
    wait_seconds: float,
    poll_seconds: float = 60.0,
    sleep: Callable[[float], None] | None = None,
) -> Waited:
    """Read the store until it holds at least ``reported`` live rows, sleeping ``poll_seconds``
    between reads, at most ``wait_seconds`` in all.

    Raises
    ------
    WaitExceeded
        Naming ``OfflineStoreWaitSeconds`` and the counts, once the bound is passed.
    """
    if wait_seconds < 0:
        raise ValueError(f"{WAIT_PARAMETER}: expected 0 or more seconds, got {wait_seconds}")
    if poll_seconds <= 0:
        raise ValueError(f"poll seconds: expected more than 0, got {poll_seconds}")
    sleep = sleep or default_sleep()
    rows = read()
    first = visible = live_rows(rows)
    waited, polls = 0.0, 1
    while visible < reported:
        if waited >= wait_seconds:
            raise WaitExceeded(
                f"{WAIT_PARAMETER}: waited {waited:g} s (the bound) for the offline store to show "
                f"the {reported} records ingestion reported; {visible} visible, {reported - visible} "
                f"still missing. Raise {WAIT_PARAMETER} or start the run later"
            )
        step = min(poll_seconds, wait_seconds - waited)
        sleep(step)
        waited += step
        rows = read()
        visible, polls = live_rows(rows), polls + 1
    return Waited(rows, reported, first, max(0, reported - first), waited, polls)
