"""The model endpoint: the approved model package served by SageMaker, rolled out safely.

::

    model package ─► Model "champion" ─┐
    (challenger) ─► Model "challenger" ┼─► EndpointConfiguration ─► Endpoint ─► autoscaling
                                        │   data capture → s3://<bucket>/data-capture (KMS)
    rollback alarms (Monitoring) ───────┴─────────────────────────► auto-rollback

Every change of model, instance or capture settings is a new endpoint configuration (its
name carries a digest of all its arguments, so it never collides with the one serving),
and the endpoint's switch to it is a SageMaker blue/green deployment shaped by the
strategy (see :mod:`infra.rollout`, whose naming and routing functions this module
re-exports), rolled back if one of the rollback alarms fires during a bake. Replaced
configurations and models are kept (a rolled-back endpoint serves them again), and the
scaling target is re-registered around each configuration change (see
``REPLACED_AROUND_THE_UPDATE``).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.base import child_opts, sagemaker_trust, stack_boundary
from infra.endpoint_args import SERVERLESS_MEMORY_MB, ModelEndpointArgs
from infra.rollout import (
    CHALLENGER,
    CHAMPION,
    STRATEGIES,
    deployment_config,
    endpoint_alarm_name,
    endpoint_config_name,
    endpoint_name,
    fit_name,
    model_name,
    rollback_alarm_names,
    traffic_routing,
    variant_names,
)
from model_code.serving.media_types import CSV, JSON

# The naming and rollout functions are part of this module's interface: callers wire the
# endpoint and its alarms with them.
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "SERVERLESS_MEMORY_MB",
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
# How an endpoint configuration is replaced. Retained: when SageMaker rolls a blue/green
# update back, the endpoint serves the old configuration again while the provider reports
# success and would delete it (terraform-provider-aws #48997), so Pulumi never deletes a
# configuration (nor a model); README "Rollbacks" says how to detect one and clean up.
# Deleted before replaced: Pulumi then deletes the configuration's dependents first, which
# is how the scaling target is deregistered before the endpoint update (AWS refuses to change
# the instance type of a variant registered for autoscaling) and registered again after it.
REPLACED_AROUND_THE_UPDATE = pulumi.ResourceOptions(retain_on_delete=True, delete_before_replace=True)
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


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
    online_feature_group_arn: str | None = None,
) -> dict[str, Any]:
    """What the endpoint's containers may do: pull the image, read model artifacts, write capture, log;
    with ``online_feature_group_arn``, read records of that feature group's online store."""
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
    if online_feature_group_arn:
        # Online lookup (model_code.serving.lookup): BatchGetRecord, and GetRecord, of the stack's
        # feature group only (resource type feature-group, the Service Authorization Reference).
        statements.append(
            {
                "Sid": "LookUpOnlineFeatures",
                "Effect": "Allow",
                "Action": ["sagemaker:BatchGetRecord", "sagemaker:GetRecord"],
                "Resource": online_feature_group_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


# Where the model server finds the feature group to look features up in (model_code.serving.lookup).
ONLINE_FEATURE_GROUP_VARIABLE = "MLOPS_ONLINE_FEATURE_GROUP"


# -- the component ----------------------------------------------------------------------
class ModelEndpoint(pulumi.ComponentResource):
    """A SageMaker endpoint serving the approved model package with the stack's rollout strategy."""

    def __init__(
        self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:endpoint:ModelEndpoint", name, None, opts)
        child = child_opts(self, opts)
        # A shadow stack's first model has nothing to shadow it: it serves alone until a challenger is given.
        shadow = args.strategy == "shadow" and args.shadow_model_package_arn is not None
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
        # Created before the endpoint (not by SageMaker on the containers' first line) so it has
        # the stack's key and a retention, and goes with the stack.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/sagemaker/Endpoints/{args.endpoint_name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=args.tags,
            opts=child,
        )
        endpoint = self._create_endpoint(
            name,
            args,
            config,
            pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[log_group])),
        )
        if not args.serverless and args.max_capacity > args.min_capacity:
            self._create_autoscaling(name, args, endpoint, config, child)

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
            assume_role_policy=sagemaker_trust(),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=child,
        )
        document = pulumi.Output.all(
            partition,
            region,
            account,
            args.repository_arn,
            args.bucket_name,
            args.kms_key_arn,
            args.online_feature_group_arn,
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
                    online_feature_group_arn=v[6],
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
        container: dict[str, Any] = {"model_package_name": package_arn}
        if args.online_lookup:
            # The server reads the online store (model_code.serving.lookup) in the stack's region.
            region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
            container["environment"] = {
                ONLINE_FEATURE_GROUP_VARIABLE: args.online_feature_group_name,
                "AWS_DEFAULT_REGION": region,
            }
        arguments: dict[str, Any] = {
            "execution_role_arn": role_arn,
            "primary_container": container,
            # Without online lookup the serving container makes no outbound calls; SageMaker still
            # fetches the artifacts for it, so isolation costs nothing and stops any exfiltration.
            # With it, the container calls the feature store runtime, which an isolated container
            # cannot reach: the role's grant (that group's records, read only) is its scope then.
            # Serverless inference does not support network isolation: AWS refuses such a model.
            "enable_network_isolation": not args.serverless and not args.online_lookup,
        }
        return aws.sagemaker.Model(
            f"{name}-{variant}-model",
            # Every argument replaces a model: the name digests them all, so a replacement
            # never collides with the model still serving.
            name=pulumi.Output.from_input(arguments).apply(
                lambda a: model_name(args.endpoint_name, variant, a)
            ),
            **arguments,
            tags=args.tags,
            # The role's permissions must exist before SageMaker validates the model; a
            # replaced model is kept: a rolled-back endpoint may serve it again (see
            # REPLACED_AROUND_THE_UPDATE).
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=role_ready, retain_on_delete=True)
            ),
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
        arguments: dict[str, Any] = {
            "production_variants": [champion],
            "shadow_production_variants": shadow,
            "data_capture_config": capture,
            # Instance volumes only: AWS rejects a volume key on serverless endpoints.
            "kms_key_arn": None if args.serverless else args.kms_key_arn,
        }
        return aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            # Every argument forces a replacement: the name digests them all (see
            # rollout.endpoint_config_name), so the replacement exists beside the one serving.
            name=pulumi.Output.from_input(arguments).apply(
                lambda a: endpoint_config_name(args.endpoint_name, a)
            ),
            **arguments,
            tags=args.tags,
            opts=pulumi.ResourceOptions.merge(child, REPLACED_AROUND_THE_UPDATE),
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
        config: aws.sagemaker.EndpointConfiguration,
        child: pulumi.ResourceOptions,
    ) -> None:
        # Only the champion scales: a shadow variant's load follows the sampling percentage.
        # The target's id reads the configuration's name: when the configuration is replaced
        # (delete before replace), Pulumi replaces the target too, deleting it first and
        # creating it after the endpoint update, which depends on the new configuration. So
        # an instance-type change deploys in one `pulumi up` (AWS refuses it while the variant
        # is registered for autoscaling); other changes re-register the same target.
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=pulumi.Output.all(endpoint.name, config.name).apply(
                lambda v: f"endpoint/{v[0]}/variant/{CHAMPION}"
            ),
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
