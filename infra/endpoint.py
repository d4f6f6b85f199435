"""The model endpoint: the approved model package served by SageMaker, rolled out safely.

::

    model package ─► Model "champion" ─┐
    (challenger) ─► Model "challenger" ┼─► EndpointConfiguration ─► Endpoint ─► autoscaling
                                        │   data capture → s3://<bucket>/data-capture (KMS)
    rollback alarms (Monitoring) ───────┴─────────────────────────► auto-rollback

Every change of model, instance or capture settings is a new endpoint configuration (its
name carries a digest of its content, so Pulumi creates the new one before deleting the
old), and the endpoint's switch to it is a SageMaker blue/green deployment shaped by the
strategy (see :mod:`infra.rollout`, whose naming and routing functions this module
re-exports), rolled back if one of the rollback alarms fires during a bake.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.base import assume_role_policy, child_opts, source_account
from infra.rollout import (
    CHALLENGER,
    CHAMPION,
    EXECUTION_TIMEOUT_RANGE,
    LINEAR_STEP_RANGE,
    MAX_CANARY_PERCENT,
    MAX_WAIT_SECONDS,
    SERVERLESS_STRATEGIES,
    STRATEGIES,
    deployment_config,
    endpoint_alarm_name,
    endpoint_config_name,
    endpoint_name,
    fit_name,
    model_name,
    rollback_alarm_names,
    rollout_wait_seconds,
    traffic_routing,
    variant_names,
)
from model_code.serving.inference import CSV, JSON

# The naming and rollout functions are part of this module's interface: callers wire the
# endpoint and its alarms with them.
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "STRATEGIES",
    "ModelEndpoint",
    "ModelEndpointArgs",
    "deployment_config",
    "endpoint_alarm_name",
    "endpoint_config_name",
    "endpoint_name",
    "execution_role_policy",
    "fit_name",
    "model_name",
    "rollback_alarm_names",
    "traffic_routing",
    "variant_names",
]

DATA_CAPTURE_PREFIX = "data-capture"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)  # ProductionVariantServerlessConfig


# -- IAM --------------------------------------------------------------------------------
def execution_role_policy(
    *,
    partition: str,
    region: str,
    account: str,
    endpoint: str,
    repository_arn: str,
    bucket_name: str,
    kms_key_arn: str,
    model_artifacts_prefix: str,
    data_capture: bool,
) -> dict[str, Any]:
    """What the endpoint's containers may do: pull the image, read model artifacts, write capture, log."""
    log_group = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "PullImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": repository_arn,
        },
        # ECR issues registry tokens account-wide: this action has no resource-level scope.
        {"Sid": "EcrToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "ReadModelArtifacts",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:{partition}:s3:::{bucket_name}/{model_artifacts_prefix}*",
        },
        {
            "Sid": "UseKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
        },
        {
            "Sid": "ContainerLogs",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            "Resource": [log_group, f"{log_group}:*"],
        },
        # PutMetricData has no resource-level scope; the namespace condition is its scope.
        {
            "Sid": "ContainerMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        },
    ]
    if data_capture:
        # SageMaker writes capture under <destination>/<endpoint>/<variant>/...: this endpoint's only.
        statements.append(
            {
                "Sid": "WriteDataCapture",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"arn:{partition}:s3:::{bucket_name}/{DATA_CAPTURE_PREFIX}/{endpoint}/*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


# -- the component ----------------------------------------------------------------------
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
    data_capture_percent: int = 100
    """Share of requests captured (inputs and outputs) for the monitoring pipeline."""
    rollback_alarm_names: pulumi.Input[Sequence[str]] = ()
    """Alarms that roll a deployment back; pass ``Monitoring.rollback_alarm_names`` (an Output)."""
    tags: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        if self.strategy == "shadow" and self.shadow_model_package_arn is None:
            raise ValueError(
                "shadow_model_package_arn: strategy 'shadow' needs the challenger's model package"
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


class ModelEndpoint(pulumi.ComponentResource):
    """A SageMaker endpoint serving the approved model package with the stack's rollout strategy."""

    def __init__(
        self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:endpoint:ModelEndpoint", name, None, opts)
        child = child_opts(self, opts)
        shadow = args.strategy == "shadow"
        self.variant_names = variant_names(shadow)

        if args.execution_role_arn is not None:
            role_arn, role_ready = pulumi.Output.from_input(args.execution_role_arn), []
        else:
            role, policy = self._create_role(name, args, child)
            role_arn, role_ready = role.arn, [policy]

        models = {
            CHAMPION: self._create_model(
                name, args, CHAMPION, args.model_package_arn, role_arn, role_ready, child
            )
        }
        if shadow:
            models[CHALLENGER] = self._create_model(
                name, args, CHALLENGER, args.shadow_model_package_arn, role_arn, role_ready, child
            )
        config = self._create_endpoint_config(name, args, models, child)
        endpoint = self._create_endpoint(name, args, config, child)
        if not args.serverless and args.max_capacity > args.min_capacity:
            self._create_autoscaling(name, args, endpoint, child)

        self.endpoint_name = endpoint.name
        self.endpoint_arn = endpoint.arn
        self.endpoint_config_name = config.name
        self.model_names = pulumi.Output.all(*[m.name for m in models.values()])
        self.execution_role_arn = role_arn
        self.data_capture_uri = (
            None
            if args.serverless
            else pulumi.Output.concat(
                "s3://", args.bucket_name, f"/{DATA_CAPTURE_PREFIX}/{args.endpoint_name}/"
            )
        )
        self.register_outputs(
            {
                "endpoint_name": self.endpoint_name,
                "endpoint_config_name": self.endpoint_config_name,
                "variant_names": self.variant_names,
                "model_names": self.model_names,
            }
        )

    def _create_role(
        self, name: str, args: ModelEndpointArgs, child: pulumi.ResourceOptions
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        role = aws.iam.Role(
            f"{name}-role",
            name=fit_name(f"{args.endpoint_name}-endpoint", 64),
            description=f"SageMaker runs the {args.endpoint_name} endpoint's containers as this role",
            assume_role_policy=account.apply(
                lambda a: json.dumps(assume_role_policy("sagemaker.amazonaws.com", source_account(a)))
            ),
            tags=args.tags,
            opts=child,
        )
        document = pulumi.Output.all(
            partition, region, account, args.repository_arn, args.bucket_name, args.kms_key_arn
        ).apply(
            lambda v: json.dumps(
                execution_role_policy(
                    partition=v[0],
                    region=v[1],
                    account=v[2],
                    endpoint=args.endpoint_name,
                    repository_arn=v[3],
                    bucket_name=v[4],
                    kms_key_arn=v[5],
                    model_artifacts_prefix=args.model_artifacts_prefix,
                    data_capture=not args.serverless,
                )
            )
        )
        policy = aws.iam.RolePolicy(f"{name}-role-policy", role=role.id, policy=document, opts=child)
        return role, policy

    def _create_model(
        self,
        name: str,
        args: ModelEndpointArgs,
        variant: str,
        package_arn: pulumi.Input[str],
        role_arn: pulumi.Output[str],
        role_ready: list[pulumi.Resource],
        child: pulumi.ResourceOptions,
    ) -> aws.sagemaker.Model:
        return aws.sagemaker.Model(
            f"{name}-{variant}-model",
            name=pulumi.Output.all(package_arn, role_arn).apply(
                lambda v: model_name(args.endpoint_name, variant, v[0], v[1])
            ),
            execution_role_arn=role_arn,
            primary_container={"model_package_name": package_arn},
            # The serving container makes no outbound calls; SageMaker still fetches the
            # artifacts for it, so isolation costs nothing and stops any exfiltration.
            enable_network_isolation=True,
            tags=args.tags,
            # The role's permissions must exist before SageMaker validates the model.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=role_ready)),
        )

    def _create_endpoint_config(
        self,
        name: str,
        args: ModelEndpointArgs,
        models: dict[str, aws.sagemaker.Model],
        child: pulumi.ResourceOptions,
    ) -> aws.sagemaker.EndpointConfiguration:
        if args.serverless:
            size: dict[str, Any] = {
                "serverless_config": {
                    "memory_size_in_mb": args.serverless_memory_mb,
                    "max_concurrency": args.serverless_max_concurrency,
                }
            }
        else:
            size = {
                "instance_type": args.instance_type,
                "initial_instance_count": args.initial_instance_count,
            }
        champion = {
            "variant_name": CHAMPION,
            "model_name": models[CHAMPION].name,
            "initial_variant_weight": 1,
            **size,
        }
        shadow = None
        if CHALLENGER in models:
            # AWS mirrors to a shadow variant the share of requests given by its weight
            # relative to the production variant's: with the champion at 1, a weight of
            # 0.5 mirrors half the requests. Callers only ever see the champion's answer.
            shadow = [
                {
                    "variant_name": CHALLENGER,
                    "model_name": models[CHALLENGER].name,
                    "initial_variant_weight": args.shadow_sampling_percent / 100,
                    **size,
                }
            ]
        capture = None
        if not args.serverless:
            capture = {
                "enable_capture": True,
                "initial_sampling_percentage": args.data_capture_percent,
                "destination_s3_uri": pulumi.Output.concat(
                    "s3://", args.bucket_name, f"/{DATA_CAPTURE_PREFIX}"
                ),
                "kms_key_id": args.kms_key_arn,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                # The types model_code.serving.inference serves; captured payloads are stored as text.
                "capture_content_type_header": {"json_content_types": [JSON], "csv_content_types": [CSV]},
            }
        # Everything the configuration is made of, so any change gets a new name.
        settings = {
            "size": size,
            "shadow_sampling_percent": args.shadow_sampling_percent if shadow else None,
            "data_capture_percent": None if args.serverless else args.data_capture_percent,
        }
        config_name = pulumi.Output.all(
            *[m.name for m in models.values()], args.bucket_name, args.kms_key_arn
        ).apply(
            lambda v: endpoint_config_name(
                args.endpoint_name, {**settings, "models": v[: len(models)], "bucket": v[-2], "key": v[-1]}
            )
        )
        return aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            name=config_name,
            production_variants=[champion],
            shadow_production_variants=shadow,
            data_capture_config=capture,
            # Instance volumes only: AWS rejects a volume key on serverless endpoints.
            kms_key_arn=None if args.serverless else args.kms_key_arn,
            tags=args.tags,
            opts=child,
        )

    def _create_endpoint(
        self,
        name: str,
        args: ModelEndpointArgs,
        config: aws.sagemaker.EndpointConfiguration,
        child: pulumi.ResourceOptions,
    ) -> aws.sagemaker.Endpoint:
        routing = traffic_routing(
            args.strategy, args.canary_size_percent, args.linear_step_percent, args.wait_interval_seconds
        )
        deployment = pulumi.Output.from_input(args.rollback_alarm_names).apply(
            lambda alarms: deployment_config(
                routing, args.max_execution_timeout_seconds, args.termination_wait_seconds, list(alarms or [])
            )
        )
        return aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=config.name,
            deployment_config=deployment,
            tags=args.tags,
            opts=child,
        )

    def _create_autoscaling(
        self,
        name: str,
        args: ModelEndpointArgs,
        endpoint: aws.sagemaker.Endpoint,
        child: pulumi.ResourceOptions,
    ) -> None:
        # Only the champion scales: a shadow variant's load follows the sampling percentage.
        # Note: AWS refuses an endpoint update that changes a scaled variant's instance type;
        # such a change needs the target removed first (a model change is allowed).
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=endpoint.name.apply(lambda n: f"endpoint/{n}/variant/{CHAMPION}"),
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=args.min_capacity,
            max_capacity=args.max_capacity,
            tags=args.tags,
            opts=child,
        )
        aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            name=fit_name(f"{args.endpoint_name}-invocations-per-instance", 255),
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration={
                "target_value": args.target_invocations_per_instance,
                "predefined_metric_specification": {
                    "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
                },
                # Scale out fast on a surge, in slowly so a dip does not drop warm instances.
                "scale_out_cooldown": 60,
                "scale_in_cooldown": 300,
            },
            opts=child,
        )
