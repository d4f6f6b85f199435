"""What a model endpoint serves and how it rolls out: ``ModelEndpointArgs``, checked on creation.

The checks are AWS's own limits (instance counts, traffic-routing ranges, serverless
restrictions), so a bad argument fails before any resource with the field's name and the
allowed values. :mod:`infra.endpoint` builds the resources from these arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from infra.rollout import (
    EXECUTION_TIMEOUT_RANGE,
    LINEAR_STEP_RANGE,
    MAX_CANARY_PERCENT,
    MAX_WAIT_SECONDS,
    SERVERLESS_STRATEGIES,
    STRATEGIES,
    rollout_wait_seconds,
)

SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)  # ProductionVariantServerlessConfig


@dataclass(frozen=True)
class ModelEndpointArgs:
    """What the endpoint serves and how it rolls out.

    Fields that choose which resources exist (strategy, serverless, sizes) are plain values,
    validated here; the rest are ``pulumi.Input`` so other components' outputs fit.
    """

    endpoint_name: str
    """From :func:`endpoint_name`; alarm names and the autoscaling target are derived from it."""
    model_package_arn: pulumi.Input[str]
    """The approved model package version the champion serves."""
    bucket_name: pulumi.Input[str]
    """The artifact bucket: model artifacts are read from it, data capture written to it."""
    kms_key_arn: pulumi.Input[str]
    """The stack's key: instance volumes, data capture and (if created) the role's S3 access."""
    strategy: str = "all-at-once"
    """One of :data:`STRATEGIES`."""
    execution_role_arn: pulumi.Input[str] | None = None
    """The role the model containers run as; None creates a scoped one (needs ``repository_arn``)."""
    repository_arn: pulumi.Input[str] | None = None
    """The project image's ECR repository, for the created role's pull permission."""
    model_artifacts_prefix: str = "pipelines/"
    """Where in the bucket training pipelines write model artifacts (read by the created role)."""
    shadow_model_package_arn: pulumi.Input[str] | None = None
    """The challenger served as the shadow variant; required by, and only used with, ``shadow``."""
    instance_type: str = "ml.m5.large"
    initial_instance_count: int = 1
    min_capacity: int = 1
    max_capacity: int = 1
    """Autoscaling bounds; autoscaling is set up only when ``max_capacity > min_capacity``."""
    target_invocations_per_instance: float = 70
    """Target tracking: invocations per instance per minute the scaling policy aims for."""
    serverless: bool = False
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = 5
    canary_size_percent: int = 10
    """Share of the new fleet's capacity that takes traffic first (AWS: at most 50)."""
    linear_step_percent: int = 20
    """Share of capacity shifted per step (AWS: 10 to 50)."""
    wait_interval_seconds: int = 600
    """Bake time after each traffic shift, watched by the rollback alarms (AWS: 0 to 3600)."""
    max_execution_timeout_seconds: int = 3600
    """A rollout taking longer is rolled back (AWS: 600 to 28800)."""
    termination_wait_seconds: int = 0
    """How long the old fleet is kept after the last shift (AWS: 0 to 3600)."""
    shadow_sampling_percent: int = 50
    """Share of requests mirrored to the challenger."""
    log_retention_days: int = 30
    """Retention of the containers' log group, ``/aws/sagemaker/Endpoints/<endpoint>``."""
    data_capture_percent: int = 100
    """Share of requests captured (inputs and outputs) for the monitoring pipeline."""
    rollback_alarm_names: pulumi.Input[Sequence[str]] = ()
    """Alarms that roll a deployment back; pass ``Monitoring.rollback_alarm_names`` (an Output)."""
    tags: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    online_feature_group_name: pulumi.Input[str] | None = None
    """With online lookup (``onlineFeatureLookup``): the feature group whose online store fills
    the features a request leaves out (the containers' ``MLOPS_ONLINE_FEATURE_GROUP``)."""
    online_feature_group_arn: pulumi.Input[str] | None = None
    """Its ARN: the created role may read records of that group only."""

    @property
    def online_lookup(self) -> bool:
        return self.online_feature_group_name is not None

    def __post_init__(self) -> None:
        if (self.online_feature_group_name is None) != (self.online_feature_group_arn is None):
            raise ValueError(
                "online_feature_group_arn: online lookup needs both the feature group's name and its ARN"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.serverless and self.strategy not in SERVERLESS_STRATEGIES:
            raise ValueError(
                f"serverless: a serverless endpoint cannot use strategy {self.strategy!r} (AWS supports neither "
                "several variants, shadow variants nor data capture on serverless); use strategy 'all-at-once' "
                "or serverless=False"
            )
        if self.serverless and self.shadow_model_package_arn is not None:
            raise ValueError(
                "serverless: a serverless endpoint cannot serve a shadow model (shadow_model_package_arn)"
            )
        if self.execution_role_arn is None and self.repository_arn is None:
            raise ValueError(
                "repository_arn: needed to create the execution role (or pass execution_role_arn)"
            )
        if self.serverless:
            self._check_serverless()
        else:
            self._check_instances()
        self._check_rollout()
        _check_range("shadow_sampling_percent", self.shadow_sampling_percent, 1, 100)
        _check_range("data_capture_percent", self.data_capture_percent, 1, 100)

    def _check_serverless(self) -> None:
        if self.serverless_memory_mb not in SERVERLESS_MEMORY_MB:
            raise ValueError(
                f"serverless_memory_mb: {self.serverless_memory_mb} is not one of "
                f"{', '.join(map(str, SERVERLESS_MEMORY_MB))}"
            )
        _check_range("serverless_max_concurrency", self.serverless_max_concurrency, 1, 200)

    def _check_instances(self) -> None:
        _check_range("min_capacity", self.min_capacity, 1, None)
        if self.min_capacity > self.max_capacity:
            raise ValueError(
                f"min_capacity: {self.min_capacity} is above max_capacity ({self.max_capacity}); "
                "it must be at most max_capacity"
            )
        _check_range(
            "initial_instance_count", self.initial_instance_count, self.min_capacity, self.max_capacity
        )
        if self.target_invocations_per_instance <= 0:
            raise ValueError(
                f"target_invocations_per_instance: {self.target_invocations_per_instance} must be above 0"
            )

    def _check_rollout(self) -> None:
        _check_range("canary_size_percent", self.canary_size_percent, 1, MAX_CANARY_PERCENT)
        _check_range("linear_step_percent", self.linear_step_percent, *LINEAR_STEP_RANGE)
        _check_range("wait_interval_seconds", self.wait_interval_seconds, 0, MAX_WAIT_SECONDS)
        _check_range("termination_wait_seconds", self.termination_wait_seconds, 0, MAX_WAIT_SECONDS)
        _check_range(
            "max_execution_timeout_seconds", self.max_execution_timeout_seconds, *EXECUTION_TIMEOUT_RANGE
        )
        waiting = rollout_wait_seconds(
            self.strategy, self.linear_step_percent, self.wait_interval_seconds, self.termination_wait_seconds
        )
        if self.max_execution_timeout_seconds < waiting:
            raise ValueError(
                f"max_execution_timeout_seconds: {self.max_execution_timeout_seconds} is shorter than the "
                f"{waiting} s a {self.strategy} rollout waits (bake after each shift plus termination wait)"
            )


def _check_range(key: str, value: float, low: float, high: float | None) -> None:
    if value < low or (high is not None and value > high):
        allowed = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{key}: {value} is out of range; it must be {allowed}")
