"""The ingestion pipeline's container steps: validate each shard of an upload, then fill the feature group.

::

    validate  ValidateData: python -m model_code.contract.validate on this instance's share of the
              files (its outputs named after the host; an instance dealt no file reports zero
              rows), as in the training pipeline
    put       IngestFeatures: every accepted record to the feature group with PutRecord (the
              online store, and through AWS the offline store); ingest.json with the counts

The feature group's feature definitions are the schema's columns (:func:`feature_definitions`):
the entity id (String), the event time (an ISO-8601 String; ``event_time`` with the ingestion
time when the schema names none), the features, and the target. A record lists the values as
strings and leaves nulls out.

Nothing is lost silently: throttling and transient errors are retried with backoff (after
botocore's own retries); a record still refused is written with the error to ``failed.csv``
(and to ``--failed-uri`` in S3, since a failed job's outputs may not be uploaded), counted
by error code in ``ingest.json``, and fails the step once every other record is in.
Published to CloudWatch (namespace MLOps, dimension Model): ``IngestedRecordCount``,
``IngestFailedRecordCount`` and ``QuarantinedRecordCount``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from model_code import container, metrics
from model_code.contract import schema as schema_mod
from model_code.contract import table
from model_code.contract.schema import Schema
from model_code.monitoring import monitor

PROCESSING = Path("/opt/ml/processing")
# Errors worth another try: the service is busy or briefly unwell, the record is not at fault.
RETRYABLE = frozenset(
    {"ThrottlingException", "Throttling", "ServiceUnavailable", "InternalFailure", "RequestTimeout"}
)
DEFAULT_ATTEMPTS = 6
DEFAULT_WORKERS = 8
REASON_COLUMN = "reason"
_FEATURE_TYPES = {"integral": "Integral", "fractional": "Fractional", "string": "String"}


# --- records ------------------------------------------------------------------------------------


def event_time_feature(schema: Schema) -> str:
    return monitor.event_time_column(schema)


def target_type(schema: Schema) -> str:
    """The target's Feature Store type, from how its positive class is written."""
    positive = schema.target.positive
    if isinstance(positive, bool) or not isinstance(positive, (int, float)):
        return "String"
    return "Integral" if isinstance(positive, int) else "Fractional"


def feature_definitions(schema: Schema) -> list[dict[str, str]]:
    """The feature group's FeatureDefinitions: entity id, event time, features and target."""
    columns = [
        (schema.entity_id, "String"),
        (event_time_feature(schema), "String"),
        *((f.name, _FEATURE_TYPES[f.type]) for f in schema.features),
        (schema.target.column, target_type(schema)),
    ]
    return [{"FeatureName": name, "FeatureType": kind} for name, kind in columns]


