"""Retraining: alarms and a schedule start the training pipeline, one run at a time.

::

    drift-episode alarm ─┐ state → ALARM rule <prefix>-retrain-<reason> ─┐
    quality alarm       ─┤ ────────────►                                  ├─► training pipeline
    data-volume alarm   ─┘                                                │   TriggerReason=<reason>
    schedule_expression ───────────────► rule <prefix>-retrain-schedule ─┘   TrainingStrategy=<strategy>

    training execution → Executing ───► rule <prefix>-retrain-guard ─► Lambda retrain_guard
                                                                       (stops it if an earlier
                                                                        execution still runs)

Which data a run learns from depends on why it started (``DEFAULT_STRATEGIES``):

* ``data-volume`` → ``new-data-only``: the alarm fires because enough records arrived since the
  champion's data ended, so those records alone are a full training set;
* ``drift``, ``quality`` → ``combined``: the world moved, but the new records alone are
  usually too few (and a quality alarm may fire before much labelled data exists), so the
  run learns the whole recent window, old and new together;
* ``schedule`` → ``combined``: a routine refresh over the rolling window.

The guard acts on every execution of the training pipeline, whoever started it; a start it
stops is dropped, not queued: the run already going trains on the same window.

**One run per drift episode, at any width of schema.** The drift rule listens to one alarm,
``<prefix>-drifted-features`` on the ``DriftedFeatureCount`` the monitoring run publishes
(:func:`infra.alarms.drift_episode_alarm`), not to the per-column drift alarms. Those change
state one by one, so a rule listing them started one execution per alarm (six in ``make local``,
five of them stopped by the guard, each billed until stopped), and its pattern grew by about 41
characters a feature, past EventBridge's 2,048 at about 45 features. The other way, a composite
alarm over the drift alarms, is capped by AWS at 100 alarms and 10,240 characters per rule, so a
wide schema needs composites of composites (one more resource per 100 features, each created
after its children and deleted before them). The count comes from the same comparison that
sets the per-column flags, so one metric alarm on it says the same thing with one resource and a
pattern of fixed size, whatever the number of features. The quality and data-volume reasons
have one alarm each already. Every pattern is checked against EventBridge's default limit
(:data:`EVENT_PATTERN_MAX_CHARS`) before it is declared. The guard stays as the safety net:
a drift episode, the data-volume alarm and the schedule can still fire together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.base import assume_role_policy, child_opts, fit_name, stack_boundary
from infra.functions import retrain_guard
from infra.ml_pipelines import events_assume_role_policy, start_pipeline_policy

ALARM_REASONS = ("drift", "quality", "data-volume")
SCHEDULE = "schedule"
REASONS = (*ALARM_REASONS, SCHEDULE)
TRAINING_STRATEGIES = ("new-data-only", "combined")
DEFAULT_STRATEGIES: Mapping[str, str] = {
    "drift": "combined",
    "quality": "combined",
    "data-volume": "new-data-only",
    SCHEDULE: "combined",
}
# The training pipeline's parameter names (pipelines.training) the targets set.
TRIGGER_REASON = "TriggerReason"
TRAINING_STRATEGY = "TrainingStrategy"
# The only retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip
EXECUTION_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
GUARD_SOURCE = Path(retrain_guard.__file__)
GUARD_RUNTIME = "python3.12"
# EventBridge's default quota for an event pattern, in characters (4,096 only after a quota
# increase; terraform-provider-aws validates 2,048: issue #33732).
EVENT_PATTERN_MAX_CHARS = 2048


@dataclass(frozen=True)
class RetrainingArgs:
    """What starts the training pipeline, and with which strategy.

    training_pipeline_name, training_pipeline_arn: the pipeline every trigger starts.
    triggers: alarm reason (``drift`` | ``quality`` | ``data-volume``) → the names of the
        alarms whose change to ALARM starts a run for that reason; a reason left out (or given
        an empty list) has no rule.
    kms_key_arn: the stack key; encrypts the guard's log group and environment.
    tags: the standard tags, on every taggable resource.
    strategies: reason (the alarm reasons and ``schedule``) → ``new-data-only`` | ``combined``;
        a reason left out keeps its ``DEFAULT_STRATEGIES`` entry.
    schedule_expression: when the scheduled retraining runs (``rate(7 days)``).
    schedule_enabled: False keeps the schedule rule but disables it (dev, to save cost).
    log_retention_days: how long the guard's logs are kept (30).
    name_prefix: prefix of the AWS-visible names (default: the training pipeline's name,
        which already carries the schema and the stack).
    """

    training_pipeline_name: pulumi.Input[str]
    training_pipeline_arn: pulumi.Input[str]
    triggers: Mapping[str, pulumi.Input[Sequence[str]]]
    kms_key_arn: pulumi.Input[str]
    tags: pulumi.Input[Mapping[str, str]]
    strategies: Mapping[str, str] = field(default_factory=dict)
    schedule_expression: str = "rate(7 days)"
    schedule_enabled: bool = True
    log_retention_days: int = 30
    name_prefix: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        check_args(self)


# -- plain functions: validation, patterns, parameters, policies -------------------------------


def retrain_rule_name(prefix: str, reason: str) -> str:
    """The EventBridge rule that starts a run for ``reason`` (the dashboard counts its triggers)."""
    return fit_name(f"{prefix}-retrain-{reason}")


def strategies_for(given: Mapping[str, str]) -> dict[str, str]:
    """Every reason's strategy: ``given`` over ``DEFAULT_STRATEGIES``."""
    return {**DEFAULT_STRATEGIES, **given}


