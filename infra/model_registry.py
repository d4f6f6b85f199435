"""The model registry: the model package group, and what happens when a version is approved.

The training pipeline registers each candidate that passes its quality gate as a model package
in this group, pending approval. Approving one (a person in the console or CLI, or an
automated check) emits "SageMaker Model Package State Change"; an EventBridge rule here
matches approvals in this group and starts promotion:

* with a GitLab trigger configured: an EventBridge API destination POSTs to GitLab's pipeline
  trigger, passing the package as pipeline variables; the GitLab pipeline then runs
  ``pulumi up`` with ``modelPackageArn`` set to it, stack by stack;
* always, when a notification topic is given: the event goes to that SNS topic;
* otherwise the rule matches and records the approval in its metrics, and a person promotes
  by setting ``modelPackageArn`` in the stack's config.

A package whose metadata is updated while approved emits the event again; promotion is
``pulumi up`` with the same ARN, so a repeated trigger changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.base import assume_role_policy, child_opts, stack_boundary
from infra.promotion import PROMOTED_DESCRIPTION_PREFIX, package_group_grant_policy

# What EventBridge reads from an approval event for the GitLab call.
TRIGGER_INPUT_PATHS = {
    "arn": "$.detail.ModelPackageArn",
    "group": "$.detail.ModelPackageGroupName",
    "version": "$.detail.ModelPackageVersion",
}
# EventBridge's retries of a GitLab call that failed with a retryable error (5xx, 429, timeout):
# for a day, as often as EventBridge allows, then the dead-letter queue. A 4xx (GitLab refusing
# the variables, a revoked token) is not retried: it goes to the queue at once.
RETRY_MAXIMUM_EVENT_AGE_SECONDS = 86400
RETRY_MAXIMUM_ATTEMPTS = 185
# A dead-lettered approval waits here for someone to read it and run the promotion by hand.
DEAD_LETTER_RETENTION_SECONDS = 14 * 86400
_TRIGGER_URL = re.compile(r"^https://[^/\s?#]+(/[^\s?#]*)?/api/v4/projects/[^/\s?#]+/trigger/pipeline$")
# EventBridge names (rules, connections, API destinations) are at most 64 characters.
_MAX_NAME = 64


@dataclass(frozen=True)
class ModelRegistryArgs:
    """The registry's group and its promotion trigger.

    group_name: the model package group's AWS name, e.g. ``<schema>-<stack>``.
    tags: the standard tags (project, stack, owner).
    kms_key_arn: the stack key; it encrypts the GitLab connection's secret (the trigger token).
    gitlab_trigger_url: ``https://<gitlab>/api/v4/projects/<id>/trigger/pipeline`` (None: no
        GitLab trigger). Needs ``gitlab_trigger_token``.
    gitlab_ref: the branch or tag the triggered pipeline runs on ("main").
    gitlab_trigger_token: the pipeline trigger token, as a Pulumi secret (the ``Output`` of
        ``config.require_secret("gitlabTriggerToken")``). It must be the value itself: an
        EventBridge connection stores its credentials in its own Secrets Manager secret (under
        ``kms_key_arn``) and cannot refer to an existing secret.
    notification_topic_arn: an SNS topic that also receives every approval (None). Its topic
        policy must let ``events.amazonaws.com`` publish.
    stack: the stack's name, sent to GitLab as ``MODEL_SOURCE_STACK``.
    deploy_stacks: the stacks an approval here deploys, in order (``DEPLOY_STACKS``; default
        this stack only).
    cross_account_grantees: (stack, account, promotion role ARN) of the stacks in other accounts
        this one promotes to: the group's resource policy lets each describe its packages.
    """

    group_name: str
    tags: pulumi.Input[dict[str, str]]
    kms_key_arn: pulumi.Input[str]
    gitlab_trigger_url: str | None = None
    gitlab_ref: str = "main"
    gitlab_trigger_token: pulumi.Input[str] | None = None
    notification_topic_arn: pulumi.Input[str] | None = None
    stack: str = "dev"
    deploy_stacks: tuple[str, ...] = ()
    cross_account_grantees: tuple[tuple[str, str, str], ...] = ()


# -- pure functions ---------------------------------------------------------------------------


def trigger_input_template(stack: str, deploy_stacks: list[str]) -> str:
    """The JSON body sent to GitLab: the approved package and where it goes, as pipeline variables.

    An unquoted <name> arrives as a JSON string; the version is a number in the event, so it
    sits inside quotes to arrive as text, which is what GitLab variables are. The stacks are
    known when the rule is deployed: this one and those after it in ``promotionOrder``.
    """
    for name in [stack, *deploy_stacks]:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise ValueError(f"stack {name!r}: expected lowercase letters, digits and '-'")
    return (
        '{"variables": {"MODEL_PACKAGE_ARN": <arn>, "MODEL_PACKAGE_GROUP": <group>, '
        f'"MODEL_PACKAGE_VERSION": "<version>", "MODEL_SOURCE_STACK": "{stack}", '
        f'"DEPLOY_STACKS": "{" ".join(deploy_stacks)}"}}}}'
    )


def approval_event_pattern(group_name: str) -> dict[str, Any]:
    """Events of a model package in this group reaching (or staying in) Approved, except packages
    ``mlops promote`` registered: a promoted copy is deployed by the promotion that made it, and
    must not start another (its description says where it came from)."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [group_name],
            "ModelApprovalStatus": ["Approved"],
            "$or": [
                {"ModelPackageDescription": [{"exists": False}]},
                {"ModelPackageDescription": [{"anything-but": {"prefix": PROMOTED_DESCRIPTION_PREFIX}}]},
            ],
        },
    }


