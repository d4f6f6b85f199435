"""The model registry as SageMaker keeps it, where moto differs.

* Events: "SageMaker Model Package State Change" when a package is created and when its approval
  status changes; rules on it (promotion, notifications) see the package as
  ``DescribeModelPackage`` shows it.
* ``UpdateModelPackage`` adds ``CustomerMetadataProperties`` to the package's and keeps its
  ``ModelApprovalStatus`` and ``ApprovalDescription`` unless given (moto replaced all three, so approving a package lost the
  training window's ``DataEnd`` that new-data counting reads).
* ``CreationTime`` and ``LastModifiedTime`` are the virtual clock's, as every other time is.
* Duplicates: AWS delivers events at least once, and SageMaker may send several for one state
  change, so now and then (:data:`DUPLICATE_RATE` of them, drawn from a generator seeded at
  install, so a run is repeatable) an event is sent twice, with a new event id. Whatever an
  approval starts must be idempotent (``mlops promote`` is).

Not emulated: events for metadata-only updates (no approval change), cross-account registries.
"""

from __future__ import annotations

import random
from typing import Any

from moto.sagemaker import models as sm_models

from localcloud.behaviours import events
from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher

STATE_CHANGE = "SageMaker Model Package State Change"
DUPLICATE_RATE = 0.25
DUPLICATE_SEED = 23
_duplicates = random.Random(DUPLICATE_SEED)


def seed_duplicates(seed: int = DUPLICATE_SEED, rate: float = DUPLICATE_RATE) -> None:
    """Restart the duplicate draws (``rate`` 1.0: every event twice; 0.0: never)."""
    global _duplicates, DUPLICATE_RATE
    _duplicates, DUPLICATE_RATE = random.Random(seed), rate


def _package(backend: Any, arn: str) -> Any:
    return backend.model_packages.get(backend.model_package_name_mapping.get(arn, arn))


def _emit(backend: Any, arn: str) -> None:
    package = _package(backend, arn)
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
    copies = 2 if _duplicates.random() < DUPLICATE_RATE else 1
    for _ in range(copies):
        events.emit(
            backend.account_id,
            backend.region_name,
            source="aws.sagemaker",
            detail_type=STATE_CHANGE,
            detail=detail,
            resources=[package.arn],
        )


def install(clock: Clock, patcher: Patcher) -> None:
    seed_duplicates()
    backend = sm_models.SageMakerModelBackend

    def create(original: Any) -> Any:
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> str:
            arn = original(self, *args, **kwargs)
            _package(self, arn).creation_time = clock.naive_now()
            _emit(self, arn)
            return arn

        return wrapped

    def update(original: Any) -> Any:
        def wrapped(
            self: Any, model_package_arn: str, model_approval_status: str | None, *args: Any, **kwargs: Any
        ) -> str:
            package = _package(self, model_package_arn)
            before = getattr(package, "model_approval_status", None)
            kept_description = getattr(package, "approval_description", None)
            kept_metadata = dict(getattr(package, "customer_metadata_properties", None) or {})
            arn = original(self, model_package_arn, model_approval_status or before, *args, **kwargs)
            package = _package(self, arn)
            # moto's responses pass every field by name.
            given = kwargs.get("customer_metadata_properties") or {}
            removed = kwargs.get("customer_metadata_properties_to_remove") or []
            merged = {**kept_metadata, **given}
            package.customer_metadata_properties = {
                k: v for k, v in merged.items() if k not in removed
            } or None
            if package.approval_description is None:
                package.approval_description = kept_description
            package.last_modified_time = clock.naive_now()
            if package.model_approval_status != before:
                _emit(self, arn)
            return arn

        return wrapped

    patcher.wrap(backend, "create_model_package", create)
    patcher.wrap(backend, "update_model_package", update)