def _iso(stamp: pd.Timestamp) -> str:
    # The two forms Feature Store takes: seconds, or milliseconds when the time has them.
    text = stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{stamp.microsecond // 1000:03d}Z" if stamp.microsecond else f"{text}Z"


def _number(value: Any, kind: str) -> str:
    x = float(value)
    return str(int(x)) if kind == "Integral" and x.is_integer() else repr(x)


def to_records(frame: pd.DataFrame, schema: Schema) -> list[list[dict[str, str]]]:
    """PutRecord ``Record`` lists for the rows of a frame typed by the schema; nulls are left out."""
    kinds = {d["FeatureName"]: d["FeatureType"] for d in feature_definitions(schema)}
    event_time = event_time_feature(schema)
    columns = [c for c in kinds if c in frame.columns]
    records = []
    for values in zip(*(frame[c].to_numpy(dtype=object) for c in columns), strict=True):
        record = []
        for name, value in zip(columns, values, strict=True):
            if pd.isna(value):
                continue
            if name == event_time:
                text = _iso(pd.Timestamp(value))
            elif kinds[name] == "String":
                text = str(value)
            else:
                text = _number(value, kinds[name])
            record.append({"FeatureName": name, "ValueAsString": text})
        records.append(record)
    return records


# --- putting them -------------------------------------------------------------------------------


@dataclass
class PutResult:
    """What became of each record: put, or failed with the error (by position in the input)."""

    put: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    failure_codes: dict[str, int] = field(default_factory=dict)
    retries: int = 0


def _backoff(attempt: int) -> float:
    return min(0.2 * 2**attempt, 10.0)


def put_records(
    records: list[list[dict[str, str]]],
    feature_group: str,
    client: Any,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    workers: int = DEFAULT_WORKERS,
    sleep: Callable[[float], None] = time.sleep,
) -> PutResult:
    """PutRecord each record, ``workers`` at a time, retrying throttling and transient errors.

    A boto3 client is thread-safe; with ``workers=1`` requests go in input order.
    """

    def put(record: list[dict[str, str]]) -> tuple[str | None, str | None, int]:
        for attempt in range(attempts):
            try:
                client.put_record(FeatureGroupName=feature_group, Record=record)
                return None, None, attempt
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code", "Unknown")
                if code not in RETRYABLE or attempt == attempts - 1:
                    return code, f"{code}: {error.get('Message', '')}", attempt
                sleep(_backoff(attempt))
            except BotoCoreError as exc:  # no answer at all (connection, timeout)
                return type(exc).__name__, f"{type(exc).__name__}: {exc}", attempt
        raise AssertionError("unreachable")  # the last attempt always returns

    result = PutResult()
    codes: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for position, (code, reason, retries) in enumerate(pool.map(put, records)):
            result.retries += retries
            if code is None:
                result.put += 1
            else:
                result.failed[position] = reason
                codes[code] += 1
    result.failure_codes = dict(codes.most_common())
    return result


# --- the container steps ------------------------------------------------------------------------


def read_accepted(files: list[Path], schema: Schema, ingestion_time: pd.Timestamp) -> pd.DataFrame:
    """The accepted rows of every shard, typed by the schema, with an event time on each."""
    frames = [table.read_csv(p, schema) for p in files]
    columns = [schema.entity_id, *schema.feature_names, schema.target.column]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    event_time = event_time_feature(schema)
    if event_time not in frame.columns:  # a schema without an event time: ingestion stamps one
        frame[event_time] = ingestion_time
    return frame


def validation_totals(reports: list[Path]) -> dict[str, Any]:
    """Rows in, accepted and quarantined over the ValidateData shards' validation.json files."""
    data = [json.loads(p.read_text()) for p in reports]
    totals = {k: sum(int(d[k]) for d in data) for k in ("rows_in", "rows_accepted", "rows_quarantined")}
    return {**totals, "validation_reports": len(data)}


def ingest(
    frame: pd.DataFrame,
    schema: Schema,
    feature_group: str,
    client: Any,
    *,
    workers: int = DEFAULT_WORKERS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Put every row of ``frame`` into the feature group: the report, and the failed rows with a reason."""
    result = put_records(to_records(frame, schema), feature_group, client, workers=workers, sleep=sleep)
    failed = frame.iloc[sorted(result.failed)].assign(
        **{REASON_COLUMN: [result.failed[p] for p in sorted(result.failed)]}
    )
    report = {
        "feature_group": feature_group,
        "records": len(frame),
        "records_put": result.put,
        "records_failed": len(result.failed),
        "failure_reasons": result.failure_codes,
        "retries": result.retries,
    }
    return report, failed


def ingest_metrics(report: dict[str, Any], schema: Schema) -> list[dict[str, Any]]:
    dims = {"Model": schema.name}
    data = [
        metrics.metric_datum("IngestedRecordCount", report["records_put"], dims, "Count"),
        metrics.metric_datum("IngestFailedRecordCount", report["records_failed"], dims, "Count"),
    ]
    if report.get("rows_quarantined") is not None:
        data.append(metrics.metric_datum("QuarantinedRecordCount", report["rows_quarantined"], dims, "Count"))
    return data


def validate_shard(argv: list[str]) -> int:
    """``python -m model_code.contract.validate``: the one validation entry point, which also
    lets an instance dealt no file (more instances than files) report zero rows."""
    from model_code.contract import validate

    return validate.main(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.ingestion.ingest put",
        description="Put the accepted records into the feature group (IngestFeatures).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    inp = PROCESSING / "input"
    add = parser.add_argument
    add("--schema", type=Path, default=inp / "schema", help="schema YAML or a folder with one")
    add("--accepted", type=Path, default=inp / "accepted", help="ValidateData's accepted CSVs")
    add("--validation", type=Path, default=inp / "validation", help="ValidateData's validation.json files")
    add("--report-dir", type=Path, default=PROCESSING / "output/report", help="for ingest.json, failed.csv")
    add("--failed-uri", default=None, help="s3:// object that also receives failed.csv when records fail")
    add("--feature-group", default=None, help="feature group name (default: the schema's name)")
    add("--ingestion-time", default="now", help="event time for a schema without one (ISO-8601)")
    add("--workers", type=int, default=DEFAULT_WORKERS, help="PutRecord calls in flight")
    return parser


def _client(service: str, given: Any) -> Any:
    if given is not None:
        return given
    import boto3

    return boto3.client(service)


def _keep(failed: pd.DataFrame, uri: str, s3: Any) -> None:
    # SageMaker uploads a failed job's outputs on no promise: the rows go to S3 directly.
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    _client("s3", s3).put_object(Bucket=bucket, Key=key, Body=failed.to_csv(index=False).encode())


def put_main(argv: list[str], featurestore: Any = None, cloudwatch: Any = None, s3: Any = None) -> int:
    """IngestFeatures; clients default to boto3's (AWS_DEFAULT_REGION, AWS_ENDPOINT_URL apply)."""
    args = _parser().parse_args(argv)
    try:
        schema = schema_mod.load(args.schema)
        now = args.ingestion_time == "now"
        when = pd.Timestamp.now(tz="UTC").floor("s") if now else monitor.utc(args.ingestion_time)
        frame = read_accepted(monitor.files_under(args.accepted, (".csv",)), schema, when)
        totals = validation_totals(monitor.files_under(args.validation, (".json",)))
        if totals["validation_reports"] and totals["rows_accepted"] != len(frame):
            raise container.StepFailed(
                f"{args.accepted}: {len(frame)} accepted rows found, but validation accepted {totals['rows_accepted']}"
            )
        group = args.feature_group or schema.name
        featurestore = _client("sagemaker-featurestore-runtime", featurestore)
        report, failed = ingest(frame, schema, group, featurestore, workers=args.workers)
        report = {"model": schema.name, **totals, **report}
        args.report_dir.mkdir(parents=True, exist_ok=True)
        (args.report_dir / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
        failed.to_csv(args.report_dir / "failed.csv", index=False)
        kept = "failed.csv"
        if len(failed) and args.failed_uri:
            _keep(failed, args.failed_uri, s3)
            kept = args.failed_uri
        monitor.publish(ingest_metrics(report, schema), cloudwatch)
    except container.STEP_ERRORS as exc:
        return container.fail(f"IngestFeatures: {exc}", job=container.PROCESSING)
    print(
        f"put {report['records_put']} of {report['records']} records into {group}; "
        f"failed {report['records_failed']} {report['failure_reasons'] or ''}"
    )
    if report["records_failed"]:
        return container.fail(
            f"IngestFeatures: {report['records_failed']} of {report['records']} records were not put "
            f"({report['failure_reasons']}); they are in {kept} with the error",
            job=container.PROCESSING,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("validate", "put"):
        print("usage: python -m model_code.ingestion.ingest validate|put [options]", file=sys.stderr)
        return 2
    return validate_shard(argv[1:]) if argv[0] == "validate" else put_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
