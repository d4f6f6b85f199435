"""Reading the champion from the model registry, as EngineerFeatures and EvaluateModel do."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from model_code import register_info

GROUP = "customer-churn"
BUCKET = "artifacts"


@pytest.fixture
def registry(monkeypatch):
    """An emulated SageMaker + S3 in this process, with an empty model package group."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sagemaker = boto3.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        boto3.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield sagemaker


def register(client, status: str, data_end: str | None = None, auc: float | None = None) -> str:
    """A model package in GROUP, as the training pipeline registers one."""
    extra = {}
    if data_end:
        extra["CustomerMetadataProperties"] = {"DataEnd": data_end}
    if auc is not None:
        key = f"evaluations/{auc}.json"
        boto3.client("s3").put_object(
            Bucket=BUCKET,
            Key=key,
            Body=json.dumps({"binary_classification_metrics": {"auc": {"value": auc}}}).encode(),
        )
        extra["ModelMetrics"] = {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{key}"}
            }
        }
    return client.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "000000000000.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        **extra,
    )["ModelPackageArn"]


def test_the_champion_is_the_highest_approved_version(registry):
    register(registry, "Approved", data_end="2026-01-01T00:00:00Z")
    newest_approved = register(registry, "Approved", data_end="2026-02-01T00:00:00Z")
    register(registry, "PendingManualApproval", data_end="2026-03-01T00:00:00Z")
    champion = register_info.latest_approved(GROUP)
    assert champion["ModelPackageArn"] == newest_approved
    assert register_info.data_end(champion) == "2026-02-01T00:00:00Z"


def test_a_group_with_nothing_approved_has_no_champion(registry):
    register(registry, "PendingManualApproval")
    assert register_info.latest_approved(GROUP) is None


def test_a_group_that_does_not_exist_yet_has_no_champion(registry):
    assert register_info.latest_approved("not-created-yet") is None


def test_the_champions_evaluation_is_read_from_its_model_metrics(registry):
    register(registry, "Approved", auc=0.83)
    champion = register_info.latest_approved(GROUP)
    report = register_info.read_json(register_info.evaluation_uri(champion))
    assert report["binary_classification_metrics"]["auc"]["value"] == 0.83


def test_a_missing_report_fails_naming_it(registry):
    with pytest.raises(register_info.RegistryError, match=f"s3://{BUCKET}/nothing.json: could not read"):
        register_info.read_json(f"s3://{BUCKET}/nothing.json")


def test_a_package_without_data_end_or_metrics_says_so_with_none():
    assert register_info.data_end({"CustomerMetadataProperties": {}}) is None
    assert register_info.evaluation_uri({"ModelMetrics": {}}) is None
