"""What every component shares: child resource options and the tags every resource carries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pulumi

PROJECT = "mlops-platform"


def child_opts(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
    """Options for a component's children: parented to it, inheriting what the caller set."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=parent))


def standard_tags(stack: str, owner: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags on every taggable resource: cost reports and clean-up key on them."""
    return {"project": PROJECT, "stack": stack, "owner": owner, **(extra or {})}


def fit_name(name: str, limit: int = 64) -> str:
    """``name`` if it fits AWS's length ``limit``, else a prefix of it plus a digest of all of it.

    The digest keeps two long names that share a prefix apart, and the result is the same
    on every run (no random suffix, so previews show no spurious replacement).
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def assume_role_policy(service: str, condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A trust policy letting one AWS service assume a role (under ``condition``, if any).

    Pass a condition on ``aws:SourceAccount`` / ``aws:SourceArn`` wherever the service sets
    them, so no other account or resource can use the role (the confused-deputy guard).
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = dict(condition)
    return {"Version": "2012-10-17", "Statement": [statement]}


def source_account(account: str) -> dict[str, Any]:
    """The trust condition: on behalf of this account only."""
    return {"StringEquals": {"aws:SourceAccount": account}}


def sagemaker_source(partition: str, region: str, account: str) -> dict[str, Any]:
    """SageMaker's confused-deputy guard for the roles it assumes (pipelines, processing and
    training jobs, models, feature groups, tracking servers): on behalf of this account and
    its SageMaker resources in this region only.

    SageMaker documents ``aws:SourceAccount`` and ``aws:SourceArn`` for these roles and, where
    one role serves several resources, the ARN with a wildcard for the part that varies
    (``arn:aws:sagemaker:<region>:<account>:*``): a pipeline's role is also assumed for each
    job it starts, whose ARN is only known at run time.
    """
    return {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": f"arn:{partition}:sagemaker:{region}:{account}:*"},
    }


# The permissions boundary every role the platform creates carries (README "Security"). The
# bootstrap creates one per stack, and the CI deploy role may create or change a role only
# with it attached and may never change the boundary itself, so no role of a deploy can hold
# more than the boundary allows, whatever its own policy says.
BOUNDARY_POLICY_NAME = "mlops-platform-{stack}-boundary"


def permissions_boundary_arn(partition: str, account: str, stack: str) -> str:
    """The ARN of ``stack``'s permissions boundary (a managed policy at the default path)."""
    return f"arn:{partition}:iam::{account}:policy/{BOUNDARY_POLICY_NAME.format(stack=stack)}"


def stack_boundary() -> pulumi.Output[str]:
    """The running stack's permissions boundary ARN, for ``aws.iam.Role(permissions_boundary=...)``."""
    import pulumi_aws as aws

    stack = pulumi.get_stack()
    return pulumi.Output.all(
        aws.get_partition_output().partition, aws.get_caller_identity_output().account_id
    ).apply(lambda a: permissions_boundary_arn(a[0], a[1], stack))


def sagemaker_trust() -> pulumi.Output[str]:
    """The trust policy (JSON) of a role SageMaker assumes, with SageMaker's confused-deputy guard."""
    import json

    import pulumi_aws as aws

    return pulumi.Output.all(
        aws.get_partition_output().partition,
        aws.get_region_output().region,
        aws.get_caller_identity_output().account_id,
    ).apply(lambda a: json.dumps(assume_role_policy("sagemaker.amazonaws.com", sagemaker_source(*a))))