def dead_letter_queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """EventBridge may send to the dead-letter queue, for the approval rule only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ApprovalRuleDeadLetters",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


def dead_letter_queue_name(group_name: str) -> str:
    return f"{group_name}-approval-dead-letters"[:80]


def delivery_alarm_names(group_name: str) -> dict[str, str]:
    """The alarms on the approval's delivery: failed GitLab calls, and approvals dead-lettered."""
    return {
        "failed": f"{group_name}-approval-delivery-failed",
        "dead_letters": f"{group_name}-approval-dead-letters",
    }


def approval_rule_name(group_name: str) -> str:
    return f"{group_name}-approved"[:_MAX_NAME]


def validate_trigger(url: str | None, token: Any) -> None:
    """A GitLab trigger is a pipeline trigger URL and a token, or neither; else a ValueError."""
    if url is None and token is None:
        return
    if url is None or token is None:
        missing = "gitlab_trigger_url" if url is None else "gitlab_trigger_token"
        raise ValueError(f"{missing}: missing; a GitLab trigger needs both the URL and the token")
    if not _TRIGGER_URL.match(url):
        raise ValueError(
            f"gitlab_trigger_url: {url!r} is not a GitLab pipeline trigger URL; expected "
            "https://<gitlab host>/api/v4/projects/<id>/trigger/pipeline"
        )


def invoke_api_destination_policy(api_destination_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokeTheGitlabTrigger",
                "Effect": "Allow",
                "Action": "events:InvokeApiDestination",
                "Resource": api_destination_arn,
            }
        ],
    }


# -- the component ---------------------------------------------------------------------------


def events_assume_role_policy(rule_arn: str) -> dict[str, Any]:
    """EventBridge may assume the role, and only for this rule (no confused deputy)."""
    return assume_role_policy("events.amazonaws.com", {"ArnEquals": {"aws:SourceArn": rule_arn}})


