"""The model registry as SageMaker keeps it: approving a package keeps its metadata, on the clock."""

from __future__ import annotations

from tests.localcloud.behaviours.support import START
from tests.localcloud.conftest import APPROVED


def test_approving_a_package_keeps_its_metadata_and_description_and_adds_what_is_given(emulator, client):
    sm = client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="churn")
    pending = {**APPROVED, "ModelApprovalStatus": "PendingManualApproval"}
    arn = sm.create_model_package(
        ModelPackageGroupName="churn",
        CustomerMetadataProperties={"DataEnd": "2026-01-01T00:00:00Z", "Auc": "0.83"},
        **pending,
    )["ModelPackageArn"]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok")
    sm.update_model_package(
        ModelPackageArn=arn,
        CustomerMetadataProperties={"Reviewer": "ana"},
        CustomerMetadataPropertiesToRemove=["Auc"],
    )
    found = sm.describe_model_package(ModelPackageName=arn)
    assert found["CustomerMetadataProperties"] == {"DataEnd": "2026-01-01T00:00:00Z", "Reviewer": "ana"}
    assert (found["ModelApprovalStatus"], found["ApprovalDescription"]) == ("Approved", "ok")


def test_a_package_is_created_at_the_virtual_clocks_time(emulator, client):
    sm = client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="churn")
    arn = sm.create_model_package(ModelPackageGroupName="churn", **APPROVED)["ModelPackageArn"]
    emulator.advance(120)
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    found = sm.describe_model_package(ModelPackageName=arn)
    assert found["CreationTime"] == START
    assert (found["LastModifiedTime"] - START).total_seconds() == 120