def check_args(args: RetrainingArgs) -> None:
    """Fail before any resource, naming the field, the value and what is allowed."""
    for reason in args.triggers:
        if reason not in ALARM_REASONS:
            raise ValueError(
                f"triggers: {reason!r} is not an alarm reason; expected one of {', '.join(ALARM_REASONS)}"
            )
    for reason, strategy in args.strategies.items():
        if reason not in REASONS:
            raise ValueError(f"strategies: {reason!r} is not a reason; expected one of {', '.join(REASONS)}")
        if strategy not in TRAINING_STRATEGIES:
            raise ValueError(
                f"strategies[{reason!r}]: {strategy!r} is not one of {' | '.join(TRAINING_STRATEGIES)}"
            )
    if not args.schedule_expression.startswith(("rate(", "cron(")) or not args.schedule_expression.endswith(
        ")"
    ):
        raise ValueError(f"schedule_expression: {args.schedule_expression!r} is not rate(...) or cron(...)")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"log_retention_days: {args.log_retention_days} is not one CloudWatch Logs accepts "
            f"({', '.join(map(str, LOG_RETENTION_DAYS))})"
        )


def alarm_pattern(alarm_names: Sequence[str]) -> dict[str, Any]:
    """EventBridge pattern: one of these alarms changed to ALARM (not OK or INSUFFICIENT_DATA)."""
    if not alarm_names:
        # EventBridge rejects an empty list in a pattern; say which rule, not just "invalid".
        raise ValueError("alarm_names: a retraining rule needs at least one alarm name")
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": sorted(alarm_names), "state": {"value": ["ALARM"]}},
    }


def pattern_json(rule: str, pattern: dict[str, Any]) -> str:
    """The pattern as the rule's ``event_pattern``, refused here if EventBridge would refuse it."""
    text = json.dumps(pattern)
    if len(text) > EVENT_PATTERN_MAX_CHARS:
        raise ValueError(
            f"{rule}: the event pattern has {len(text)} characters; EventBridge accepts at most "
            f"{EVENT_PATTERN_MAX_CHARS} by default"
        )
    return text


def executing_pattern(pipeline_arn: str) -> dict[str, Any]:
    """EventBridge pattern: an execution of this pipeline entered Executing (the guard's cue)."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [EXECUTION_STATUS_CHANGE],
        "detail": {
            "pipelineArn": [pipeline_arn],
            "currentPipelineExecutionStatus": [retrain_guard.EXECUTING],
        },
    }


def start_parameters(reason: str, strategy: str) -> dict[str, str]:
    """The training pipeline parameters a ``reason`` start sets, checked as the pipeline will."""
    from pipelines.training import check_parameters

    parameters = {TRIGGER_REASON: reason, TRAINING_STRATEGY: strategy}
    check_parameters(parameters)
    return parameters


def guard_role_policy(*, log_group_arn: str, pipeline_arn: str, kms_key_arn: str) -> dict[str, Any]:
    """The guard function: its own log group, and list/stop on the training pipeline only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            {
                "Sid": "ListTrainingExecutions",
                "Effect": "Allow",
                "Action": ["sagemaker:ListPipelineExecutions"],
                "Resource": [pipeline_arn],
            },
            {
                "Sid": "StopTrainingExecutions",
                "Effect": "Allow",
                "Action": ["sagemaker:StopPipelineExecution"],
                "Resource": [f"{pipeline_arn}/execution/*"],
            },
            {
                # The function's environment is encrypted with the stack key.
                "Sid": "DecryptOwnEnvironment",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": [kms_key_arn],
            },
        ],
    }


