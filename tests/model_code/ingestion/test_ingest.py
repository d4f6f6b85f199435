"""The ingestion steps: every accepted row reaches the feature group, or is kept with the reason it did not.

moto has no Feature Store runtime, so PutRecord goes to a real botocore client under a
Stubber, which checks every request against botocore's model of the API (the shape
SageMaker would accept); the published counts go to moto's CloudWatch.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from model_code import metrics
from model_code.contract import rules, synthetic
from model_code.contract import schema as schema_mod
from model_code.ingestion import ingest

GROUP = "customer-churn"


@pytest.fixture
def featurestore():
    """A Feature Store runtime client whose calls are answered (and checked) by a Stubber."""
    client = boto3.client("sagemaker-featurestore-runtime", region_name="eu-west-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def frame(churn_schema) -> pd.DataFrame:
    """Five customers typed by the schema as IngestFeatures reads them; the first has no total_charges."""
    raw = synthetic.generate(5, seed=3, start="2026-01-01T00:00:00Z").astype({"total_charges": object})
    raw.loc[0, "total_charges"] = None
    return rules.coerce(raw, churn_schema)


def test_put_records_use_the_feature_groups_own_definitions(churn_schema):
    from infra.feature_store import feature_definitions

    group = [
        {"FeatureName": d["feature_name"], "FeatureType": d["feature_type"]}
        for d in feature_definitions(churn_schema)
    ]
    assert ingest.feature_definitions(churn_schema) == group


def test_a_record_holds_each_value_as_feature_store_reads_it_and_leaves_nulls_out(frame, churn_schema):
    first, second = ingest.to_records(frame, churn_schema)[:2]
    values = {f["FeatureName"]: f["ValueAsString"] for f in first}
    assert "total_charges" not in values
    assert values["event_time"] == frame["event_time"][0].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert values["tenure_months"] == str(frame["tenure_months"][0])
    assert values["churned"] in ("0", "1")
    assert (
        float({f["FeatureName"]: f["ValueAsString"] for f in second}["total_charges"])
        == frame["total_charges"][1]
    )
    assert [f["FeatureName"] for f in second] == churn_schema.columns


def test_a_schema_without_event_time_gets_the_ingestion_time(tmp_path, churn_schema):
    raw = churn_schema.to_dict()
    schema = schema_mod.parse({k: v for k, v in raw.items() if k != "event_time"})
    path = tmp_path / "accepted.csv"
    synthetic.generate(2, seed=1).drop(columns="event_time").to_csv(path, index=False)
    frame = ingest.read_accepted([path], schema, pd.Timestamp("2026-03-01T10:00:00.25Z"))
    (record, _) = ingest.to_records(frame, schema)
    assert {"FeatureName": "event_time", "ValueAsString": "2026-03-01T10:00:00.250Z"} in record


def test_every_accepted_row_is_put_with_a_request_the_api_accepts(featurestore, frame, churn_schema):
    client, stubber = featurestore
    for record in ingest.to_records(frame, churn_schema):
        stubber.add_response("put_record", {}, {"FeatureGroupName": GROUP, "Record": record})
    report, failed = ingest.ingest(frame, churn_schema, GROUP, client, workers=1)
    assert (report["records"], report["records_put"], report["records_failed"]) == (5, 5, 0)
    assert failed.empty


def test_throttled_puts_are_retried_until_they_succeed(featurestore, frame, churn_schema):
    client, stubber = featurestore
    stubber.add_client_error("put_record", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_client_error("put_record", "ServiceUnavailable", "try later", 503)
    for _ in range(5):
        stubber.add_response("put_record", {})
    waits = []
    report, _ = ingest.ingest(frame, churn_schema, GROUP, client, workers=1, sleep=waits.append)
    assert (report["records_put"], report["retries"]) == (5, 2)
    assert waits == [0.2, 0.4]


def test_a_refused_record_is_counted_by_error_and_kept_with_its_reason(featurestore, frame, churn_schema):
    client, stubber = featurestore
    stubber.add_response("put_record", {})
    stubber.add_client_error("put_record", "ValidationError", "EventTime is out of range", 400)
    for _ in range(3):
        stubber.add_response("put_record", {})
    report, failed = ingest.ingest(frame, churn_schema, GROUP, client, workers=1)
    assert (report["records_put"], report["records_failed"]) == (4, 1)
    assert report["failure_reasons"] == {"ValidationError": 1}
    assert failed["customer_id"].tolist() == [frame["customer_id"][1]]
    assert failed["reason"].tolist() == ["ValidationError: EventTime is out of range"]


def test_retrying_stops_after_the_last_attempt(featurestore, frame, churn_schema):
    client, stubber = featurestore
    for _ in range(ingest.DEFAULT_ATTEMPTS):
        stubber.add_client_error("put_record", "ThrottlingException", "Rate exceeded", 400)
    report, failed = ingest.ingest(
        frame.iloc[:1], churn_schema, GROUP, client, workers=1, sleep=lambda _: None
    )
    assert report["failure_reasons"] == {"ThrottlingException": 1}
    assert len(failed) == 1


# --- the IngestFeatures step ---------------------------------------------------------------------


@pytest.fixture
def validated(tmp_path, churn_schema) -> Path:
    """ValidateData's outputs from two hosts, laid out as IngestFeatures' inputs."""
    root = tmp_path / "input"
    (root / "schema").mkdir(parents=True)
    shutil.copy(schema_mod.EXAMPLE_SCHEMA, root / "schema")
    data = synthetic.generate(6, seed=2)
    for host, rows, quarantined in (("algo-1", data.iloc[:4], 1), ("algo-2", data.iloc[4:], 0)):
        (root / "accepted").mkdir(parents=True, exist_ok=True)
        rows.to_csv(root / "accepted" / f"accepted-{host}.csv", index=False)
        (root / "validation").mkdir(parents=True, exist_ok=True)
        report = {
            "rows_in": len(rows) + quarantined,
            "rows_accepted": len(rows),
            "rows_quarantined": quarantined,
        }
        (root / "validation" / f"validation-{host}.json").write_text(json.dumps(report))
    return root


def put_args(root: Path, report: Path) -> list[str]:
    return [
        "--schema", str(root / "schema"), "--accepted", str(root / "accepted"),
        "--validation", str(root / "validation"), "--report-dir", str(report), "--workers", "1",
    ]  # fmt: skip


def published(name: str) -> float | None:
    now = dt.datetime.now(dt.UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=metrics.NAMESPACE,
        MetricName=name,
        Dimensions=[{"Name": "Model", "Value": "customer-churn"}],
        StartTime=now - dt.timedelta(hours=1),
        EndTime=now + dt.timedelta(hours=1),
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    return points[0]["Sum"] if points else None


@pytest.fixture
def cloudwatch(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("cloudwatch")


def test_the_step_reports_rows_in_put_and_quarantined_and_publishes_them(
    validated, tmp_path, featurestore, cloudwatch
):
    client, stubber = featurestore
    for _ in range(6):
        stubber.add_response("put_record", {})
    assert ingest.put_main(put_args(validated, tmp_path / "out"), client, cloudwatch) == 0
    report = json.loads((tmp_path / "out" / "ingest.json").read_text())
    assert {k: report[k] for k in ("rows_in", "rows_accepted", "rows_quarantined", "records_put")} == {
        "rows_in": 7,
        "rows_accepted": 6,
        "rows_quarantined": 1,
        "records_put": 6,
    }
    assert (published("IngestedRecordCount"), published("QuarantinedRecordCount")) == (6, 1)


def test_the_step_fails_when_a_record_is_not_put_after_keeping_it_in_s3(
    validated, tmp_path, featurestore, cloudwatch, monkeypatch
):
    client, stubber = featurestore
    stubber.add_client_error("put_record", "AccessForbidden", "not allowed", 403)
    for _ in range(5):
        stubber.add_response("put_record", {})
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    uri = "s3://artifacts/quarantine/customer-churn/run-1/IngestFeatures/failed.csv"
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    argv = [*put_args(validated, tmp_path / "out"), "--failed-uri", uri]
    assert ingest.put_main(argv, client, cloudwatch, s3) == 1
    assert (
        f"1 of 6 records were not put ({{'AccessForbidden': 1}}); they are in {uri}"
        in (tmp_path / "opt_ml" / "output" / "message").read_text()
    )
    kept = s3.get_object(Bucket="artifacts", Key=uri.split("/", 3)[3])["Body"]
    assert pd.read_csv(kept)["reason"].tolist() == ["AccessForbidden: not allowed"]
    assert published("IngestFailedRecordCount") == 1


def test_the_step_fails_when_accepted_rows_went_missing(
    validated, tmp_path, featurestore, cloudwatch, monkeypatch
):
    (validated / "accepted" / "accepted-algo-2.csv").unlink()
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    assert ingest.put_main(put_args(validated, tmp_path / "out"), featurestore[0], cloudwatch) == 1
    message = (tmp_path / "opt_ml" / "output" / "message").read_text()
    assert "4 accepted rows found, but validation accepted 6" in message


# --- the ValidateData shards -------------------------------------------------------------------


def test_each_validation_shard_writes_its_own_files(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    synthetic.generate(200, seed=4).to_csv(tmp_path / "data" / "part.csv", index=False)
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_HOSTS", "algo-1,algo-2")
    out = tmp_path / "out"
    argv = ["validate", "--input", str(tmp_path / "data"), "--accepted-dir", str(out / "accepted")]
    argv += ["--quarantine-dir", str(out / "quarantine"), "--report-dir", str(out / "report")]
    assert ingest.main(argv) == 0
    (accepted,) = (out / "accepted").glob("*algo-2*.csv")
    assert len(pd.read_csv(accepted)) == 200


def test_a_validation_shard_dealt_no_file_reports_no_rows(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-3")
    monkeypatch.setenv("SM_HOSTS", "algo-1,algo-2,algo-3")
    out = tmp_path / "out"
    argv = ["validate", "--input", str(tmp_path / "data"), "--report-dir", str(out / "report")]
    assert ingest.main(argv) == 0
    report = json.loads((out / "report" / "validation-algo-3.json").read_text())
    assert (report["rows_in"], report["rows_accepted"], report["passed"]) == (0, 0, True)
