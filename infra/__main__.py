"""The Pulumi program: `pulumi up --stack dev|staging|prod` provisions one environment.

It only reads the validated config and wires the components together; each capability is
one component in its own file. Order matters where AWS needs a name before the resource
that uses it: the rollback alarms exist before the endpoint that rolls back on them.

    ArtifactStore (key, bucket) ─┬─► ContainerImage ─┐
                                 ├─► FeatureStore ───┼─► MlPipelines (ingestion, training, monitoring)
                                 ├─► ModelRegistry ──┘        │                   │
                                 └─► ExperimentTracking       ▼                   ▼
                                                   Monitoring (alarms, dashboard, schedule)
                                                              │                   │
                                          ModelEndpoint ◄─────┘ (rollback alarms) └─► Retraining
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra import config as config_mod
from infra.artifact_store import ArtifactStore, ArtifactStoreArgs
from infra.base import standard_tags
from infra.container_image import ContainerImage, ContainerImageArgs
from infra.endpoint import ModelEndpoint, ModelEndpointArgs
from infra.experiment_tracking import ExperimentTracking, ExperimentTrackingArgs
from infra.feature_store import FeatureStore, FeatureStoreArgs
from infra.ml_pipelines import MlPipelines, MlPipelinesArgs, definition_digest
from infra.model_registry import (
    ApprovalDeliveryAlarms,
    ApprovalDeliveryAlarmsArgs,
    ModelRegistry,
    ModelRegistryArgs,
)
from infra.monitoring import AlarmThresholds, Monitoring, MonitoringArgs
from infra.promotion import (
    artifact_bucket_name,
    grantees,
    model_artifact_prefixes,
    promotes_from,
    promotes_to,
    stacks_to_deploy,
)
from infra.promotion_role import PromotionRole, PromotionRoleArgs
from infra.retraining import Retraining, RetrainingArgs
from infra.rollout import endpoint_name, variant_names
from model_code.contract import schema as schema_mod

config = config_mod.load()
schema = schema_mod.load(config_mod.ROOT / config.schema_path)
tags = standard_tags(config.stack, config.owner)
account = aws.get_caller_identity().account_id
partition = aws.get_partition().partition
# AWS-visible names are derived from the schema and the stack, so environments sharing an
# account never collide and every name is known before deployment.
prefix = f"{schema.name}-{config.stack}"
# The stacks after this one in promotionOrder may read its model artifacts (README "How a model
# is promoted"); nothing else crosses stacks.
promotion_grantees = tuple(
    grantees(
        partition=partition,
        schema_name=schema.name,
        account=account,
        targets=promotes_to(config.promotion_order, config.stack),
    )
)
endpoint = endpoint_name(schema.name, config.stack)
shadow = config.deployment_strategy == "shadow" and config.shadow_model_package_arn is not None

store = ArtifactStore(
    "artifacts",
    ArtifactStoreArgs(
        # Bucket names are global: the account id keeps a fork's buckets from colliding.
        bucket_name=artifact_bucket_name(schema.name, config.stack, account),
        tags=tags,
        schema_paths=(config_mod.ROOT / config.schema_path,),
        promotion_grantees=promotion_grantees,
        model_artifact_prefixes=model_artifact_prefixes(f"{prefix}-training"),
        # Alarm names start with the model's prefix or the endpoint's name (Monitoring).
        alarm_name_prefixes=(prefix, endpoint),
    ),
)
image = ContainerImage(
    "image",
    ContainerImageArgs(
        repository_name=prefix,
        kms_key_arn=store.key_arn,
        tags=tags,
        image_uri=config.image_uri,
        repository_exists=config.image_repository_exists,
    ),
)
features = FeatureStore(
    "feature-store",
    FeatureStoreArgs(
        schema=schema,
        bucket_name=store.bucket_name,
        bucket_arn=store.bucket_arn,
        kms_key_arn=store.key_arn,
        tags=tags,
        feature_group_name=prefix,
    ),
)
registry = ModelRegistry(
    "model-registry",
    ModelRegistryArgs(
        group_name=prefix,
        tags=tags,
        kms_key_arn=store.key_arn,
        gitlab_trigger_url=config.gitlab_trigger_url,
        gitlab_trigger_token=config.gitlab_trigger_token,
        stack=config.stack,
        deploy_stacks=tuple(stacks_to_deploy(config.promotion_order, config.stack)),
        cross_account_grantees=tuple(g for g in promotion_grantees if g[1] != account),
    ),
)
tracking = (
    ExperimentTracking(
        "experiments",
        ExperimentTrackingArgs(
            server_name=prefix,
            bucket_name=store.bucket_name,
            bucket_arn=store.bucket_arn,
            kms_key_arn=store.key_arn,
            tags=tags,
        ),
    )
    if config.mlflow_enabled
    else None
)
pipelines = MlPipelines(
    "pipelines",
    MlPipelinesArgs(
        schema=schema,
        region=config.region,
        stack=config.stack,
        bucket_name=store.bucket_name,
        bucket_arn=store.bucket_arn,
        kms_key_arn=store.key_arn,
        image_uri=image.image_uri,
        feature_group_name=features.feature_group_name,
        feature_group_arn=features.feature_group_arn,
        model_package_group_name=registry.group_name,
        model_package_group_arn=registry.group_arn,
        ecr_repository_arn=image.repository_arn,
        tags=tags,
        endpoint_name=endpoint,
        offline_store_uri=features.offline_store_uri,
        mlflow_tracking_server_arn=tracking.tracking_server_arn if tracking else None,
        model_search=config.model_search,
    ),
)
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        schema=schema,
        stack=config.stack,
        kms_key_arn=store.key_arn,
        monitoring_pipeline_name=pipelines.monitoring_pipeline_name,
        monitoring_pipeline_arn=pipelines.monitoring_pipeline_arn,
        endpoint_name=endpoint if config.deploys_model else None,
        variant_names=variant_names(shadow),
        serverless=config.serverless,
        instance_type=config.instance_type,
        drift_monitoring=config.drift_monitoring,
        alarm_email=config.alarm_email,
        strategy=config.deployment_strategy,
        model_package_arn=config.model_package_arn,
        retrain_schedule=config.retrain_schedule if config.retrain_schedule_enabled else None,
        **({"runbook_url": config.runbook_url} if config.runbook_url else {}),
        thresholds=AlarmThresholds(
            min_auc=config.min_auc,
            latency_p99_ms=config.latency_p99_ms,
            new_records_threshold=config.new_records_threshold,
        ),
        schedule_expression=config.monitoring_schedule,
        schedule_enabled=config.monitoring_schedule_enabled,
        tags=tags,
    ),
)
# A fresh platform has no approved model yet: everything but the model, its endpoint
# configuration and the endpoint is deployed, and the outputs say so.
model_endpoint = (
    ModelEndpoint(
        "endpoint",
        ModelEndpointArgs(
            endpoint_name=endpoint,
            strategy=config.deployment_strategy,
            model_package_arn=config.model_package_arn,
            shadow_model_package_arn=config.shadow_model_package_arn if shadow else None,
            repository_arn=image.repository_arn,
            bucket_name=store.bucket_name,
            kms_key_arn=store.key_arn,
            instance_type=config.instance_type,
            initial_instance_count=config.instance_count,
            min_capacity=config.min_capacity,
            max_capacity=config.max_capacity,
            target_invocations_per_instance=config.target_invocations_per_instance,
            serverless=config.serverless,
            serverless_memory_mb=config.serverless_memory_mb,
            serverless_max_concurrency=config.serverless_max_concurrency,
            canary_size_percent=config.canary_size_percent,
            linear_step_percent=config.linear_step_percent,
            wait_interval_seconds=config.wait_interval_seconds,
            max_execution_timeout_seconds=config.max_execution_timeout_seconds,
            shadow_sampling_percent=config.shadow_sampling_percent,
            data_capture_percent=config.data_capture_percent,
            log_retention_days=config.log_retention_days,
            rollback_alarm_names=monitoring.rollback_alarm_names,
            tags=tags,
            online_feature_group_name=features.feature_group_name if config.online_feature_lookup else None,
            online_feature_group_arn=features.feature_group_arn if config.online_feature_lookup else None,
        ),
    )
    if config.deploys_model
    else None
)
if registry.dead_letter_queue is not None:
    ApprovalDeliveryAlarms(
        "approval-delivery",
        ApprovalDeliveryAlarmsArgs(
            group_name=registry.group_name,
            approval_rule_name=registry.approval_rule_name,
            dead_letter_queue_name=registry.dead_letter_queue_name,
            topic_arn=monitoring.topic_arn,
            tags=tags,
        ),
    )
# The role `mlops promote` runs as, when a stack before this one promotes to it.
sources = promotes_from(config.promotion_order, config.stack)
promotion = (
    PromotionRole(
        "promotion",
        PromotionRoleArgs(
            schema_name=schema.name,
            stack=config.stack,
            sources=sources,
            bucket_arn=store.bucket_arn,
            key_arn=store.key_arn,
            repository_arn=image.repository_arn,
            tags=tags,
        ),
    )
    if sources
    else None
)
retraining = Retraining(
    "retraining",
    RetrainingArgs(
        training_pipeline_name=pipelines.training_pipeline_name,
        training_pipeline_arn=pipelines.training_pipeline_arn,
        triggers={
            # No drift monitoring (e.g. serverless): no drift alarms, so no drift rule.
            "drift": monitoring.drift_episode_alarm_names if config.drift_monitoring else [],
            "quality": pulumi.Output.from_input(monitoring.quality_alarm_name).apply(lambda n: [n]),
            "data-volume": pulumi.Output.from_input(monitoring.data_volume_alarm_name).apply(lambda n: [n]),
        },
        kms_key_arn=store.key_arn,
        tags=tags,
        schedule_expression=config.retrain_schedule,
        schedule_enabled=config.retrain_schedule_enabled,
        log_retention_days=config.log_retention_days,
    ),
)

pulumi.export("bucket", store.bucket_name)
pulumi.export("kmsKeyArn", store.key_arn)
pulumi.export("imageUri", image.image_uri)
pulumi.export("featureGroup", features.feature_group_name)
pulumi.export("modelPackageGroup", registry.group_name)
pulumi.export(
    "pipelines",
    {
        "ingestion": pipelines.ingestion_pipeline_arn,
        "training": pipelines.training_pipeline_arn,
        "monitoring": pipelines.monitoring_pipeline_arn,
    },
)
# What the endpoint serves, so CI's next deploy keeps it (.ci/deploy) and `mlops verify`
# checks it.
pulumi.export("modelPackageArn", config.model_package_arn)
pulumi.export("shadowModelPackageArn", config.shadow_model_package_arn if shadow else None)
# `mlops verify` compares each deployed pipeline's definition with these digests.
pulumi.export(
    "pipelineDefinitionDigests",
    {
        kind: pipeline.pipeline_definition.apply(definition_digest)
        for kind, pipeline in (
            ("ingestion", pipelines.ingestion_pipeline),
            ("training", pipelines.training_pipeline),
            ("monitoring", pipelines.monitoring_pipeline),
        )
    },
)
pulumi.export("endpointName", model_endpoint.endpoint_name if model_endpoint else None)
# What the endpoint should serve: DescribeEndpoint reporting another configuration means
# SageMaker rolled the last update back (README "Rollbacks").
pulumi.export("endpointConfigName", model_endpoint.endpoint_config_name if model_endpoint else None)
pulumi.export(
    "endpointStatus",
    f"serving {config.model_package_arn} ({config.deployment_strategy})"
    if model_endpoint
    else "no model deployed: set modelPackageArn to an approved model package to create the endpoint",
)
pulumi.export("dashboardUrl", monitoring.dashboard_url)
pulumi.export(
    "alarms",
    {
        "computational": monitoring.computational_alarm_names,
        "drift": monitoring.drift_alarm_names,
        "driftEpisode": monitoring.drift_episode_alarm_names,
        "quality": monitoring.quality_alarm_name,
        "dataVolume": monitoring.data_volume_alarm_name,
        "rollback": monitoring.rollback_alarm_names,
    },
)
pulumi.export("mlflowTrackingServer", tracking.tracking_server_url if tracking else None)
# `mlops promote` runs as this role in CI (.ci/deploy).
pulumi.export("promotionRoleArn", promotion.role_arn if promotion else None)
