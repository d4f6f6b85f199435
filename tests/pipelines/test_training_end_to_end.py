"""The training pipeline's definition, run end to end by the local executor against the emulator.

Runs of the very JSON production runs, reading the feature group's offline store as the local
cloud's feature store runtime writes it (SageMaker's layout, 15 minutes behind PutRecord): clean
records register a model package with its metrics and drift baseline; the training set is the
point-in-time one (latest version per record, deleted records left out); a run started right
after an ingestion waits for the records it reported, within OfflineStoreWaitSeconds, or fails
naming it; a quality bar no model can reach fails at CheckQuality with nothing registered; after
concept drift, the approved champion is scored on the challenger's test rows, not by its stored AUC.
"""

from __future__ import annotations

import io
import json
import uuid

import boto3
import pandas as pd
import pytest

from localcloud.behaviours import Clock, install
from localcloud.behaviours.featurestore import OFFLINE_DELAY_SECONDS
from model_code.contract import schema as schema_mod
from model_code.contract import synthetic
from model_code.ingestion.ingest import feature_definitions, ingest
from pipelines import training
from pipelines.local import LocalExecutor
from tests.localcloud.behaviours.support import START

BUCKET = "e2e-artifacts"
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/e2e-pipelines"
GROUP = "customer-churn-features"
# Model selection's quick search on three folds: each run trains in seconds.
FAST = {"search": "quick", "cv-folds": 3}


@pytest.fixture
def platform(aws, tmp_path, monkeypatch):
    """An emulated account with the feature store runtime on a virtual clock, the bucket, the
    schema object, the feature group (offline store in the bucket) and the model package group."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))  # MLflow runs land here
    behaviours = install(Clock(START), endpoint_url=aws)
    schema = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    contract = training.schema_object(schema)
    s3.put_object(Bucket=BUCKET, Key=contract.key, Body=contract.body)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=schema.name)
    sagemaker.create_feature_group(
        FeatureGroupName=GROUP,
        RecordIdentifierFeatureName=schema.entity_id,
        EventTimeFeatureName=schema.event_time,
        FeatureDefinitions=feature_definitions(schema),
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": f"s3://{BUCKET}/feature-store"}},
        RoleArn=ROLE,
    )
    definition = training.get_pipeline(
        region=REGION,
        role_arn=ROLE,
        bucket=BUCKET,
        schema=schema,
        hyperparameters=FAST,
        feature_group_name=GROUP,
    ).definition()
    # The waiting step moves the emulator's clock, as the local cloud's pipelines do.
    executor = LocalExecutor(
        definition,
        pipeline_name=f"{schema.name}-training",
        work_dir=tmp_path / "runs",
        env={"MLOPS_VIRTUAL_CLOCK": f"{aws}/_mlops/clock"},
    )
    try:
        yield schema, s3, executor, behaviours
    finally:
        behaviours.uninstall()


def upload(platform, frame, *, settle=True):
    """``frame`` ingested as the ingestion pipeline does: PutRecord each row, then its report
    (``IngestFeatures/report/ingest.json``) where the training pipeline looks for it; with
    ``settle``, the clock then moves past the offline store's lag."""
    schema, s3, _, behaviours = platform
    runtime = boto3.client("sagemaker-featurestore-runtime", region_name=REGION)
    report, failed = ingest(frame, schema, GROUP, runtime, workers=1)
    assert failed.empty, failed
    key = f"pipelines/{schema.name}-ingestion/{uuid.uuid4().hex}/IngestFeatures/report/ingest.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(report).encode())
    if settle:
        behaviours.advance(OFFLINE_DELAY_SECONDS + 60)
    return report


def packages(schema):
    listed = boto3.client("sagemaker", region_name=REGION).list_model_packages(
        ModelPackageGroupName=schema.name
    )
    return listed["ModelPackageSummaryList"]


def read_s3_json(s3, uri):
    bucket, key = uri[len("s3://") :].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def step_output(s3, execution, step, output, file):
    (record,) = [r for r in execution.steps if r.name == step]
    bucket, prefix = record.outputs[output][len("s3://") :].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{file}")["Body"].read()


