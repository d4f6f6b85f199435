"""Monitoring of one model in one stack: alarms, their notifications, a dashboard, the monitor's schedule.

::

    SageMaker endpoint metrics ──► computational alarms (per variant) ─┐   (two of them roll
    monitoring pipeline metrics ─► drift / quality / data-volume alarms ┼─► SNS topic (KMS) ─► email
                                                                         │    a rollout back)
    EventBridge Scheduler ─► monitoring pipeline (hourly)    dashboard ◄─┘
                             one schedule per endpoint variant (Variant=champion | challenger),
                             paused while no model is deployed

The alarm definitions and the dashboard body are plain data built in :mod:`infra.alarms` and
:mod:`infra.dashboard`; this component only declares them. Create it before the endpoint:
``ModelEndpoint`` takes :attr:`Monitoring.rollback_alarm_names`, an Output of the alarm
resources, so the endpoint (and its auto-rollback) is created after the alarms exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.alarms import (
    COMPUTATIONAL,
    DATA_VOLUME,
    DRIFT,
    DRIFT_EPISODE,
    QUALITY,
    AlarmSpec,
    AlarmThresholds,
    alarm_prefix,
    all_alarms,
)
from infra.base import assume_role_policy, child_opts, fit_name, stack_boundary
from infra.dashboard import dashboard_body, dashboard_url
from infra.ml_pipelines import KINDS, pipeline_name
from infra.rollout import CHAMPION, rollback_alarm_names
from model_code.contract.schema import Schema

SCHEDULE_PREFIXES = ("rate(", "cron(", "at(")
# A monitoring run that could not start within an hour would overlap the next one: drop it.
SCHEDULE_MAX_EVENT_AGE_SECONDS = 3600
SCHEDULE_RETRIES = 3
# The README's runbook, as a fork publishes it; a stack sets its own with runbookUrl.
DEFAULT_RUNBOOK_URL = "README.md#runbook"
# pipelines.monitoring's parameter naming the endpoint variant a run reads.
VARIANT_PARAMETER = "Variant"


@dataclass(frozen=True)
class MonitoringArgs:
    """What to watch, where to send alarms and when to run the monitoring pipeline."""

    schema: Schema
    """The data contract: one drift alarm and one dashboard widget per feature."""
    stack: str
    kms_key_arn: pulumi.Input[str]
    """The stack's key: the SNS topic and the schedule are encrypted with it."""
    monitoring_pipeline_name: pulumi.Input[str]
    monitoring_pipeline_arn: pulumi.Input[str]
    endpoint_name: str | None = None
    """The endpoint watched; None while no model is deployed (no endpoint alarms or widgets)."""
    variant_names: Sequence[str] = (CHAMPION,)
    """The endpoint's variants (``ModelEndpoint.variant_names``), production variant first."""
    serverless: bool = False
    """Serverless endpoints have no instances: no CPU and memory alarms."""
    instance_type: str = "ml.m5.large"
    """The endpoint's instance type: SageMaker reports CPU summed over its vCPUs."""
    drift_monitoring: bool = True
    """False when the monitoring pipeline checks no drift (e.g. serverless: nothing is captured):
    no drift alarms or widgets."""
    alarm_email: str | None = None
    """Subscribed to the alarm topic when set (AWS mails a confirmation link first)."""
    thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)
    schedule_expression: str = "rate(1 hour)"
    schedule_enabled: bool = True
    """False pauses the schedule (dev saves cost); the schedule still exists, ready to resume.
    With no endpoint (``endpoint_name`` None) the schedule is paused whatever this says: every
    run would fail looking up a champion that does not exist, and be billed."""
    pipeline_parameters: Mapping[str, str] = field(default_factory=dict)
    """Parameters of each scheduled execution; empty runs the pipeline with its defaults."""
    tags: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    strategy: str = "all-at-once"
    """The deployment strategy, for the dashboard's header (``shadow``: variants after the first are shadows)."""
    model_package_arn: str | None = None
    """The model package served, for the dashboard's header (its version)."""
    retrain_schedule: str | None = None
    """The scheduled retraining, for the dashboard's header."""
    runbook_url: str = DEFAULT_RUNBOOK_URL
    """Where the dashboard's header links the runbook (the README's Runbook section)."""

    def __post_init__(self) -> None:
        if not self.schedule_expression.startswith(SCHEDULE_PREFIXES):
            raise ValueError(
                f"schedule_expression: {self.schedule_expression!r} is not a schedule; "
                "use rate(...), cron(...) or at(...)"
            )
        if self.endpoint_name is not None and not self.variant_names:
            raise ValueError("variant_names: an endpoint has at least one variant")
        if self.alarm_email is not None and "@" not in self.alarm_email:
            raise ValueError(f"alarm_email: {self.alarm_email!r} is not an email address")


