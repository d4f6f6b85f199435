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

# What EventBridge reads from an approval event for the GitLab call.
TRIGGER_INPUT_PATHS = {
    "arn": "$.detail.ModelPackageArn",
    "group": "$.detail.ModelPackageGroupName",
    "version": "$.detail.ModelPackageVersion",
}
# The JSON body sent to GitLab: the approved package as pipeline variables the promotion
# pipeline reads. An unquoted <name> arrives as a JSON string; the version is a number in the
# event, so it sits inside quotes to arrive as text, which is what GitLab variables are.
TRIGGER_INPUT_TEMPLATE = (
    '{"variables": {"MODEL_PACKAGE_ARN": <arn>, "MODEL_PACKAGE_GROUP": <group>, '
    '"MODEL_PACKAGE_VERSION": "<version>"}}'
)
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
    """

    group_name: str
    tags: pulumi.Input[dict[str, str]]
    kms_key_arn: pulumi.Input[str]
    gitlab_trigger_url: str | None = None
    gitlab_ref: str = "main"
    gitlab_trigger_token: pulumi.Input[str] | None = None
    notification_topic_arn: pulumi.Input[str] | None = None


# -- pure functions ---------------------------------------------------------------------------


def approval_event_pattern(group_name: str) -> dict[str, Any]:
    """Events of a model package in this group reaching (or staying in) Approved."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [group_name], "ModelApprovalStatus": ["Approved"]},
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
        aws.cloudwatch.EventTarget(
            f"{self._name}-approved-gitlab",
            rule=self.approval_rule.name,
            target_id="gitlab-promotion",
            arn=destination.arn,
            role_arn=role.arn,
            input_transformer={
                "input_paths": TRIGGER_INPUT_PATHS,
                "input_template": TRIGGER_INPUT_TEMPLATE,
            },
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=[role_policy])),
        )
        return destination
