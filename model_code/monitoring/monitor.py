"""The monitoring pipeline's container steps: drift, quality and new-data volume, published to CloudWatch.

Each check is a sharded step and a merge step, so a large window scales out over instances::

    shard step (N instances; files dealt out by ShardedByS3Key)        merge step (1 instance)
    drift-shard    capture files ─► <host>.json (drift profile)      ─► drift    merge, compare, publish
    quality-shard  capture files + all labels ─► <host>.csv, .json   ─► quality  join, score, publish
    count-shard    offline-store files ─► <host>.json, .npy (keys)   ─► count    count once, publish

Every shard names its output after its host and a merge checks the outputs complete and
agreeing (``model_code.monitoring.shards``), so nothing is dropped or mixed silently. One instance and
four give the same numbers (tests/model_code/test_monitor.py).

**Captured traffic** is SageMaker data capture, read into records by ``model_code.monitoring.capture``
(the JSON Lines format, and the id a record is joined with ground truth on). Values are typed
by the schema as training data is: a value that does not parse becomes a null, which drift sees.

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

**New data** (``model_code.monitoring.new_data``) counts the feature group's offline-store records whose
event time is after ``--since`` (by default the champion's ``DataEnd``), each record once.

boto3 clients are made with defaults, so ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL`` (a
local emulator) apply.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# `import name as name` marks a re-export: what moved to capture, shards and new_data is still
# importable from here, where ingest and the tests look for it.
from model_code import container, metrics, register_info
from model_code.contract import rules
from model_code.contract import schema as schema_mod
from model_code.contract.schema import Schema
from model_code.monitoring import drift, quality
from model_code.monitoring.capture import CAPTURE_SUFFIXES, Capture, read_captures
from model_code.monitoring.capture import CSV as CSV
from model_code.monitoring.capture import JSON as JSON
from model_code.monitoring.capture import MalformedCapture as MalformedCapture
from model_code.monitoring.capture import parse_capture_line as parse_capture_line
from model_code.monitoring.new_data import LAST_TRAINING, count_shard, merge_counts, resolve_since
from model_code.monitoring.new_data import event_time_column as event_time_column
from model_code.monitoring.new_data import in_feature_group as in_feature_group
from model_code.monitoring.shards import (
    EXECUTION_START,
    Window,
    files_under,
    read_shards,
    resolve_window,
    sum_counts,
    sum_field,
    write_shard,
)
from model_code.monitoring.shards import utc as utc

PROCESSING = Path("/opt/ml/processing")
CHAMPION = "champion"  # --baseline: the drift baseline registered with the approved model
DEFAULT_WINDOW_HOURS = 24.0
LABEL_SUFFIXES = (".csv", ".jsonl", ".json")
# PutMetricData takes at most 1000 data per call.
MAX_METRIC_DATA = 1000
_MATCH_COLUMNS = ["id", "probability", "time", "event_id", "record"]


def publish(metric_data: list[dict[str, Any]], client: Any = None, namespace: str = metrics.NAMESPACE) -> int:
    """Put ``metric_data`` to CloudWatch in calls of at most 1000 data; returns the number of calls.

    Every datum carries the job's stack (``metrics.STACK_ENV``) as its ``Stack`` dimension, the
    one the stack's alarms watch.
    """
    if client is None:
        import boto3

        client = boto3.client("cloudwatch")
    metric_data = metrics.with_dimensions(metric_data, metrics.stack_dimension())
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
    current = rules.coerce(records.loc[inside, schema.feature_names], schema)
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
    malformed = sum_counts(shards, "malformed")
    dims = {"Model": schema.name}
    data = [
        metrics.metric_datum("CapturedRecordCount", profile.rows, dims, "Count"),
        metrics.metric_datum("MalformedCaptureCount", sum(malformed.values()), dims, "Count"),
    ]
    report = None
    if profile.rows:
        report = drift.compare(
            baseline, profile, psi_threshold=psi_threshold, p_value_threshold=p_value_threshold, schema=schema
        )
        data = [*report.to_metrics(schema.name), *data]
    return {
        "model": schema.name,
        "window": shards[0]["window"],
        "baseline": shards[0].get("baseline"),
        "counts": {
            "lines": sum_field(shards, "lines"),
            "malformed_lines": sum(malformed.values()),
            "records": sum_field(shards, "records"),
            "records_outside_window": sum_field(shards, "outside_window"),
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
    counts["predictions"] += sum_field(shards, "records") - len(matches)
    counts["invalid_predictions"] += sum_field(shards, "invalid")
    counts["predictions_outside_window"] += sum_field(shards, "without_label_outside_window")
    counts["predictions_without_label"] += sum_field(shards, "without_label_in_window")
    report = replace(report, counts=counts)
    return {
        **report.to_dict(),
        "lines": sum_field(shards, "lines"),
        "malformed": sum_counts(shards, "malformed"),
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


# --- the container steps -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.monitoring.monitor",
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

    def variant(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--variant", default=None, help="the endpoint variant whose capture was read (Variant dimension)"
        )

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
    variant(sub)
    sub = command("quality-shard", "keep this shard's captured predictions that have ground truth")
    shard(sub, "matches")
    sub.add_argument("--labels", type=Path, default=inp / "labels", help="ground truth CSV/JSONL")
    sub = command("quality", "join the shards' predictions with ground truth, publish quality metrics")
    sub.add_argument("--labels", type=Path, default=inp / "labels", help="ground truth CSV/JSONL")
    sub.add_argument("--matches", type=Path, default=inp / "matches", help="the shards' outputs")
    sub.add_argument("--report-dir", type=Path, default=out / "report", help="for quality.json")
    variant(sub)
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
        path = write_shard(args.output, {"since": cutoff, "since_source": source, **counts})
        np.save(path.with_suffix(".npy"), keys)
        return f"{len(keys)} new records in {counts['rows']} offline-store rows after {cutoff or 'the start'}"
    window = resolve_window(args.window_end, args.window_hours, args.execution_start)
    capture = read_captures(files_under(args.capture, CAPTURE_SUFFIXES), schema)
    if args.command == "drift-shard":
        source = baseline_source(args.baseline, args.model_package_group or schema.name)
        write_shard(args.output, drift_shard(capture, load_baseline(source), schema, window, source))
    else:
        labels = read_labels(files_under(args.labels, LABEL_SUFFIXES), schema)
        matches, counts = quality_shard(capture, labels, window)
        _write_matches(matches, write_shard(args.output, counts).with_suffix(".csv"))
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
    # Drift and quality are of one variant's traffic: a shadow challenger's never lands on the
    # production variant's metrics (and alarms); the count is of the feature group, no variant.
    extra = {"Variant": args.variant} if getattr(args, "variant", None) else {}
    report["published"] = metrics.with_dimensions(report["published"], {**extra, **metrics.stack_dimension()})
    _write_report(args.report_dir, name, report)
    publish(report["published"])
    return f"{summary}; published {len(report['published'])} metric data"


def main(argv: list[str] | None = None) -> int:
    """Run one monitoring step; returns the exit status (1 with the reason in /opt/ml/output/message)."""
    args = _parser().parse_args(argv)
    return container.run_processing(lambda: _run(args), args.command)


if __name__ == "__main__":
    sys.exit(main())