def topic_policy(topic_arn: str, account: str, alarm_arn_patterns: Sequence[str]) -> dict[str, Any]:
    """CloudWatch may publish to the topic, for this account's alarms of this model only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudWatchAlarms",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": list(alarm_arn_patterns)},
                },
            }
        ],
    }


def scheduler_source(partition: str, region: str, account: str, group: str = "default") -> dict[str, Any]:
    """EventBridge Scheduler's confused-deputy guard: only this account's schedules, of the
    schedule group they are created in (the documented ``aws:SourceArn`` is the group's ARN)."""
    return {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnEquals": {
            "aws:SourceArn": f"arn:{partition}:scheduler:{region}:{account}:schedule-group/{group}"
        },
    }


def scheduler_policy(pipeline_arn: str, kms_key_arn: str) -> dict[str, Any]:
    """The scheduler may start the monitoring pipeline and nothing else (and read its encrypted schedule)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartMonitoring",
                "Effect": "Allow",
                "Action": "sagemaker:StartPipelineExecution",
                "Resource": pipeline_arn,
            },
            {"Sid": "DecryptSchedule", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": kms_key_arn},
        ],
    }


def pipeline_parameter_list(parameters: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in sorted(parameters.items())]


class Monitoring(pulumi.ComponentResource):
    """CloudWatch alarms, an encrypted SNS topic, a dashboard and the monitoring pipeline's schedule."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:Monitoring", name, None, opts)
        child = child_opts(self, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._account = aws.get_caller_identity_output(opts=invoke).account_id
        self._region = aws.get_region_output(opts=invoke).region
        self._partition = aws.get_partition_output(opts=invoke).partition
        prefix = alarm_prefix(args.schema.name, args.stack)
        specs = all_alarms(
            schema_name=args.schema.name,
            stack=args.stack,
            feature_names=args.schema.feature_names,
            thresholds=args.thresholds,
            endpoint=args.endpoint_name,
            variants=args.variant_names,
            serverless=args.serverless,
            instance_type=args.instance_type,
            drift_monitoring=args.drift_monitoring,
        )

        topic = self._create_topic(name, args, prefix, child)
        alarms = self._create_alarms(name, args, specs, topic, child)
        dashboard = self._create_dashboard(name, args, prefix, child)
        schedules = self._create_schedules(name, args, prefix, child)

        def names(group: str) -> list[pulumi.Output[str]]:
            return [alarm.name for spec, alarm in alarms if spec.group == group]

        by_name = {spec.name: alarm for spec, alarm in alarms}
        self.topic_arn = topic.arn
        self.computational_alarm_names = _all(names(COMPUTATIONAL))
        self.drift_alarm_names = _all(names(DRIFT))
        # The one alarm drift retraining listens to (none without drift monitoring).
        self.drift_episode_alarm_names = _all(names(DRIFT_EPISODE))
        (self.quality_alarm_name,) = names(QUALITY)
        (self.data_volume_alarm_name,) = names(DATA_VOLUME)
        rollback = rollback_alarm_names(args.endpoint_name, args.variant_names) if args.endpoint_name else []
        self.rollback_alarm_names = _all([by_name[n].name for n in rollback])
        self.dashboard_name = dashboard.dashboard_name
        self.dashboard_url = pulumi.Output.all(self._region, dashboard.dashboard_name).apply(
            lambda v: dashboard_url(v[0], v[1])
        )
        self.schedule_name = schedules[0].name
        self.schedule_names = _all([s.name for s in schedules])
        self.register_outputs(
            {
                "topic_arn": self.topic_arn,
                "computational_alarm_names": self.computational_alarm_names,
                "drift_alarm_names": self.drift_alarm_names,
                "drift_episode_alarm_names": self.drift_episode_alarm_names,
                "quality_alarm_name": self.quality_alarm_name,
                "data_volume_alarm_name": self.data_volume_alarm_name,
                "rollback_alarm_names": self.rollback_alarm_names,
                "dashboard_url": self.dashboard_url,
                "schedule_name": self.schedule_name,
                "schedule_names": self.schedule_names,
            }
        )

    def _create_topic(
        self, name: str, args: MonitoringArgs, prefix: str, child: pulumi.ResourceOptions
    ) -> aws.sns.Topic:
        topic = aws.sns.Topic(
            f"{name}-alarms",
            name=fit_name(f"{prefix}-alarms", 256),
            kms_master_key_id=args.kms_key_arn,
            tags=args.tags,
            opts=child,
        )
        # Alarm names all start with the model's prefix or the endpoint's name (the same by default).
        prefixes = sorted({prefix, *([args.endpoint_name] if args.endpoint_name else [])})
        document = pulumi.Output.all(topic.arn, self._account, self._region, self._partition).apply(
            lambda v: json.dumps(
                topic_policy(
                    v[0], v[1], [f"arn:{v[3]}:cloudwatch:{v[2]}:{v[1]}:alarm:{p}-*" for p in prefixes]
                )
            )
        )
        aws.sns.TopicPolicy(f"{name}-alarms-policy", arn=topic.arn, policy=document, opts=child)
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alarms-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.alarm_email,
                opts=child,
            )
        return topic

    def _create_alarms(
        self,
        name: str,
        args: MonitoringArgs,
        specs: list[AlarmSpec],
        topic: aws.sns.Topic,
        child: pulumi.ResourceOptions,
    ) -> list[tuple[AlarmSpec, aws.cloudwatch.MetricAlarm]]:
        # OK notifications too: whoever was paged learns when it is over.
        return [
            (
                spec,
                aws.cloudwatch.MetricAlarm(
                    f"{name}-{spec.key}",
                    **spec.alarm_args(),
                    alarm_actions=[topic.arn],
                    ok_actions=[topic.arn],
                    tags=args.tags,
                    opts=child,
                ),
            )
            for spec in specs
        ]

    def _create_dashboard(
        self, name: str, args: MonitoringArgs, prefix: str, child: pulumi.ResourceOptions
    ) -> aws.cloudwatch.Dashboard:
        schedules = {"monitoring": args.schedule_expression}
        if args.retrain_schedule:
            schedules["retraining"] = args.retrain_schedule
        # The names ml_pipelines and retraining give their resources, derived the same way.
        pipelines = {kind: pipeline_name(args.schema.name, args.stack, kind) for kind in KINDS}
        body = pulumi.Output.all(self._region, self._account, self._partition).apply(
            lambda v: json.dumps(
                dashboard_body(
                    schema_name=args.schema.name,
                    stack=args.stack,
                    feature_names=args.schema.feature_names,
                    region=v[0],
                    account=v[1],
                    partition=v[2],
                    strategy=args.strategy,
                    model_package_arn=args.model_package_arn,
                    schedules=schedules,
                    runbook_url=args.runbook_url,
                    pipelines=pipelines,
                    thresholds=args.thresholds,
                    endpoint=args.endpoint_name,
                    variants=args.variant_names,
                    serverless=args.serverless,
                    instance_type=args.instance_type,
                    drift_monitoring=args.drift_monitoring,
                )
            )
        )
        return aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=prefix, dashboard_body=body, opts=child
        )

    def _create_schedules(
        self, name: str, args: MonitoringArgs, prefix: str, child: pulumi.ResourceOptions
    ) -> list[aws.scheduler.Schedule]:
        """The production variant's schedule first, then one per shadow variant: each run reads
        one variant's captured traffic and publishes under its Variant dimension."""
        role = aws.iam.Role(
            f"{name}-scheduler-role",
            name=fit_name(f"{prefix}-monitoring-scheduler", 64),
            description="EventBridge Scheduler starts the monitoring pipeline as this role",
            assume_role_policy=pulumi.Output.all(self._partition, self._region, self._account).apply(
                lambda a: json.dumps(assume_role_policy("scheduler.amazonaws.com", scheduler_source(*a)))
            ),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-scheduler-policy",
            role=role.id,
            policy=pulumi.Output.all(args.monitoring_pipeline_arn, args.kms_key_arn).apply(
                lambda v: json.dumps(scheduler_policy(v[0], v[1]))
            ),
            opts=child,
        )
        variants = list(args.variant_names) if args.endpoint_name else [CHAMPION]
        return [
            self._create_schedule(
                name if variant == CHAMPION else f"{name}-{variant}",
                args,
                fit_name(f"{prefix}-monitoring" + ("" if variant == CHAMPION else f"-{variant}"), 64),
                role,
                policy,
                {**args.pipeline_parameters, **({} if variant == CHAMPION else {VARIANT_PARAMETER: variant})},
                child,
            )
            for variant in variants
        ]

    def _create_schedule(
        self,
        name: str,
        args: MonitoringArgs,
        schedule_name: str,
        role: aws.iam.Role,
        policy: aws.iam.RolePolicy,
        parameters: Mapping[str, str],
        child: pulumi.ResourceOptions,
    ) -> aws.scheduler.Schedule:
        target: dict[str, Any] = {
            "arn": args.monitoring_pipeline_arn,
            "role_arn": role.arn,
            "retry_policy": {
                "maximum_event_age_in_seconds": SCHEDULE_MAX_EVENT_AGE_SECONDS,
                "maximum_retry_attempts": SCHEDULE_RETRIES,
            },
        }
        if parameters:
            target["sagemaker_pipeline_parameters"] = {
                "pipeline_parameters": pipeline_parameter_list(parameters)
            }
        # No endpoint, no model to monitor: paused until a model is deployed.
        enabled = args.schedule_enabled and args.endpoint_name is not None
        return aws.scheduler.Schedule(
            f"{name}-schedule",
            name=schedule_name,
            description=pulumi.Output.concat("Runs the ", args.monitoring_pipeline_name, " pipeline"),
            schedule_expression=args.schedule_expression,
            state="ENABLED" if enabled else "DISABLED",
            flexible_time_window={"mode": "OFF"},
            kms_key_arn=args.kms_key_arn,
            target=target,
            # The first run must find the role able to start the pipeline.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[policy])),
        )


def _all(outputs: list[pulumi.Output[str]]) -> pulumi.Output[list[str]]:
    """``Output.all`` that is an empty list, not an error-prone empty call, when there is nothing."""
    return pulumi.Output.all(*outputs).apply(list) if outputs else pulumi.Output.from_input([])