class ModelRegistry(pulumi.ComponentResource):
    """The model package group and the approval rule that starts promotion.

    Public attributes: ``group``, ``group_name`` (a plain string), ``group_arn``,
    ``approval_rule``, ``approval_rule_name`` (a plain string) and, with a GitLab trigger,
    ``api_destination``.
    """

    def __init__(self, name: str, args: ModelRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:model_registry:ModelRegistry", name, None, opts)
        self._opts = child_opts(self, opts)
        self._name = name
        self._args = args
        validate_trigger(args.gitlab_trigger_url, args.gitlab_trigger_token)

        self.group = aws.sagemaker.ModelPackageGroup(
            f"{name}-group",
            model_package_group_name=args.group_name,
            model_package_group_description="Candidates registered by the training pipeline",
            tags=args.tags,
            opts=self._opts,
        )
        if args.cross_account_grantees:
            self._create_group_policy()
        self.approval_rule_name: str = approval_rule_name(args.group_name)
        self.approval_rule = aws.cloudwatch.EventRule(
            f"{name}-approved",
            name=self.approval_rule_name,
            description=f"A model package in {args.group_name} is approved: start promotion",
            event_pattern=json.dumps(approval_event_pattern(args.group_name)),
            tags=args.tags,
            opts=self._opts,
        )
        self.api_destination: aws.cloudwatch.EventApiDestination | None = None
        self.dead_letter_queue: aws.sqs.Queue | None = None
        self.dead_letter_queue_name: str = dead_letter_queue_name(args.group_name)
        if args.gitlab_trigger_url:
            self.api_destination = self._create_gitlab_trigger()
        if args.notification_topic_arn is not None:
            aws.cloudwatch.EventTarget(
                f"{name}-approved-notify",
                rule=self.approval_rule.name,
                target_id="notify",
                arn=args.notification_topic_arn,
                opts=self._opts,
            )

        self.group_name: str = args.group_name
        self.group_arn: pulumi.Output[str] = self.group.arn
        self.register_outputs(
            {
                "group_name": self.group_name,
                "group_arn": self.group_arn,
                "approval_rule_name": self.approval_rule_name,
            }
        )

    def _create_group_policy(self) -> None:
        invoke = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke)
        region = aws.get_region_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke)
        aws.sagemaker.ModelPackageGroupPolicy(
            f"{self._name}-group-policy",
            model_package_group_name=self.group.model_package_group_name,
            resource_policy=pulumi.Output.all(partition.partition, region.region, identity.account_id).apply(
                lambda v: json.dumps(
                    package_group_grant_policy(
                        partition=v[0],
                        region=v[1],
                        account=v[2],
                        group=self._args.group_name,
                        grantees=self._args.cross_account_grantees,
                    )
                )
            ),
            opts=self._opts,
        )

    def _create_gitlab_trigger(self) -> aws.cloudwatch.EventApiDestination:
        args = self._args
        connection = aws.cloudwatch.EventConnection(
            f"{self._name}-gitlab",
            name=f"{args.group_name}-gitlab"[:_MAX_NAME],
            description="GitLab pipeline trigger for model promotion",
            # EventBridge requires an authorization method. GitLab's trigger authenticates by the
            # token parameter alone, so the API key header only names the caller; the token is a
            # secret query parameter, stored by EventBridge in Secrets Manager under the stack key.
            authorization_type="API_KEY",
            auth_parameters={
                "api_key": {"key": "X-Mlops-Trigger-Source", "value": "aws-eventbridge"},
                "invocation_http_parameters": {
                    "query_strings": [
                        {"key": "token", "value": args.gitlab_trigger_token, "is_value_secret": True},
                        {"key": "ref", "value": args.gitlab_ref, "is_value_secret": False},
                    ]
                },
            },
            kms_key_identifier=args.kms_key_arn,
            opts=self._opts,
        )
        destination = aws.cloudwatch.EventApiDestination(
            f"{self._name}-gitlab-trigger",
            name=f"{args.group_name}-gitlab-trigger"[:_MAX_NAME],
            description="POST to the GitLab pipeline trigger",
            connection_arn=connection.arn,
            invocation_endpoint=args.gitlab_trigger_url,
            http_method="POST",
            # Approvals are rare; one call a second protects GitLab from a burst of re-approvals.
            invocation_rate_limit_per_second=1,
            opts=self._opts,
        )
        role = aws.iam.Role(
            f"{self._name}-gitlab-trigger-role",
            name=f"{args.group_name}-promotion-trigger"[:_MAX_NAME],
            description="EventBridge invokes the GitLab promotion trigger",
            assume_role_policy=self.approval_rule.arn.apply(
                lambda arn: json.dumps(events_assume_role_policy(arn))
            ),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=self._opts,
        )
        role_policy = aws.iam.RolePolicy(
            f"{self._name}-gitlab-trigger-role-policy",
            role=role.id,
            policy=destination.arn.apply(lambda arn: json.dumps(invoke_api_destination_policy(arn))),
            opts=self._opts,
        )
        queue, queue_policy = self._create_dead_letter_queue()
        aws.cloudwatch.EventTarget(
            f"{self._name}-approved-gitlab",
            rule=self.approval_rule.name,
            target_id="gitlab-promotion",
            arn=destination.arn,
            role_arn=role.arn,
            input_transformer={
                "input_paths": TRIGGER_INPUT_PATHS,
                "input_template": trigger_input_template(
                    args.stack, list(args.deploy_stacks) or [args.stack]
                ),
            },
            # An approval is never lost: retryable failures are retried for a day, and what
            # still fails (or GitLab refuses) lands in the queue, where an alarm sees it.
            retry_policy={
                "maximum_event_age_in_seconds": RETRY_MAXIMUM_EVENT_AGE_SECONDS,
                "maximum_retry_attempts": RETRY_MAXIMUM_ATTEMPTS,
            },
            dead_letter_config={"arn": queue.arn},
            opts=pulumi.ResourceOptions.merge(
                self._opts, pulumi.ResourceOptions(depends_on=[role_policy, queue_policy])
            ),
        )
        return destination

    def _create_dead_letter_queue(self) -> tuple[aws.sqs.Queue, aws.sqs.QueuePolicy]:
        args = self._args
        queue = aws.sqs.Queue(
            f"{self._name}-approval-dead-letters",
            name=dead_letter_queue_name(args.group_name),
            # EventBridge encrypts with the stack key (its key policy lets events.amazonaws.com).
            kms_master_key_id=args.kms_key_arn,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            tags=args.tags,
            opts=self._opts,
        )
        policy = aws.sqs.QueuePolicy(
            f"{self._name}-approval-dead-letters-policy",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, self.approval_rule.arn).apply(
                lambda v: json.dumps(dead_letter_queue_policy(v[0], v[1]))
            ),
            opts=self._opts,
        )
        self.dead_letter_queue = queue
        return queue, policy


