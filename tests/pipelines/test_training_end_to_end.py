"""The training pipeline's definition, run end to end by the local executor against moto.

Runs of the very JSON production runs: clean data registers a model package with its
metrics and drift baseline; a quality bar no model can reach fails at CheckQuality with
nothing registered; data over the quarantine threshold fails at ValidateData; after concept
drift, the approved champion is scored on the challenger's test rows, not by its stored AUC.
"""

from __future__ import annotations

import io
import json

import boto3
import pytest

from model_code.contract import schema as schema_mod
from model_code.contract import synthetic
from pipelines import training
from pipelines.local import LocalExecutor

BUCKET = "e2e-artifacts"
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/e2e-pipelines"
# Model selection's quick search on three folds: each run trains in seconds.
FAST = {"search": "quick", "cv-folds": 3}


@pytest.fixture
def platform(aws, tmp_path, monkeypatch):
    """An emulated account with the bucket, the schema object and the model package group."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))  # MLflow runs land here
    schema = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    contract = training.schema_object(schema)
    s3.put_object(Bucket=BUCKET, Key=contract.key, Body=contract.body)
    boto3.client("sagemaker", region_name=REGION).create_model_package_group(
        ModelPackageGroupName=schema.name
    )
    definition = training.get_pipeline(
        region=REGION, role_arn=ROLE, bucket=BUCKET, schema=schema, hyperparameters=FAST
    ).definition()
    executor = LocalExecutor(definition, pipeline_name=f"{schema.name}-training", work_dir=tmp_path / "runs")
    return schema, s3, executor


def upload(s3, frame, key="raw/customer-churn/batch-1.csv"):
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue().encode())


def packages(schema):
    listed = boto3.client("sagemaker", region_name=REGION).list_model_packages(
        ModelPackageGroupName=schema.name
    )
    return listed["ModelPackageSummaryList"]


def read_s3_json(s3, uri):
    bucket, key = uri[len("s3://") :].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_clean_data_registers_a_model_with_its_metrics_and_baseline(platform):
    schema, s3, executor = platform
    upload(s3, synthetic.generate(3000, seed=11))

    # Two validation instances for one file: the one dealt no file reports zero rows and
    # passes (issue 7), as ingestion's shards do.
    execution = executor.start(
        {"TriggerReason": "manual", "TrainingStrategy": "combined", "ProcessingInstanceCount": 2}
    )

    assert execution.status == "Succeeded", execution.failure_reason
    assert [s.name for s in execution.steps] == [
        "ValidateData",
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
    schema, s3, executor = platform
    upload(s3, synthetic.generate(3000, seed=11))

    execution = executor.start({"MinAuc": 0.999, "TrainingStrategy": "combined"})

    assert execution.status == "Failed"
    assert execution.steps[-1].name == "FailPipeline"
    assert "auc" in execution.failure_reason and "0.999" in execution.failure_reason
    assert "RegisterModel" not in [s.name for s in execution.steps]
    assert packages(schema) == []


def test_data_over_the_quarantine_threshold_fails_at_validate_data(platform):
    schema, s3, executor = platform
    upload(s3, synthetic.generate(1000, seed=11, dirty=0.2))

    execution = executor.start({"TrainingStrategy": "combined"})

    assert execution.status == "Failed"
    assert [s.name for s in execution.steps] == ["ValidateData"]
    assert "quarantined 20.0% of rows" in execution.failure_reason
    assert packages(schema) == []


def test_after_concept_drift_the_champion_is_judged_on_the_challengers_rows(platform):
    schema, s3, executor = platform
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    upload(s3, synthetic.generate(3000, seed=11))
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

    # The world changes: same customers, a different relation between inputs and churn.
    upload(s3, synthetic.generate(3000, seed=12, concept_drift=1.0))
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