def test_clean_data_registers_a_model_with_its_metrics_and_baseline(platform):
    schema, s3, executor, _ = platform
    upload(platform, synthetic.generate(3000, seed=11))

    execution = executor.start({"TriggerReason": "manual", "TrainingStrategy": "combined"})

    assert execution.status == "Succeeded", execution.failure_reason
    assert [s.name for s in execution.steps] == [
        "EngineerFeatures",
        "TrainModel",
        "EvaluateModel",
        "CheckQuality",
        "RegisterModel",
    ]
    [summary] = packages(schema)
    package = boto3.client("sagemaker", region_name=REGION).describe_model_package(
        ModelPackageName=summary["ModelPackageArn"]
    )
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["CustomerMetadataProperties"]["TriggerReason"] == "manual"
    quality_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, key = quality_uri[len("s3://") :].split("/", 1)
    evaluation = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert evaluation["binary_classification_metrics"]["auc"]["value"] > 0.7
    baseline_uri = package["ModelMetrics"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    bucket, key = baseline_uri[len("s3://") :].split("/", 1)
    baseline = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert set(baseline["bins"]) == {*schema.feature_names, "prediction"}


def test_a_quality_bar_no_model_reaches_fails_at_check_quality_and_registers_nothing(platform):
    schema, _, executor, _ = platform
    upload(platform, synthetic.generate(3000, seed=11))

    execution = executor.start({"MinAuc": 0.999, "TrainingStrategy": "combined"})

    assert execution.status == "Failed"
    assert execution.steps[-1].name == "FailPipeline"
    assert "auc" in execution.failure_reason and "0.999" in execution.failure_reason
    assert "RegisterModel" not in [s.name for s in execution.steps]
    assert packages(schema) == []


def test_after_concept_drift_the_champion_is_judged_on_the_challengers_rows(platform):
    schema, s3, executor, _ = platform
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    upload(platform, synthetic.generate(3000, seed=11))
    first = executor.start({"TrainingStrategy": "combined"})
    assert first.status == "Succeeded", first.failure_reason
    [champion] = packages(schema)
    # Read before approving: moto's UpdateModelPackage drops the customer metadata.
    stored_auc = float(
        sagemaker.describe_model_package(ModelPackageName=champion["ModelPackageArn"])[
            "CustomerMetadataProperties"
        ]["Auc"]
    )
    sagemaker.update_model_package(
        ModelPackageArn=champion["ModelPackageArn"], ModelApprovalStatus="Approved"
    )

    # The world changes: same customers, a day later, a different relation between inputs and
    # churn; point in time, each customer's newer version is the one trained on.
    upload(platform, synthetic.generate(3000, seed=12, concept_drift=1.0, start="2026-01-02T00:00:00Z"))
    second = executor.start({"TrainingStrategy": "combined"})

    assert second.status == "Succeeded", second.failure_reason
    newest = max(packages(schema), key=lambda p: p["ModelPackageVersion"])
    package = sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])
    figures = {
        k: package["CustomerMetadataProperties"][k] for k in ("Auc", "ChampionAuc", "ChampionStoredAuc")
    }
    challenger, on_same_rows = float(figures["Auc"]), float(figures["ChampionAuc"])
    # The stored figure would have refused the challenger; on the same rows it is far better.
    assert challenger < stored_auc - 0.01
    assert float(figures["ChampionStoredAuc"]) == stored_auc
    assert on_same_rows < challenger - 0.05
    evaluation = read_s3_json(s3, package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])
    assert evaluation["champion"]["scored_on"] == "the challenger's test rows"
    assert evaluation["champion"]["auc"] == pytest.approx(on_same_rows, abs=1e-4)
    assert evaluation["champion"]["stored_auc"] == pytest.approx(stored_auc, abs=1e-4)
    assert evaluation["champion"]["source"].startswith(champion["ModelPackageArn"])


def test_the_training_set_is_point_in_time_latest_versions_and_no_deleted_record(platform):
    schema, s3, executor, behaviours = platform
    ids, target = schema.entity_id, schema.target.column
    first = synthetic.generate(400, seed=11)
    upload(platform, first)
    # A later version of 20 customers (another bill), and 10 customers deleted after their put.
    later = first.head(20).assign(
        monthly_charges=123.45, event_time="2026-01-01T23:59:59Z", churned=1 - first.head(20)[target]
    )
    upload(platform, later)
    gone = list(first[ids].iloc[100:110])
    runtime = boto3.client("sagemaker-featurestore-runtime", region_name=REGION)
    for identifier in gone:
        runtime.delete_record(
            FeatureGroupName=GROUP, RecordIdentifierValueAsString=identifier, EventTime="2026-01-01T23:59:59Z"
        )
    behaviours.advance(OFFLINE_DELAY_SECONDS + 60)

    execution = executor.start({"TrainingStrategy": "combined", "MinAuc": 0.0})

    assert execution.status == "Succeeded", execution.failure_reason
    rows = pd.concat(
        pd.read_csv(io.BytesIO(step_output(s3, execution, "EngineerFeatures", name, f"{name}.csv")))
        for name in ("train", "test")
    )
    assert len(rows) == rows[ids].nunique() == 400 - len(gone)
    assert not set(gone) & set(rows[ids])
    newer = rows.set_index(ids).loc[list(later[ids])]
    assert (newer["monthly_charges"] == 123.45).all()
    assert list(newer[target]) == list(later[target])
    window = json.loads(step_output(s3, execution, "EngineerFeatures", "window", "data_window.json"))
    # 400 puts + 20 newer versions + 10 deletions, every one a row of the offline store.
    assert (window["source"], window["offline_rows"], window["rows"]) == ("offline-store", 430, 390)
    assert window["records_reported"] == 420 and window["records_waited_for"] == 0


def test_a_run_right_after_an_ingestion_waits_for_its_records(platform):
    _, s3, executor, behaviours = platform
    upload(platform, synthetic.generate(500, seed=11), settle=False)
    before = behaviours.clock.now()

    execution = executor.start({"TrainingStrategy": "combined", "MinAuc": 0.0})

    assert execution.status == "Succeeded", execution.failure_reason
    window = json.loads(step_output(s3, execution, "EngineerFeatures", "window", "data_window.json"))
    assert (window["records_reported"], window["records_waited_for"], window["rows"]) == (500, 500, 500)
    # The emulator's offline store writes 15 minutes after PutRecord: the wait moved its clock.
    assert window["seconds_waited"] >= OFFLINE_DELAY_SECONDS
    assert (behaviours.clock.now() - before).total_seconds() == window["seconds_waited"]


def test_a_wait_past_its_bound_fails_naming_the_parameter_and_the_counts(platform):
    schema, _, executor, _ = platform
    upload(platform, synthetic.generate(300, seed=11), settle=False)

    execution = executor.start({"TrainingStrategy": "combined", "OfflineStoreWaitSeconds": 300})

    assert execution.status == "Failed"
    assert [s.name for s in execution.steps] == ["EngineerFeatures"]
    reason = execution.failure_reason
    assert "OfflineStoreWaitSeconds: waited 300 s" in reason
    assert "the 300 records ingestion reported; 0 visible, 300 still missing" in reason
    assert packages(schema) == []