@dataclass(frozen=True)
class ApprovalDeliveryAlarmsArgs:
    """Alarms on the approval's way to GitLab.

    group_name: the model package group; approval_rule_name: its approval rule;
    dead_letter_queue_name: the rule's dead-letter queue; topic_arn: the stack's alarm topic.
    """

    group_name: str
    approval_rule_name: str
    dead_letter_queue_name: str
    topic_arn: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]


class ApprovalDeliveryAlarms(pulumi.ComponentResource):
    """An alarm on failed GitLab calls (the rule's FailedInvocations) and one on dead letters."""

    def __init__(
        self, name: str, args: ApprovalDeliveryAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlops:model_registry:ApprovalDeliveryAlarms", name, None, opts)
        child = child_opts(self, opts)
        names = delivery_alarm_names(args.group_name)
        common = {
            "comparison_operator": "GreaterThanOrEqualToThreshold",
            "threshold": 1,
            "evaluation_periods": 1,
            "period": 300,
            "statistic": "Sum",
            "treat_missing_data": "notBreaching",
            "alarm_actions": [args.topic_arn],
            "tags": args.tags,
        }
        failed = aws.cloudwatch.MetricAlarm(
            f"{name}-failed",
            name=names["failed"],
            alarm_description=(
                "An approval could not be delivered to GitLab (EventBridge FailedInvocations): "
                "see the dead-letter queue and README 'How a model is promoted'"
            ),
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions={"RuleName": args.approval_rule_name},
            **common,
            opts=child,
        )
        dead = aws.cloudwatch.MetricAlarm(
            f"{name}-dead-letters",
            name=names["dead_letters"],
            alarm_description=(
                "Approvals GitLab never received wait in the dead-letter queue: "
                "run the promotion by hand with the message's MODEL_PACKAGE_ARN"
            ),
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": args.dead_letter_queue_name},
            **{**common, "statistic": "Maximum"},
            opts=child,
        )
        self.alarm_names = [failed.name, dead.name]
        self.register_outputs({"alarm_names": self.alarm_names})
