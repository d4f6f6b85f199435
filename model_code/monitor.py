"""The monitoring pipeline's container steps: drift, quality and new-data volume, published to CloudWatch.

Each check is a sharded step and a merge step, so a large window scales out over instances::

    shard step (N instances; files dealt out by ShardedByS3Key)        merge step (1 instance)
    drift-shard    capture files ─► <host>.json (drift profile)      ─► drift    merge, compare, publish
    quality-shard  capture files + all labels ─► <host>.csv, .json   ─► quality  join, score, publish
    count-shard    offline-store files ─► <host>.json, .npy (keys)   ─► count    count once, publish

Every shard names its output after its host (``container.current_host``) and records the
job's host list; a merge fails when a host's output is missing or the shards disagree (on the
window, the baseline, the cutoff), so nothing is dropped or mixed silently. One instance and
four give the same numbers (tests/model_code/test_monitor.py).

**Captured traffic** is SageMaker data capture: JSON Lines under
``s3://<bucket>/data-capture/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``, one invocation
per line::

    {"captureData": {"endpointInput":  {"observedContentType": "application/json", "mode": "INPUT",
                                        "data": "<request body>", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "<response body>", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "...", "inferenceId": "...", "inferenceTime": "2026-02-01T10:00:00Z"},
     "eventVersion": "0"}

``encoding`` is JSON, CSV (the body as text) or BASE64. Requests are the model server's
formats (application/json ``{"instances": [...]}`` or one object; text/csv rows in schema
feature order), responses ``{"predictions": [{"probability": p, ...}]}`` or CSV
``probability,prediction`` rows. A line that cannot be read (not JSON, an error response, not
one prediction per record...) is skipped and counted under its reason. Values are typed by
the schema as training data is: a value that does not parse becomes a null, which drift sees.

**Identity** of a captured record, for the join with ground truth: the schema's entity id when
the JSON instance carries it (the server ignores keys the contract does not name, so clients
may send it), else the request's ``inferenceId`` (or ``eventId``), suffixed ``-<i>`` with the
record's position when the request holds several records.

**Window**: records whose ``inferenceTime`` is in ``[end - hours, end)``. ``end`` is
``--window-end``, or with ``execution-start`` the pipeline execution's start time, which every
shard is given (their own clocks would disagree).

**Drift** compares with ``--baseline``: a drift baseline JSON (``s3://``, a file or a folder)
or, with ``champion``, the one the group's latest Approved model package was registered with
(``DriftCheckBaselines.ModelDataQuality.Statistics``). Shards record the one they used; the
merge reads the same.

**Quality** keeps ``quality.evaluate_window``'s semantics (latest prediction per id, label
accounting) across shards: shards keep only valid predictions whose id has a label (labels are
replicated to every shard), and the merge runs ``evaluate_window`` on their union, sorted by
time and capture event, so a customer predicted in two files counts once however the files
are dealt, and the metrics are exact. Predictions without a label are counted per record.

**New data** counts the feature group's records in the offline store (Parquet under
``.../offline-store/<group>-<created>/data/``; deleted ones apart) whose event time is after
``--since``: an ISO time, ``""`` for all, or ``last-training``: the champion's ``DataEnd``
(the newest event time it was trained on, where the next new-data-only run starts), else its
creation time, else all records. A record written twice (a file ingested again) counts once.

boto3 clients are made with defaults, so ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL`` (a
local emulator) apply.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import io
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from model_code import container, drift, metrics, quality, register_info
from model_code import schema as schema_mod
from model_code.schema import Schema

PROCESSING = Path("/opt/ml/processing")
EXECUTION_START = "execution-start"  # --window-end: the pipeline execution's start time
LAST_TRAINING = "last-training"  # --since: the champion's DataEnd
CHAMPION = "champion"  # --baseline: the drift baseline registered with the approved model
DEFAULT_WINDOW_HOURS = 24.0
CAPTURE_SUFFIXES = (".jsonl", ".json")
LABEL_SUFFIXES = (".csv", ".jsonl", ".json")
JSON, CSV = "application/json", "text/csv"
# PutMetricData takes at most 1000 data per call.
MAX_METRIC_DATA = 1000
_CAPTURE_COLUMNS = ["id", "time", "event_id", "record", "probability"]
_MATCH_COLUMNS = ["id", "probability", "time", "event_id", "record"]


class MalformedCapture(ValueError):
    """A capture line that cannot be read; the message is the reason it is counted under."""


# --- captured traffic ------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """Records read from capture files: one row per record, skipped lines counted by reason.

    ``records`` has ``id``, ``time`` (UTC), ``event_id``, ``record`` (position in its
    request), ``probability`` and one column per schema feature, with values as sent.
    """

    records: pd.DataFrame
    lines: int
    malformed: dict[str, int]


def _media_type(side: dict) -> str:
    return str(side.get("observedContentType") or "").split(";")[0].strip().lower()


def _body(side: Any, which: str) -> Any:
    """A request or response body as text (or as parsed JSON, if captured that way)."""
    if not isinstance(side, dict) or side.get("data") is None:
        raise MalformedCapture(f"{which}: no data")
    data, encoding = side["data"], str(side.get("encoding") or "").upper()
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True).decode("utf-8-sig")
        except (binascii.Error, TypeError, ValueError):
            raise MalformedCapture(f"{which}: undecodable BASE64 data") from None
    return data


def _json(body: Any, which: str) -> Any:
    if not isinstance(body, str):
        return body
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedCapture(f"{which}: malformed JSON") from None


def _csv_rows(body: Any, which: str) -> list[list[str]]:
    if not isinstance(body, str):
        raise MalformedCapture(f"{which}: CSV data is not text")
    try:
        return [row for row in csv.reader(io.StringIO(body), strict=True) if row]
    except csv.Error:
        raise MalformedCapture(f"{which}: malformed CSV") from None


def _request_records(side: Any, names: list[str]) -> list[dict[str, Any]]:
    body, kind = _body(side, "endpointInput"), _media_type(side)
    if kind == JSON:
        payload = _json(body, "endpointInput")
        records = payload.get("instances", payload) if isinstance(payload, dict) else None
        records = [records] if isinstance(records, dict) else records
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise MalformedCapture("endpointInput: not instances of feature values")
        return records
    if kind == CSV:
        rows = _csv_rows(body, "endpointInput")
        if rows and [cell.strip() for cell in rows[0]] == names:
            rows = rows[1:]
        if any(len(row) != len(names) for row in rows):
            raise MalformedCapture("endpointInput: CSV row without one value per feature")
        return [dict(zip(names, row, strict=True)) for row in rows]
    raise MalformedCapture("endpointInput: unsupported content type")


def _probability(value: Any) -> float:
    if isinstance(value, dict):
        value = value.get(quality.PROBABILITY_COLUMN)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")  # counted as an invalid prediction by the quality check


def _response_probabilities(side: Any) -> list[float]:
    body, kind = _body(side, "endpointOutput"), _media_type(side)
    if kind == JSON:
        payload = _json(body, "endpointOutput")
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if not isinstance(predictions, list):
            raise MalformedCapture("endpointOutput: no predictions (an error response?)")
        return [_probability(p) for p in predictions]
    if kind == CSV:
        return [_probability(row[0]) for row in _csv_rows(body, "endpointOutput")]
    raise MalformedCapture("endpointOutput: unsupported content type")


def _inference_time(meta: dict) -> datetime:
    text = meta.get("inferenceTime")
    try:
        stamp = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise MalformedCapture("eventMetadata.inferenceTime: missing or not ISO-8601") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def parse_capture_line(line: str, schema: Schema) -> list[tuple]:
    """The records of one capture line as tuples (``_CAPTURE_COLUMNS`` then the features).

    Raises
    ------
    MalformedCapture
        Naming what is wrong with the line, in words that do not vary per line (they are counted).
    """
    try:
        event = json.loads(line)
    except ValueError:
        raise MalformedCapture("not a JSON line") from None
    capture = event.get("captureData") if isinstance(event, dict) else None
    meta = event.get("eventMetadata") if isinstance(event, dict) else None
    if not isinstance(capture, dict) or not isinstance(meta, dict):
        raise MalformedCapture("not a data-capture record (captureData, eventMetadata)")
    names = schema.feature_names
    records = _request_records(capture.get("endpointInput"), names)
    probabilities = _response_probabilities(capture.get("endpointOutput"))
    if len(probabilities) != len(records):
        raise MalformedCapture("as many predictions as records expected")
    time = _inference_time(meta)
    event_id = meta.get("eventId")
    base = meta.get("inferenceId") or event_id
    several = len(records) > 1
    rows = []
    for i, (record, probability) in enumerate(zip(records, probabilities, strict=True)):
        entity = record.get(schema.entity_id)
        if entity is not None:
            record_id = str(entity)
        elif base is not None:
            record_id = f"{base}-{i}" if several else str(base)
        else:
            record_id = None
        rows.append((record_id, time, event_id, i, probability, *(record.get(n) for n in names)))
    return rows


def read_captures(files: list[Path], schema: Schema) -> Capture:
    """Every record of the capture files, in file then line order."""
    rows: list[tuple] = []
    malformed: Counter[str] = Counter()
    lines = 0
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                lines += 1
                try:
                    rows.extend(parse_capture_line(line, schema))
                except MalformedCapture as exc:
                    malformed[str(exc)] += 1
    columns = [*_CAPTURE_COLUMNS, *schema.feature_names]
    records = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    records["time"] = pd.to_datetime(records["time"], utc=True)
    records["probability"] = pd.to_numeric(records["probability"], errors="coerce")
    return Capture(records, lines, dict(sorted(malformed.items())))


# --- windows, files, shards --------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp

    def contains(self, times: pd.Series) -> pd.Series:
        return ((times >= self.start) & (times < self.end)).fillna(False).astype(bool)

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Window:
        return cls(pd.Timestamp(data["start"]), pd.Timestamp(data["end"]))


def utc(text: str | datetime) -> pd.Timestamp:
    """An ISO-8601 time as a UTC timestamp (UTC if it names no zone); ValueError if it is not one."""
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        stamp = pd.NaT
    if pd.isna(stamp):
        raise ValueError(f"expected an ISO-8601 time, got {text!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def resolve_window(window_end: str, hours: float, execution_start: str | None = None) -> Window:
    """The window ending at ``window_end`` (or the execution's start, or now, for ``execution-start``)."""
    if hours <= 0:
        raise ValueError(f"--window-hours: expected a positive number of hours, got {hours:g}")
    if window_end in ("", EXECUTION_START):
        end = utc(execution_start) if execution_start else pd.Timestamp.now(tz="UTC").floor("s")
    else:
        end = utc(window_end)
    return Window(end - timedelta(hours=hours), end)


def files_under(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files with one of ``suffixes`` anywhere under ``folder`` (none if it does not exist), sorted."""
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _write_shard(output: Path, data: dict[str, Any]) -> Path:
    host, hosts = container.current_host()
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{host}.json"
    path.write_text(json.dumps({"host": host, "hosts": hosts, **data}, indent=2) + "\n")
    return path


def read_shards(folder: Path, same: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every shard's JSON output, checked complete: one per host of the job, agreeing on ``same`` keys.

    Raises
    ------
    container.StepFailed
        When a host's output is missing or doubled, or shards disagree (e.g. on the window).
    """
    shards = [json.loads(p.read_text()) for p in files_under(folder, (".json",))]
    if not shards:
        raise container.StepFailed(f"{folder}: no shard outputs to merge")
    hosts = Counter(s["host"] for s in shards)
    expected = set(shards[0]["hosts"])
    missing, doubled = sorted(expected - set(hosts)), sorted(h for h, n in hosts.items() if n > 1)
    unexpected = sorted(set(hosts) - expected)
    if missing or doubled or unexpected:
        raise container.StepFailed(
            f"{folder}: shard outputs do not match the job's hosts {sorted(expected)}: "
            f"missing {missing}, doubled {doubled}, unexpected {unexpected}"
        )
    for key in same:
        values = {json.dumps(s.get(key), sort_keys=True) for s in shards}
        if len(values) > 1:
            raise container.StepFailed(f"{folder}: shards disagree on {key}: {sorted(values)}")
    return sorted(shards, key=lambda s: s["host"])


def _sum(shards: list[dict[str, Any]], key: str) -> int:
    return sum(int(s[key]) for s in shards)


def _sum_counts(shards: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for s in shards:
        total.update(s[key])
    return dict(sorted(total.items()))


def publish(metric_data: list[dict[str, Any]], client: Any = None, namespace: str = metrics.NAMESPACE) -> int:
    """Put ``metric_data`` to CloudWatch in calls of at most 1000 data; returns the number of calls."""
    if client is None:
        import boto3

        client = boto3.client("cloudwatch")
    calls = 0
    for first in range(0, len(metric_data), MAX_METRIC_DATA):
        client.put_metric_data(Namespace=namespace, MetricData=metric_data[first : first + MAX_METRIC_DATA])
        calls += 1
    return calls


# --- drift -------------------------------------------------------------------------------------


def champion(group: str) -> dict[str, Any]:
    """The group's latest Approved model package (the model being served); StepFailed if none."""
    package = register_info.latest_approved(group)
    if package is None:
        raise container.StepFailed(f"model package group {group!r} has no Approved model to monitor")
    return package


def baseline_source(spec: str, group: str) -> str:
    """Where the drift baseline is: ``spec`` itself, or for ``champion`` the approved model's.

    The training pipeline registers the baseline as the package's
    ``DriftCheckBaselines.ModelDataQuality.Statistics``.
    """
    if spec != CHAMPION:
        return spec
    package = champion(group)
    baselines = package.get("DriftCheckBaselines", {}).get("ModelDataQuality", {})
    uri = baselines.get("Statistics", {}).get("S3Uri")
    if not uri:
        raise container.StepFailed(
            f"{package['ModelPackageArn']}: no DriftCheckBaselines.ModelDataQuality.Statistics to compare with"
        )
    return uri


def load_baseline(source: str | Path) -> drift.Baseline:
    """The drift baseline JSON from ``s3://...``, a file, or the one .json in a folder."""
    if str(source).startswith("s3://"):
        return drift.Baseline.from_dict(register_info.read_json(str(source)))
    files = files_under(Path(source), (".json",))
    if len(files) != 1:
        raise container.StepFailed(f"{source}: expected one drift baseline .json, found {len(files)}")
    return drift.Baseline.from_dict(json.loads(files[0].read_text()))


def drift_shard(
    capture: Capture, baseline: drift.Baseline, schema: Schema, window: Window, source: str = ""
) -> dict[str, Any]:
    """One shard's drift profile of the records in the window, and its accounting.

    ``source`` (where the baseline came from) is recorded for the merge step to read the same one.
    """
    records = capture.records
    inside = window.contains(records["time"])
    current = schema_mod.coerce(records.loc[inside, schema.feature_names], schema)
    if drift.PREDICTION_COLUMN in baseline.bins:
        current[drift.PREDICTION_COLUMN] = records.loc[inside, "probability"]
    return {
        "window": window.to_dict(),
        "baseline": str(source),
        "lines": capture.lines,
        "malformed": capture.malformed,
        "records": len(records),
        "outside_window": int((~inside).sum()),
        "profile": baseline.profile(current).to_dict(),
    }


def merge_drift(
    shards: list[dict[str, Any]],
    baseline: drift.Baseline,
    schema: Schema,
    *,
    psi_threshold: float = drift.DEFAULT_PSI_THRESHOLD,
    p_value_threshold: float = drift.DEFAULT_P_VALUE_THRESHOLD,
) -> dict[str, Any]:
    """The drift report of all shards' records, and the MetricData to publish for it.

    With no record in the window there is nothing to compare: only the counts are published.
    """
    profile = drift.merge([drift.Profile.from_dict(s["profile"]) for s in shards])
    malformed = _sum_counts(shards, "malformed")
    dims = {"Model": schema.name}
    data = [
        metrics.metric_datum("CapturedRecordCount", profile.rows, dims, "Count"),
        metrics.metric_datum("MalformedCaptureCount", sum(malformed.values()), dims, "Count"),
    ]
    report = None
    if profile.rows:
        report = drift.compare(
            baseline, profile, psi_threshold=psi_threshold, p_value_threshold=p_value_threshold
        )
        data = [*report.to_metrics(schema.name), *data]
    return {
        "model": schema.name,
        "window": shards[0]["window"],
        "baseline": shards[0].get("baseline"),
        "counts": {
            "lines": _sum(shards, "lines"),
            "malformed_lines": sum(malformed.values()),
            "records": _sum(shards, "records"),
            "records_outside_window": _sum(shards, "outside_window"),
            "records_in_window": profile.rows,
        },
        "malformed": malformed,
        "shards": [s["host"] for s in shards],
        "drift": report.to_dict() if report else None,
        "published": data,
    }


# --- quality -------------------------------------------------------------------------------------


def read_labels(files: list[Path], schema: Schema) -> pd.DataFrame:
    """Ground truth from CSV or JSON Lines files as ``id``, ``label`` (and ``time`` if given).

    The id column may be ``id`` or the schema's entity id; the label ``label`` or the target column.
    """
    frames = []
    for path in files:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            frame = pd.read_json(path, lines=True, dtype=False)
        ids = [c for c in (quality.ID_COLUMN, schema.entity_id) if c in frame.columns]
        labels = [c for c in (quality.LABEL_COLUMN, schema.target.column) if c in frame.columns]
        if not ids or not labels:
            raise container.StepFailed(
                f"{path}: ground truth needs an id column ({quality.ID_COLUMN} or {schema.entity_id}) and "
                f"a label column ({quality.LABEL_COLUMN} or {schema.target.column}); it has {list(frame.columns)}"
            )
        columns = {ids[0]: quality.ID_COLUMN, labels[0]: quality.LABEL_COLUMN}
        if quality.TIME_COLUMN in frame.columns:
            columns[quality.TIME_COLUMN] = quality.TIME_COLUMN
        frames.append(frame[list(columns)].rename(columns=columns))
    if not frames:
        return pd.DataFrame({quality.ID_COLUMN: [], quality.LABEL_COLUMN: []}, dtype="string")
    labels = pd.concat(frames, ignore_index=True)
    labels[quality.ID_COLUMN] = labels[quality.ID_COLUMN].astype("string")
    return labels


def quality_shard(capture: Capture, labels: pd.DataFrame, window: Window) -> tuple[pd.DataFrame, dict]:
    """One shard's valid predictions whose id has a label (in or out of the window), and the
    count of the others: invalid ones, and those without a label in and outside the window."""
    records = capture.records
    ids = records["id"].astype("string")
    valid = (records["probability"].between(0.0, 1.0) & records["time"].notna() & ids.notna()).astype(bool)
    labelled = set(labels.loc[labels[quality.LABEL_COLUMN].notna(), quality.ID_COLUMN].dropna())
    has_label = ids.isin(labelled).fillna(False).astype(bool)
    inside = window.contains(records["time"])
    matches = records.loc[valid & has_label, _MATCH_COLUMNS]
    counts = {
        "window": window.to_dict(),
        "lines": capture.lines,
        "malformed": capture.malformed,
        "records": len(records),
        "invalid": int((~valid).sum()),
        "without_label_in_window": int((valid & ~has_label & inside).sum()),
        "without_label_outside_window": int((valid & ~has_label & ~inside).sum()),
        "labelled": len(matches),
    }
    return matches, counts


def merge_quality(
    shards: list[dict[str, Any]], matches: pd.DataFrame, labels: pd.DataFrame, schema: Schema
) -> dict[str, Any]:
    """The quality report of all shards' predictions, and the MetricData to publish for it."""
    window = Window.from_dict(shards[0]["window"])
    # One order, whatever the sharding: evaluate_window keeps the last of equal times.
    ordered = matches.sort_values(["time", "event_id", "record"], kind="stable", na_position="first")
    report = quality.evaluate_window(
        ordered[[quality.ID_COLUMN, quality.PROBABILITY_COLUMN, quality.TIME_COLUMN]],
        labels,
        schema,
        start=window.start,
        end=window.end,
    )
    counts = dict(report.counts)
    counts["predictions"] += _sum(shards, "records") - len(matches)
    counts["invalid_predictions"] += _sum(shards, "invalid")
    counts["predictions_outside_window"] += _sum(shards, "without_label_outside_window")
    counts["predictions_without_label"] += _sum(shards, "without_label_in_window")
    report = replace(report, counts=counts)
    return {
        **report.to_dict(),
        "lines": _sum(shards, "lines"),
        "malformed": _sum_counts(shards, "malformed"),
        "shards": [s["host"] for s in shards],
        "published": report.to_metrics(schema.name),
    }


def _write_matches(matches: pd.DataFrame, path: Path) -> None:
    out = matches.assign(time=matches["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    out.to_csv(path, index=False)


def _read_matches(folder: Path) -> pd.DataFrame:
    frames = [
        pd.read_csv(p, dtype={"id": "string", "event_id": "string"}, keep_default_na=False, na_values=[""])
        for p in files_under(folder, (".csv",))
    ]
    matches = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=_MATCH_COLUMNS)
    matches["time"] = pd.to_datetime(matches["time"], utc=True, format="ISO8601")
    matches["probability"] = pd.to_numeric(matches["probability"])
    return matches


# --- new data in the feature store ---------------------------------------------------------------


def event_time_column(schema: Schema) -> str:
    """The feature group's event-time feature: the schema's, or ``event_time`` if it names none."""
    return schema.event_time or "event_time"


def resolve_since(since: str, group: str) -> tuple[pd.Timestamp | None, str]:
    """The cutoff after which records are new (None: every record), and where it came from.

    ``last-training``: the champion's ``DataEnd`` (the newest event time it was trained on,
    after which the next new-data-only run starts), or its creation time when it has none;
    every record when the group has no approved model yet.
    """
    if since != LAST_TRAINING:
        return (utc(since), "--since") if since else (None, "--since ''")
    package = register_info.latest_approved(group)
    if package is None:
        return None, f"no approved model in {group}"
    data_end = register_info.data_end(package)
    if data_end:
        return utc(data_end), f"{package['ModelPackageArn']} DataEnd"
    return utc(package["CreationTime"]), f"{package['ModelPackageArn']} CreationTime"


def in_feature_group(relative: Path, group: str) -> bool:
    """Whether an offline-store file (its path below the input prefix) belongs to ``group``.

    Feature Store writes ``.../offline-store/<group>-<creation time>/data/...``; a prefix
    above that (the store of every group in the bucket) holds other groups' files too.
    """
    parts = [p.lower() for p in relative.parts[:-1]]
    if "offline-store" not in parts:
        return True  # the prefix already is the group's own folder
    folder = parts[parts.index("offline-store") + 1] if parts[-1] != "offline-store" else ""
    return re.fullmatch(rf"{re.escape(group.lower())}-\d+", folder) is not None


def count_shard(
    folder: Path, schema: Schema, since: pd.Timestamp | None, group: str
) -> tuple[dict[str, Any], np.ndarray]:
    """This shard's offline-store rows of ``group`` (Parquet under ``folder``), and the hashed
    (id, event time) keys of the live ones after ``since``: a record written twice (a
    re-ingested file) is one new record."""
    column, ids = event_time_column(schema), schema.entity_id
    counts = dict.fromkeys(("files", "other_groups", "rows", "deleted", "unparseable_times", "new_rows"), 0)
    keys = []
    for path in files_under(folder, (".parquet",)):
        if not in_feature_group(path.relative_to(folder), group):
            counts["other_groups"] += 1
            continue
        frame = pd.read_parquet(path)
        missing = [c for c in (ids, column) if c not in frame.columns]
        if missing:
            raise container.StepFailed(f"{path}: no {missing} column in the offline-store file")
        live = pd.Series(True, index=frame.index)
        if "is_deleted" in frame.columns:  # Feature Store keeps deleted records, flagged
            live = ~frame["is_deleted"].fillna(False).astype(bool)
        text = frame[column].astype("string")
        times = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        new = live & times.notna()
        if since is not None:
            new &= (times > since).fillna(False)
        counts["files"] += 1
        counts["rows"] += len(frame)
        counts["deleted"] += int((~live).sum())
        counts["unparseable_times"] += int((live & times.isna()).sum())
        counts["new_rows"] += int(new.sum())
        # Hashes of (id, event time in microseconds): the same record hashes alike in every shard.
        key = pd.DataFrame({"id": frame.loc[new, ids].astype("string"), "time": times[new].dt.as_unit("us")})
        key["time"] = key["time"].astype("int64")
        keys.append(pd.util.hash_pandas_object(key, index=False).to_numpy(dtype=np.uint64))
    return counts, np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.uint64)


def merge_counts(shards: list[dict[str, Any]], keys: list[np.ndarray], schema: Schema) -> dict[str, Any]:
    """The shards' counts summed, new records counted once, and the NewRecordCount datum."""
    new_records = int(np.unique(np.concatenate(keys)).size) if keys else 0
    counts = {
        k: _sum(shards, k)
        for k in ("files", "other_groups", "rows", "deleted", "unparseable_times", "new_rows")
    }
    datum = metrics.metric_datum("NewRecordCount", new_records, {"Model": schema.name}, "Count")
    return {
        "model": schema.name,
        "since": shards[0]["since"],
        "since_source": shards[0]["since_source"],
        **counts,
        "new_records": new_records,
        "shards": [s["host"] for s in shards],
        "published": [datum],
    }


# --- the container steps -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.monitor",
        description="The monitoring pipeline's steps: sharded profiles and counts, merged and published.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inp, out = PROCESSING / "input", PROCESSING / "output"

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        sub.add_argument(
            "--schema", type=Path, default=inp / "schema", help="schema YAML or a folder with one"
        )
        return sub

    def shard(sub: argparse.ArgumentParser, output: str) -> None:
        sub.add_argument("--capture", type=Path, default=inp / "capture", help="capture .jsonl files")
        sub.add_argument("--output", type=Path, default=out / output, help="for this host's output")
        sub.add_argument("--window-end", default=EXECUTION_START, help="ISO-8601 time, or execution-start")
        sub.add_argument("--window-hours", type=float, default=DEFAULT_WINDOW_HOURS, help="window length")
        sub.add_argument("--execution-start", default=None, help="the pipeline execution's start time")

    def group(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--model-package-group", default=None, help="the registry (default: schema name)")

    sub = command("drift-shard", "profile this shard's captured traffic on the baseline's buckets")
    shard(sub, "profiles")
    sub.add_argument("--baseline", default=CHAMPION, help="s3:// URI, file or folder, or champion")
    group(sub)
    sub = command("drift", "merge the profiles, compare with the baseline, publish drift metrics")
    sub.add_argument("--profiles", type=Path, default=inp / "profiles", help="the shards' profiles")
    sub.add_argument("--baseline", default=None, help="default: the one the shards profiled on")
    sub.add_argument("--report-dir", type=Path, default=out / "report", help="for drift.json")
    sub.add_argument("--psi-threshold", type=float, default=drift.DEFAULT_PSI_THRESHOLD)
    sub.add_argument("--p-value-threshold", type=float, default=drift.DEFAULT_P_VALUE_THRESHOLD)
    sub = command("quality-shard", "keep this shard's captured predictions that have ground truth")
    shard(sub, "matches")
    sub.add_argument("--labels", type=Path, default=inp / "labels", help="ground truth CSV/JSONL")
    sub = command("quality", "join the shards' predictions with ground truth, publish quality metrics")
    sub.add_argument("--labels", type=Path, default=inp / "labels", help="ground truth CSV/JSONL")
    sub.add_argument("--matches", type=Path, default=inp / "matches", help="the shards' outputs")
    sub.add_argument("--report-dir", type=Path, default=out / "report", help="for quality.json")
    sub = command("count-shard", "count this shard's offline-store records newer than the cutoff")
    sub.add_argument("--input", type=Path, default=inp / "offline-store", help="offline-store Parquet")
    sub.add_argument("--output", type=Path, default=out / "counts", help="for this host's counts")
    sub.add_argument("--since", default=LAST_TRAINING, help="ISO-8601 cutoff, '' for all, or last-training")
    sub.add_argument("--feature-group", default=None, help="the feature group (default: schema name)")
    group(sub)
    sub = command("count", "count the shards' new records once each, publish NewRecordCount")
    sub.add_argument("--counts", type=Path, default=inp / "counts", help="the shards' counts")
    sub.add_argument("--report-dir", type=Path, default=out / "report", help="for count.json")
    return parser


def _write_report(folder: Path, name: str, report: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(report, indent=2, default=str) + "\n")


def _run_shard(args: argparse.Namespace, schema: Schema) -> str:
    if args.command == "count-shard":
        since, source = resolve_since(args.since, args.model_package_group or schema.name)
        counts, keys = count_shard(args.input, schema, since, args.feature_group or schema.name)
        cutoff = None if since is None else since.isoformat()
        path = _write_shard(args.output, {"since": cutoff, "since_source": source, **counts})
        np.save(path.with_suffix(".npy"), keys)
        return f"{len(keys)} new records in {counts['rows']} offline-store rows after {cutoff or 'the start'}"
    window = resolve_window(args.window_end, args.window_hours, args.execution_start)
    capture = read_captures(files_under(args.capture, CAPTURE_SUFFIXES), schema)
    if args.command == "drift-shard":
        source = baseline_source(args.baseline, args.model_package_group or schema.name)
        _write_shard(args.output, drift_shard(capture, load_baseline(source), schema, window, source))
    else:
        labels = read_labels(files_under(args.labels, LABEL_SUFFIXES), schema)
        matches, counts = quality_shard(capture, labels, window)
        _write_matches(matches, _write_shard(args.output, counts).with_suffix(".csv"))
    return (
        f"read {capture.lines} capture lines: {len(capture.records)} records, malformed {capture.malformed}"
    )


def _run(args: argparse.Namespace) -> str:
    """Run one step; returns what it did, in a line for the job's log."""
    schema = schema_mod.load(args.schema)
    if args.command.endswith("-shard"):
        return _run_shard(args, schema)
    if args.command == "drift":
        shards = read_shards(args.profiles, same=("window", "baseline"))
        baseline = load_baseline(args.baseline or shards[0]["baseline"])
        report = merge_drift(
            shards,
            baseline,
            schema,
            psi_threshold=args.psi_threshold,
            p_value_threshold=args.p_value_threshold,
        )
        name, summary = (
            "drift.json",
            f"drifted: {(report['drift'] or {}).get('drifted_features', 'no traffic')}",
        )
    elif args.command == "quality":
        shards = read_shards(args.matches, same=("window",))
        labels = read_labels(files_under(args.labels, LABEL_SUFFIXES), schema)
        report = merge_quality(shards, _read_matches(args.matches), labels, schema)
        name, summary = (
            "quality.json",
            f"{report['counts']['matched']} labelled predictions: {report['metrics']}",
        )
    else:
        shards = read_shards(args.counts, same=("since",))
        keys = [np.load(args.counts / f"{s['host']}.npy") for s in shards]
        report = merge_counts(shards, keys, schema)
        name, summary = (
            "count.json",
            f"{report['new_records']} new records since {report['since'] or 'the start'}",
        )
    _write_report(args.report_dir, name, report)
    publish(report["published"])
    return f"{summary}; published {len(report['published'])} metric data"


def main(argv: list[str] | None = None) -> int:
    """Run one monitoring step; returns the exit status (1 with the failure file written)."""
    args = _parser().parse_args(argv)
    try:
        print(_run(args))
    except (container.StepFailed, ValueError, OSError, BotoCoreError, ClientError) as exc:
        return container.fail(f"{args.command}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
