"""The target side of model promotion: the role ``mlops promote`` runs as (see :mod:`infra.promotion`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.base import child_opts, stack_boundary
from infra.promotion import Stage, promotion_role_name, promotion_role_policy, promotion_trust_policy


@dataclass(frozen=True)
class PromotionRoleArgs:
    """The target side of promotion: the role ``mlops promote`` runs as.

    schema_name, stack: name the stack's resources; sources: the stages before it (promotes_from).
    bucket_arn, key_arn, repository_arn: the stack's own bucket, key and ECR repository.
    """

    schema_name: str
    stack: str
    sources: tuple[Stage, ...]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]


class PromotionRole(pulumi.ComponentResource):
    """The role the target stack owns for ``mlops promote`` (only when some stack promotes to it)."""

    def __init__(self, name: str, args: PromotionRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:promotion:PromotionRole", name, None, opts)
        child = child_opts(self, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        role = aws.iam.Role(
            f"{name}-role",
            name=promotion_role_name(args.schema_name, args.stack),
            description=f"mlops promote copies approved models into the {args.stack} stack as this role",
            assume_role_policy=pulumi.Output.all(partition, account).apply(
                lambda v: json.dumps(promotion_trust_policy(v[0], v[1]))
            ),
            # The stack's permissions boundary, as every role its deploy creates (infra/bootstrap).
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=child,
        )
        document = pulumi.Output.all(
            partition, region, account, args.bucket_arn, args.key_arn, args.repository_arn
        ).apply(
            lambda v: json.dumps(
                promotion_role_policy(
                    partition=v[0],
                    region=v[1],
                    account=v[2],
                    schema_name=args.schema_name,
                    stack=args.stack,
                    sources=args.sources,
                    bucket_arn=v[3],
                    key_arn=v[4],
                    repository_arn=v[5],
                )
            )
        )
        aws.iam.RolePolicy(f"{name}-role-policy", role=role.id, policy=document, opts=child)
        self.role_arn: pulumi.Output[str] = role.arn
        self.register_outputs({"role_arn": self.role_arn})
