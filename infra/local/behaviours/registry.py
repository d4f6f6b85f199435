"""Model registry events: "SageMaker Model Package State Change" on registration and on approval changes.

SageMaker emits the event when a model package is created and when its approval status changes;
rules on it (promotion, notifications) see the package as ``DescribeModelPackage`` shows it.

Not emulated: events for metadata-only updates (no approval change), cross-account registries.
"""

from __future__ import annotations

from typing import Any

from moto.sagemaker import models as sm_models

from infra.local.behaviours import events
from infra.local.behaviours.patching import Patcher

STATE_CHANGE = "SageMaker Model Package State Change"


def _emit(backend: Any, arn: str) -> None:
    package = backend.model_packages[backend.model_package_name_mapping.get(arn, arn)]
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    detail = {
        "ModelPackageName": package.model_package_name,
        "ModelPackageArn": package.arn,
        "ModelPackageStatus": package.model_package_status,
        "ModelApprovalStatus": package.model_approval_status,
        "CreationTime": package.creation_time.strftime(stamp)
        if hasattr(package.creation_time, "strftime")
        else str(package.creation_time),
    }
    if package.model_package_group_name:
        detail |= {
            "ModelPackageGroupName": package.model_package_group_name,
            "ModelPackageVersion": package.model_package_version,
        }
    if package.model_package_description:
        detail["ModelPackageDescription"] = package.model_package_description
    if package.approval_description:
        detail["ApprovalDescription"] = package.approval_description
    events.emit(
        backend.account_id,
        backend.region_name,
        source="aws.sagemaker",
        detail_type=STATE_CHANGE,
        detail=detail,
        resources=[package.arn],
    )


def install(patcher: Patcher) -> None:
    backend = sm_models.SageMakerModelBackend

    def create(original: Any) -> Any:
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> str:
            arn = original(self, *args, **kwargs)
            _emit(self, arn)
            return arn

        return wrapped

    def update(original: Any) -> Any:
        def wrapped(
            self: Any, model_package_arn: str, model_approval_status: str | None, *args: Any, **kwargs: Any
        ) -> str:
            key = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
            before = getattr(self.model_packages.get(key), "model_approval_status", None)
            arn = original(self, model_package_arn, model_approval_status, *args, **kwargs)
            if (
                self.model_packages[self.model_package_name_mapping.get(arn, arn)].model_approval_status
                != before
            ):
                _emit(self, arn)
            return arn

        return wrapped

    patcher.wrap(backend, "create_model_package", create)
    patcher.wrap(backend, "update_model_package", update)
