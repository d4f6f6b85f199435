"""The monitoring steps: captured traffic read as SageMaker writes it, checks published to CloudWatch,
and the same numbers from one instance as from four."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from model_code import metrics
from model_code.contract import rules, synthetic
from model_code.contract import schema as schema_mod
from model_code.monitoring import monitor, quality
from model_code.serving import inference
from model_code.training import artifact
from model_code.training.evaluate import drift_baseline

DAY = "2026-02-01T00:00:00Z"
WINDOW = ["--window-end", "2026-02-02T00:00:00Z", "--window-hours", "24"]
BATCH = 50
PREFIX = "prefix"  # the folder standing for a step's S3 input prefix
# Where the pipeline mounts each shard step's sharded input (the folder names matter: an
# offline-store file is told apart by the "offline-store" folder in its path).
MOUNTS = {"--capture": "capture", "--input": "offline-store"}


def capture_line(
    request: str,
    response: str,
    *,
    time: str,
    event_id: str,
    inference_id: str | None = None,
    content_type: str = "application/json",
    encoding: str = "JSON",
) -> str:
    """One line of SageMaker data capture for an invocation."""

    def side(data: str, kind: str, mode: str) -> dict:
        if encoding == "BASE64":
            data = base64.b64encode(data.encode()).decode()
        return {"observedContentType": kind, "mode": mode, "data": data, "encoding": encoding}

    meta = {"eventId": event_id, "inferenceTime": time}
    if inference_id:
        meta["inferenceId"] = inference_id
    record = {
        "captureData": {
            "endpointInput": side(request, content_type, "INPUT"),
            "endpointOutput": side(response, "application/json", "OUTPUT"),
        },
        "eventMetadata": meta,
        "eventVersion": "0",
    }
    return json.dumps(record)


def json_request(rows: pd.DataFrame, columns: list[str]) -> str:
    return json.dumps({"instances": json.loads(rows[columns].to_json(orient="records"))})


def response(probabilities) -> str:
    return json.dumps(
        {"predictions": [{"probability": float(p), "prediction": int(p >= 0.5)} for p in probabilities]}
    )


def write_capture(
    folder: Path, traffic: pd.DataFrame, probabilities: np.ndarray, schema, n_files: int = 8
) -> list[Path]:
    """Traffic as JSON requests of BATCH records (entity id included), dealt over hourly files."""
    columns = [schema.entity_id, *schema.feature_names]
    files = [folder / PREFIX / f"AllTraffic/2026/02/01/{k:02d}/capture-{k}.jsonl" for k in range(n_files)]
    lines: list[list[str]] = [[] for _ in files]
    for b, first in enumerate(range(0, len(traffic), BATCH)):
        rows = traffic.iloc[first : first + BATCH]
        line = capture_line(
            json_request(rows, columns),
            response(probabilities[first : first + BATCH]),
            time=rows["event_time"].iloc[0],
            event_id=f"event-{b}",
        )
        lines[b % n_files].append(line)
    for path, content in zip(files, lines, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(content) + "\n")
    return files


def run_shards(
    command: list[str], files: list[Path], n: int, work: Path, monkeypatch, input_flag: str
) -> Path:
    """Run a shard step on ``n`` hosts, each given every n-th file under its path below the S3
    prefix (``files[0].parent`` up to ``PREFIX``), as ShardedByS3Key deals them; returns the
    folder the hosts wrote into (the step's output prefix)."""
    hosts = [f"algo-{i + 1}" for i in range(n)]
    root = next(p for p in files[0].parents if p.name == PREFIX)
    output = work / "output"
    for i, host in enumerate(hosts):
        share = work / host / MOUNTS[input_flag]
        share.mkdir(parents=True)
        for path in files[i::n]:
            dest = share / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
        monkeypatch.setenv("SM_CURRENT_HOST", host)
        monkeypatch.setenv("SM_HOSTS", ",".join(hosts))
        assert monitor.main([*command, input_flag, str(share), "--output", str(output)]) == 0
    return output


@pytest.fixture
def cloud(monkeypatch, tmp_path):
    """In-process moto: CloudWatch, S3 and the model registry."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    with mock_aws():
        yield


def published(name: str, dimensions: dict[str, str], statistic: str = "Maximum") -> float | None:
    """The latest value of a metric, read back from CloudWatch."""
    now = dt.datetime.now(dt.UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=metrics.NAMESPACE,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - dt.timedelta(hours=1),
        EndTime=now + dt.timedelta(hours=1),
        Period=3600,
        Statistics=[statistic],
    )["Datapoints"]
    return points[0][statistic] if points else None


@pytest.fixture(scope="module")
def bundle(model_dir):
    return artifact.load(model_dir)


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory, bundle, churn_frame) -> Path:
    """The drift baseline of the training data, as EvaluateModel writes it."""
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    path.write_text(json.dumps(drift_baseline(bundle, churn_frame).to_dict()))
    return path


@pytest.fixture(scope="module")
def drifted(bundle, churn_schema) -> tuple[pd.DataFrame, np.ndarray]:
    """A day of traffic with planted data drift, and the model's answers to it."""
    traffic = synthetic.generate(2000, seed=11, data_drift=1.0, start=DAY, id_prefix="T")
    features = rules.coerce(traffic[churn_schema.feature_names], churn_schema)
    answers = inference.predict_fn(features, bundle)
    return traffic, np.array([a["probability"] for a in answers])


@pytest.fixture(scope="module")
def capture_files(tmp_path_factory, drifted, churn_schema) -> list[Path]:
    traffic, probabilities = drifted
    return write_capture(tmp_path_factory.mktemp("capture"), traffic, probabilities, churn_schema)


@pytest.fixture
def schema_file(tmp_path) -> Path:
    path = tmp_path / "schema" / "customer-churn.yaml"
    path.parent.mkdir()
    shutil.copy(schema_mod.EXAMPLE_SCHEMA, path)
    return path


def drift_run(n, files, baseline_file, schema_file, work, monkeypatch) -> dict:
    """drift-shard on n hosts, then the drift merge; returns drift.json."""
    shard = ["drift-shard", "--schema", str(schema_file), "--baseline", str(baseline_file), *WINDOW]
    profiles = run_shards(shard, files, n, work, monkeypatch, "--capture")
    report = work / "report"
    assert (
        monitor.main(
            ["drift", "--schema", str(schema_file), "--profiles", str(profiles), "--report-dir", str(report)]
        )
        == 0
    )
    return json.loads((report / "drift.json").read_text())


# --- drift ------------------------------------------------------------------------------------


def test_planted_drift_is_published_as_drifted_for_exactly_the_moved_features(
    cloud, capture_files, baseline_file, schema_file, tmp_path, monkeypatch, churn_schema
):
    drift_run(1, capture_files, baseline_file, schema_file, tmp_path, monkeypatch)
    flags = {
        f: published("FeatureDrifted", {"Model": "customer-churn", "Feature": f})
        for f in churn_schema.feature_names
    }
    moved = set(synthetic.DATA_DRIFT_FEATURES)
    unmoved = set(churn_schema.feature_names) - moved - set(synthetic.DATA_DRIFT_DERIVED)
    assert {f for f in moved if flags[f] == 1.0} == moved
    assert {f for f in unmoved if flags[f] == 0.0} == unmoved


def test_the_drift_step_publishes_how_many_records_it_compared(
    cloud, capture_files, baseline_file, schema_file, tmp_path, monkeypatch
):
    drift_run(1, capture_files, baseline_file, schema_file, tmp_path, monkeypatch)
    assert published("CapturedRecordCount", {"Model": "customer-churn"}) == 2000
    assert published("MalformedCaptureCount", {"Model": "customer-churn"}) == 0


def test_one_and_four_instances_publish_the_same_drift_metrics(
    cloud, capture_files, baseline_file, schema_file, tmp_path, monkeypatch
):
    one = drift_run(1, capture_files, baseline_file, schema_file, tmp_path / "one", monkeypatch)
    four = drift_run(4, capture_files, baseline_file, schema_file, tmp_path / "four", monkeypatch)
    assert four["shards"] == ["algo-1", "algo-2", "algo-3", "algo-4"]
    assert four["published"] == one["published"]
    assert four["drift"] == one["drift"]


def test_records_outside_the_window_are_counted_not_profiled(
    capture_files, baseline_file, schema_file, tmp_path, monkeypatch, cloud
):
    shard = ["drift-shard", "--schema", str(schema_file), "--baseline", str(baseline_file)]
    window = ["--window-end", "2026-02-01T12:00:00Z", "--window-hours", "6"]
    output = run_shards([*shard, *window], capture_files, 1, tmp_path, monkeypatch, "--capture")
    counts = json.loads((output / "algo-1.json").read_text())
    assert counts["profile"]["rows"] + counts["outside_window"] == counts["records"] == 2000
    assert 0 < counts["profile"]["rows"] < 2000


def test_a_window_without_traffic_publishes_the_count_and_no_verdict(
    cloud, capture_files, baseline_file, schema_file, tmp_path, monkeypatch
):
    shard = [
        "drift-shard",
        "--schema",
        str(schema_file),
        "--baseline",
        str(baseline_file),
        "--window-end",
        "2025-01-01T00:00:00Z",
    ]
    profiles = run_shards(shard, capture_files, 1, tmp_path, monkeypatch, "--capture")
    assert (
        monitor.main(
            [
                "drift",
                "--schema",
                str(schema_file),
                "--profiles",
                str(profiles),
                "--report-dir",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "r" / "drift.json").read_text())["drift"] is None
    assert published("CapturedRecordCount", {"Model": "customer-churn"}) == 0
    assert published("FeatureDrifted", {"Model": "customer-churn", "Feature": "contract"}) is None


def test_a_missing_shard_fails_the_merge_naming_the_host(
    capture_files, baseline_file, schema_file, tmp_path, monkeypatch, cloud
):
    shard = ["drift-shard", "--schema", str(schema_file), "--baseline", str(baseline_file), *WINDOW]
    profiles = run_shards(shard, capture_files, 2, tmp_path, monkeypatch, "--capture")
    (profiles / "algo-2.json").unlink()
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    failure = tmp_path / "opt_ml" / "output" / "message"
    assert (
        monitor.main(
            [
                "drift",
                "--schema",
                str(schema_file),
                "--profiles",
                str(profiles),
                "--report-dir",
                str(tmp_path / "r"),
            ]
        )
        == 1
    )
    assert "missing ['algo-2']" in failure.read_text()


def test_the_champions_registered_baseline_is_used_by_default(
    cloud, capture_files, baseline_file, schema_file, tmp_path, monkeypatch
):
    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="artifacts", Key="models/baseline.json", Body=baseline_file.read_bytes())
    sagemaker.create_model_package_group(ModelPackageGroupName="customer-churn")
    sagemaker.create_model_package(
        ModelPackageGroupName="customer-churn",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "000000000000.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": "s3://artifacts/models/baseline.json",
                }
            }
        },
    )
    shard = ["drift-shard", "--schema", str(schema_file), *WINDOW]  # --baseline champion
    profiles = run_shards(shard, capture_files, 1, tmp_path, monkeypatch, "--capture")
    assert (
        monitor.main(
            [
                "drift",
                "--schema",
                str(schema_file),
                "--profiles",
                str(profiles),
                "--report-dir",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert report["baseline"] == "s3://artifacts/models/baseline.json"
    assert set(synthetic.DATA_DRIFT_FEATURES) <= set(report["drift"]["drifted_features"])


def test_publishing_puts_at_most_1000_data_a_call():
    class Recorder:
        def __init__(self):
            self.calls = []

        def put_metric_data(self, Namespace, MetricData):
            self.calls.append(len(MetricData))

    data = [metrics.metric_datum("M", i, {"Model": "m"}) for i in range(2500)]
    client = Recorder()
    assert monitor.publish(data, client) == 3
    assert client.calls == [1000, 1000, 500]


# --- reading captured traffic ------------------------------------------------------------------


@pytest.fixture
def three_records(churn_schema) -> pd.DataFrame:
    return synthetic.generate(3, seed=5, start=DAY)


def test_json_csv_and_base64_captures_read_as_the_same_records(three_records, churn_schema):
    names = churn_schema.feature_names
    as_csv = three_records[names].to_csv(index=False, header=False)
    answers = response([0.1, 0.6, 0.9])
    lines = {
        "json": capture_line(
            json_request(three_records, names), answers, time=DAY, event_id="e", inference_id="r"
        ),
        "csv": capture_line(
            as_csv, answers, time=DAY, event_id="e", inference_id="r", content_type="text/csv", encoding="CSV"
        ),
        "base64": capture_line(
            as_csv,
            answers,
            time=DAY,
            event_id="e",
            inference_id="r",
            content_type="text/csv",
            encoding="BASE64",
        ),
    }
    frames = {}
    for kind, line in lines.items():
        rows = monitor.parse_capture_line(line, churn_schema)
        frames[kind] = rules.coerce(pd.DataFrame([r[5:] for r in rows], columns=names), churn_schema)
        assert [r[4] for r in rows] == [0.1, 0.6, 0.9]
    expected = rules.coerce(three_records[names], churn_schema)
    for frame in frames.values():
        pd.testing.assert_frame_equal(frame, expected)


def test_malformed_capture_lines_are_skipped_and_counted_by_reason(tmp_path, three_records, churn_schema):
    names = churn_schema.feature_names
    good = capture_line(json_request(three_records, names), response([0.1, 0.2, 0.3]), time=DAY, event_id="e")
    error = capture_line(
        json_request(three_records, names), json.dumps({"error": "bad"}), time=DAY, event_id="f"
    )
    short = capture_line(json_request(three_records, names), response([0.1]), time=DAY, event_id="g")
    no_time = json.loads(good)
    del no_time["eventMetadata"]["inferenceTime"]
    path = tmp_path / "capture.jsonl"
    path.write_text("\n".join([good, "{not json", error, short, json.dumps(no_time), "", good]) + "\n")
    capture = monitor.read_captures([path], churn_schema)
    assert len(capture.records) == 6
    assert capture.lines == 6
    assert capture.malformed == {
        "as many predictions as records expected": 1,
        "endpointOutput: no predictions (an error response?)": 1,
        "eventMetadata.inferenceTime: missing or not ISO-8601": 1,
        "not a JSON line": 1,
    }


def test_record_ids_are_the_entity_id_else_the_inference_id_and_position(three_records, churn_schema):
    names = churn_schema.feature_names
    answers = response([0.1, 0.2, 0.3])
    with_ids = capture_line(
        json_request(three_records, ["customer_id", *names]),
        answers,
        time=DAY,
        event_id="e",
        inference_id="r",
    )
    batch = capture_line(
        json_request(three_records, names), answers, time=DAY, event_id="e", inference_id="r"
    )
    single = capture_line(
        json.dumps(json.loads(three_records[names].iloc[:1].to_json(orient="records"))[0]),
        response([0.5]),
        time=DAY,
        event_id="e",
    )

    def ids(line: str) -> list[str]:
        return [r[0] for r in monitor.parse_capture_line(line, churn_schema)]

    assert ids(with_ids) == ["C0000000", "C0000001", "C0000002"]
    assert ids(batch) == ["r-0", "r-1", "r-2"]
    assert ids(single) == ["e"]


# --- quality -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feedback(tmp_path_factory, churn_schema, bundle) -> tuple[list[Path], Path]:
    """Captured predictions, some customers predicted twice in different files, and their labels
    (some missing, some for customers never predicted)."""
    traffic = synthetic.generate(1200, seed=13, concept_drift=0.5, start=DAY, id_prefix="Q")
    features = rules.coerce(traffic[churn_schema.feature_names], churn_schema)
    proba = np.array([a["probability"] for a in inference.predict_fn(features, bundle)])
    # The first 200 customers come back later in the day with other answers.
    again = traffic.iloc[:200].assign(event_time="2026-02-01T23:00:00Z")
    traffic = pd.concat([traffic, again], ignore_index=True)
    proba = np.concatenate([proba, np.clip(proba[:200] + 0.2, 0, 1)])
    folder = tmp_path_factory.mktemp("feedback")
    files = write_capture(folder / "capture", traffic, proba, churn_schema, n_files=6)
    labels = synthetic.generate(1200, seed=13, concept_drift=0.5, start=DAY, id_prefix="Q")[
        ["customer_id", "churned"]
    ]
    labels = pd.concat([labels.iloc[100:], pd.DataFrame({"customer_id": ["X1", "X2"], "churned": [1, 0]})])
    (folder / "labels").mkdir()
    labels.to_csv(folder / "labels" / "labels.csv", index=False)
    return files, folder / "labels"


def quality_run(n, feedback, schema_file, work, monkeypatch) -> dict:
    files, labels = feedback
    shard = ["quality-shard", "--schema", str(schema_file), "--labels", str(labels), *WINDOW]
    matches = run_shards(shard, files, n, work, monkeypatch, "--capture")
    report = work / "report"
    args = ["quality", "--schema", str(schema_file), "--labels", str(labels), "--matches", str(matches)]
    assert monitor.main([*args, "--report-dir", str(report)]) == 0
    return json.loads((report / "quality.json").read_text())


def test_the_quality_join_accounts_for_every_prediction_and_label(
    cloud, feedback, schema_file, tmp_path, monkeypatch
):
    counts = quality_run(1, feedback, schema_file, tmp_path, monkeypatch)["counts"]
    assert counts["predictions"] == 1400
    assert counts["duplicate_predictions"] == 100  # of the 200 repeats, 100 have a label
    assert counts["predictions_without_label"] == 200  # customers Q0..Q99, each predicted twice
    assert counts["matched"] == 1100
    assert counts["labels_without_prediction"] == 2
    predictions = ("invalid_predictions", "predictions_outside_window", "duplicate_predictions")
    assert (
        sum(counts[k] for k in predictions) + counts["predictions_without_label"] + counts["matched"] == 1400
    )


def test_quality_from_shards_equals_scoring_all_predictions_at_once(
    cloud, feedback, schema_file, tmp_path, monkeypatch, churn_schema
):
    report = quality_run(4, feedback, schema_file, tmp_path, monkeypatch)
    files, labels = feedback
    capture = monitor.read_captures(files, churn_schema)
    direct = quality.evaluate_window(
        capture.records[["id", "probability", "time"]],
        monitor.read_labels([labels / "labels.csv"], churn_schema),
        churn_schema,
        start="2026-02-01",
        end="2026-02-02",
    )
    assert report["metrics"]["auc"] == pytest.approx(direct.metrics["auc"], abs=1e-12)
    assert report["counts"]["matched"] == direct.counts["matched"]
    assert published("AUC", {"Model": "customer-churn"}) == pytest.approx(direct.metrics["auc"])
    assert published("LabelledCount", {"Model": "customer-churn"}) == direct.counts["matched"]


def test_one_and_four_instances_publish_the_same_quality_metrics(
    cloud, feedback, schema_file, tmp_path, monkeypatch
):
    one = quality_run(1, feedback, schema_file, tmp_path / "one", monkeypatch)
    four = quality_run(4, feedback, schema_file, tmp_path / "four", monkeypatch)
    assert four["published"] == one["published"]
    assert four["counts"] == one["counts"]


# --- new records in the offline store -------------------------------------------------------------


def offline_store(folder: Path, group: str, files: dict[str, pd.DataFrame]) -> list[Path]:
    """Parquet files where Feature Store writes a group's offline store."""
    root = folder / "123456789012/sagemaker/eu-west-1/offline-store" / f"{group}-1767225600" / "data"
    paths = []
    for name, frame in files.items():
        path = root / "year=2026/month=01/day=01/hour=00" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path)
        paths.append(path)
    return paths


def store_rows(ids: list[str], times: list[str], deleted: list[bool] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "event_time": times,
            "tenure_months": 1,
            # SageMaker writes its timestamps without a time zone (UTC).
            "write_time": pd.Timestamp("2026-01-02"),
            "is_deleted": deleted or [False] * len(ids),
        }
    )


@pytest.fixture
def store(tmp_path) -> list[Path]:
    """Records A..D before and after 2026-01-01T12:00Z; C written twice (a re-ingested file), D deleted."""
    files = {
        "one": store_rows(
            ["A", "B", "C"], ["2026-01-01T10:00:00Z", "2026-01-01T13:00:00Z", "2026-01-01T14:00:00Z"]
        ),
        "two": store_rows(["C", "D"], ["2026-01-01T14:00:00Z", "2026-01-01T15:00:00Z"], [False, True]),
        "three": store_rows(["E"], ["2026-01-01T16:00:00.5Z"]),
        "four": store_rows(["F"], ["not a time"]),
    }
    paths = offline_store(tmp_path / PREFIX, "customer-churn", files)
    paths += offline_store(
        tmp_path / PREFIX, "other-model", {"x": store_rows(["Z"], ["2026-01-01T20:00:00Z"])}
    )
    return paths


def count_run(n, files, schema_file, work, monkeypatch, since="2026-01-01T12:00:00Z") -> dict:
    shard = ["count-shard", "--schema", str(schema_file), "--since", since]
    counts = run_shards(shard, files, n, work, monkeypatch, "--input")
    assert (
        monitor.main(
            ["count", "--schema", str(schema_file), "--counts", str(counts), "--report-dir", str(work / "r")]
        )
        == 0
    )
    return json.loads((work / "r" / "count.json").read_text())


def test_new_records_after_the_cutoff_are_counted_once_each(cloud, store, schema_file, tmp_path, monkeypatch):
    report = count_run(1, store, schema_file, tmp_path, monkeypatch)
    # B, C (twice) and E are new; A is older, D deleted, F has no time, Z is another group's.
    assert (report["new_records"], report["new_rows"]) == (3, 4)
    assert (report["deleted"], report["unparseable_times"], report["other_groups"]) == (1, 1, 1)
    assert published("NewRecordCount", {"Model": "customer-churn"}) == 3


def test_event_times_stored_as_naive_timestamps_or_epoch_seconds_are_read_as_utc(
    cloud, schema_file, tmp_path, monkeypatch
):
    naive = store_rows(["A", "B"], ["", ""]).assign(
        event_time=pd.to_datetime(["2026-01-01T10:00:00", "2026-01-01T13:00:00"])  # no time zone: UTC
    )
    epoch = store_rows(["C"], [""]).assign(event_time=[pd.Timestamp("2026-01-01T14:00:00Z").timestamp()])
    files = offline_store(tmp_path / PREFIX, "customer-churn", {"naive": naive, "epoch": epoch})
    report = count_run(1, files, schema_file, tmp_path, monkeypatch)
    # B (13:00 UTC) and C are after the 12:00Z cutoff; A is before; none is unreadable.
    assert (report["new_records"], report["unparseable_times"]) == (2, 0)


def test_one_and_four_instances_count_the_same_new_records(cloud, store, schema_file, tmp_path, monkeypatch):
    one = count_run(1, store, schema_file, tmp_path / "one", monkeypatch)
    four = count_run(4, store, schema_file, tmp_path / "four", monkeypatch)
    assert four["published"] == one["published"]


def test_the_cutoff_defaults_to_the_champions_data_end(cloud, store, schema_file, tmp_path, monkeypatch):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="customer-churn")
    sagemaker.create_model_package(
        ModelPackageGroupName="customer-churn",
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"DataEnd": "2026-01-01T14:00:00Z"},
        InferenceSpecification={
            "Containers": [{"Image": "000000000000.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    report = count_run(1, store, schema_file, tmp_path, monkeypatch, since="last-training")
    assert report["new_records"] == 1  # E only: C is at, not after, DataEnd
    assert report["since_source"].endswith("DataEnd")


def test_without_a_champion_every_record_is_new(cloud, store, schema_file, tmp_path, monkeypatch):
    report = count_run(1, store, schema_file, tmp_path, monkeypatch, since="last-training")
    assert (report["since"], report["new_records"]) == (None, 4)


# --- stacks and variants ------------------------------------------------------------------------


def test_every_datum_is_published_under_the_jobs_stack(monkeypatch):
    # Ingestion publishes through the same function: its counts carry the stack too.
    class Recorder:
        def put_metric_data(self, Namespace, MetricData):
            self.data = MetricData

    monkeypatch.setenv(metrics.STACK_ENV, "staging")
    client = Recorder()
    monitor.publish([metrics.metric_datum("IngestedRecordCount", 5, {"Model": "customer-churn"})], client)
    assert client.data[0]["Dimensions"] == [
        {"Name": "Model", "Value": "customer-churn"},
        {"Name": "Stack", "Value": "staging"},
    ]


def test_a_stacks_new_data_count_never_lands_on_another_stacks_metric(
    cloud, store, schema_file, tmp_path, monkeypatch
):
    monkeypatch.setenv(metrics.STACK_ENV, "staging")
    count_run(1, store, schema_file, tmp_path, monkeypatch)
    assert published("NewRecordCount", {"Model": "customer-churn", "Stack": "staging"}) == 3
    assert published("NewRecordCount", {"Model": "customer-churn", "Stack": "prod"}) is None


def test_a_challengers_drift_is_published_apart_from_the_production_variants(
    cloud, capture_files, baseline_file, schema_file, tmp_path, monkeypatch
):
    monkeypatch.setenv(metrics.STACK_ENV, "staging")
    shard = ["drift-shard", "--schema", str(schema_file), "--baseline", str(baseline_file), *WINDOW]
    profiles = run_shards(shard, capture_files, 1, tmp_path, monkeypatch, "--capture")
    merge = [
        "drift",
        "--schema",
        str(schema_file),
        "--profiles",
        str(profiles),
        "--report-dir",
        str(tmp_path),
    ]
    assert monitor.main([*merge, "--variant", "challenger"]) == 0
    dims = {"Model": "customer-churn", "Stack": "staging"}
    assert published("CapturedRecordCount", {**dims, "Variant": "challenger"}) == 2000
    assert published("CapturedRecordCount", {**dims, "Variant": "champion"}) is None
    flag = {**dims, "Variant": "challenger", "Feature": synthetic.DATA_DRIFT_FEATURES[0]}
    assert published("FeatureDrifted", flag) == 1.0