def guard_archive() -> pulumi.AssetArchive:
    """The guard's deployment package: its one module (never __pycache__, which would churn)."""
    return pulumi.AssetArchive({GUARD_SOURCE.name: pulumi.FileAsset(str(GUARD_SOURCE))})


# -- the component ---------------------------------------------------------------------------


class Retraining(pulumi.ComponentResource):
    """EventBridge rules that start the training pipeline, and the guard that serializes runs.

    Public attributes: ``rules`` (reason or ``schedule`` → EventRule), ``rule_names`` (alarm
    reason → rule name), ``schedule_rule_name``, ``events_role_arn``, ``guard_rule_name``,
    ``guard_function_name`` and ``guard_function_arn``.
    """

    def __init__(self, name: str, args: RetrainingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:retraining:Retraining", name, None, opts)
        self._opts = child_opts(self, opts)
        self._name = name
        self._args = args
        self._prefix = pulumi.Output.from_input(args.name_prefix or args.training_pipeline_name)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))
        self._account = identity.account_id
        strategies = strategies_for(args.strategies)

        # A reason given no alarms (e.g. drift monitoring off) gets no rule: EventBridge
        # refuses a pattern with an empty list.
        self.rules: dict[str, aws.cloudwatch.EventRule] = {
            reason: self._create_alarm_rule(reason, alarms)
            for reason, alarms in args.triggers.items()
            if not (isinstance(alarms, list | tuple) and not alarms)
        }
        self.rules[SCHEDULE] = self._create_schedule_rule()
        events_role, events_role_policy = self._create_events_role(list(self.rules.values()))
        for reason, rule in self.rules.items():
            self._create_training_target(reason, rule, strategies[reason], events_role, events_role_policy)
        guard_rule, guard = self._create_guard()

        self.rule_names: dict[str, pulumi.Output[str]] = {
            reason: rule.name for reason, rule in self.rules.items() if reason != SCHEDULE
        }
        self.schedule_rule_name: pulumi.Output[str] = self.rules[SCHEDULE].name
        self.events_role_arn: pulumi.Output[str] = events_role.arn
        self.guard_rule_name: pulumi.Output[str] = guard_rule.name
        self.guard_function_name: pulumi.Output[str] = guard.name
        self.guard_function_arn: pulumi.Output[str] = guard.arn
        self.register_outputs(
            {
                "rule_names": self.rule_names,
                "schedule_rule_name": self.schedule_rule_name,
                "events_role_arn": self.events_role_arn,
                "guard_rule_name": self.guard_rule_name,
                "guard_function_name": self.guard_function_name,
            }
        )

    def _aws_name(self, suffix: str) -> pulumi.Output[str]:
        return self._prefix.apply(lambda prefix: fit_name(f"{prefix}-{suffix}"))

    def _create_alarm_rule(
        self, reason: str, alarms: pulumi.Input[Sequence[str]]
    ) -> aws.cloudwatch.EventRule:
        return aws.cloudwatch.EventRule(
            f"{self._name}-{reason}-rule",
            name=self._prefix.apply(lambda prefix: retrain_rule_name(prefix, reason)),
            description=f"A {reason} alarm changed to ALARM: retrain",
            event_pattern=pulumi.Output.from_input(alarms).apply(
                lambda names: pattern_json(f"retrain-{reason} rule", alarm_pattern(names))
            ),
            tags=self._args.tags,
            opts=self._opts,
        )

    def _create_schedule_rule(self) -> aws.cloudwatch.EventRule:
        args = self._args
        return aws.cloudwatch.EventRule(
            f"{self._name}-schedule-rule",
            name=self._prefix.apply(lambda prefix: retrain_rule_name(prefix, SCHEDULE)),
            description=f"Scheduled retraining, {args.schedule_expression}",
            schedule_expression=args.schedule_expression,
            state="ENABLED" if args.schedule_enabled else "DISABLED",
            tags=args.tags,
            opts=self._opts,
        )

    def _create_events_role(
        self, rules: list[aws.cloudwatch.EventRule]
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        role = aws.iam.Role(
            f"{self._name}-events-role",
            name=self._aws_name("retrain-events"),
            description="EventBridge starts the training pipeline for retraining",
            assume_role_policy=pulumi.Output.all(self._account, *[r.arn for r in rules]).apply(
                lambda a: json.dumps(events_assume_role_policy(a[0], list(a[1:])))
            ),
            permissions_boundary=stack_boundary(),
            tags=self._args.tags,
            opts=self._opts,
        )
        role_policy = aws.iam.RolePolicy(
            f"{self._name}-events-role-policy",
            role=role.id,
            policy=pulumi.Output.from_input(self._args.training_pipeline_arn).apply(
                lambda arn: json.dumps(start_pipeline_policy([arn]))
            ),
            opts=self._opts,
        )
        return role, role_policy

    def _create_training_target(
        self,
        reason: str,
        rule: aws.cloudwatch.EventRule,
        strategy: str,
        role: aws.iam.Role,
        role_policy: aws.iam.RolePolicy,
    ) -> aws.cloudwatch.EventTarget:
        parameters = start_parameters(reason, strategy)
        return aws.cloudwatch.EventTarget(
            f"{self._name}-{reason}-target",
            rule=rule.name,
            target_id="training-pipeline",
            arn=self._args.training_pipeline_arn,
            role_arn=role.arn,
            sagemaker_pipeline_target=aws.cloudwatch.EventTargetSagemakerPipelineTargetArgs(
                pipeline_parameter_lists=[
                    aws.cloudwatch.EventTargetSagemakerPipelineTargetPipelineParameterListArgs(
                        name=k, value=v
                    )
                    for k, v in parameters.items()
                ]
            ),
            # EventBridge must be allowed to start the pipeline before the first event arrives.
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=[role_policy])),
        )

    def _create_guard(self) -> tuple[aws.cloudwatch.EventRule, aws.lambda_.Function]:
        args = self._args
        function_name = self._aws_name("retrain-guard")
        # Created here (not by Lambda on first write) so it has the key and a retention.
        log_group = aws.cloudwatch.LogGroup(
            f"{self._name}-guard-logs",
            name=function_name.apply(lambda fn: f"/aws/lambda/{fn}"),
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=args.tags,
            opts=self._opts,
        )
        role = aws.iam.Role(
            f"{self._name}-guard-role",
            name=self._aws_name("retrain-guard"),
            description="The retraining guard function: list and stop training executions",
            assume_role_policy=json.dumps(assume_role_policy("lambda.amazonaws.com")),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=self._opts,
        )
        role_policy = aws.iam.RolePolicy(
            f"{self._name}-guard-role-policy",
            role=role.id,
            policy=pulumi.Output.all(log_group.arn, args.training_pipeline_arn, args.kms_key_arn).apply(
                lambda a: json.dumps(
                    guard_role_policy(log_group_arn=a[0], pipeline_arn=a[1], kms_key_arn=a[2])
                )
            ),
            opts=self._opts,
        )
        guard = aws.lambda_.Function(
            f"{self._name}-guard",
            name=function_name,
            description="Stops a training pipeline execution while an earlier one still runs",
            runtime=GUARD_RUNTIME,
            architectures=["arm64"],
            handler=f"{GUARD_SOURCE.stem}.handler",
            code=guard_archive(),
            role=role.arn,
            timeout=60,
            memory_size=128,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={retrain_guard.GUARDED_PIPELINE_ARN: args.training_pipeline_arn}
            ),
            kms_key_arn=args.kms_key_arn,
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=log_group.name),
            tags=args.tags,
            # Its first log line needs the group and the permissions in place.
            opts=pulumi.ResourceOptions.merge(
                self._opts, pulumi.ResourceOptions(depends_on=[log_group, role_policy])
            ),
        )
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-guard-rule",
            name=function_name,
            description="A training pipeline execution started: check that no earlier one runs",
            event_pattern=pulumi.Output.from_input(args.training_pipeline_arn).apply(
                lambda arn: json.dumps(executing_pattern(arn))
            ),
            tags=args.tags,
            opts=self._opts,
        )
        permission = aws.lambda_.Permission(
            f"{self._name}-guard-invoke",
            action="lambda:InvokeFunction",
            function=guard.name,
            principal="events.amazonaws.com",
            # Only this rule of this account may invoke it (the confused-deputy guard).
            source_arn=rule.arn,
            source_account=self._account,
            opts=self._opts,
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-guard-target",
            rule=rule.name,
            target_id="retrain-guard",
            arn=guard.arn,
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=[permission])),
        )
        return rule, guard
