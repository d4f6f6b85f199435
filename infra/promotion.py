"""Model promotion across stacks (and accounts): the order, the names, and the one cross-stack read.

A model approved in stack S is deployed to S and to every stack after S in the config's
``promotionOrder`` (``dev → staging → prod``); a package approved in prod goes to prod only.
Each stack serves its own copy: ``mlops promote`` copies the package's files into the target
stack's bucket (under ``PROMOTED_PREFIX``, encrypted with the target's key) and registers a
package in the target's group, so every runtime role keeps reading only its own stack.

The copy is the only read across stacks. It runs as the target's *promotion role* (owned by
the target stack), and the source stack grants exactly that role, through its bucket policy
and its key policy, ``s3:GetObject`` on its model-artifact prefixes and ``kms:Decrypt`` through
S3. Grants name the role by ``aws:PrincipalArn`` under the target account's root principal:
S3 and KMS refuse a policy whose principal is a role that does not exist yet, and the target
may be deployed after the source (or live in another account).

::

    source stack (dev, account A)                 target stack (staging, account B)
    bucket policy: B's promotion role may   ◄──── promotion role (B): GetObject on A's prefixes,
      GetObject on pipelines/<training>/...        Decrypt on A's key (by alias), write B's
    key policy: ... may Decrypt via S3             promoted/ prefix, register in B's group
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.base import fit_name

# Where a target stack keeps promoted copies. Under pipelines/, which the target's endpoint and
# pipeline roles already read, so a promoted champion is served, monitored and scored like a
# model trained in place, and no runtime role needs a new grant.
PROMOTED_PREFIX = "pipelines/promoted/"
# A promoted package's description starts with this; the approval rule skips such packages, so
# registering a promoted copy (approved) never starts another promotion.
PROMOTED_DESCRIPTION_PREFIX = "Promoted from "
# Lineage on the target package (CustomerMetadataProperties).
LINEAGE_KEYS = ("PromotedFrom", "PromotedFromStack", "PromotedFromAccount")
_STACK = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_ACCOUNT = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class Stage:
    """One stack of the promotion order; ``account`` None: the account of the stack reading it."""

    stack: str
    account: str | None = None


# -- the order ---------------------------------------------------------------------------------


def parse_order(value: Any, *, key: str, stack: str) -> tuple[Stage, ...]:
    """Validate a ``promotionOrder`` value into stages; ValueError naming ``key[i].field``.

    ``value``: None or a list whose entries are a stack name or ``{stack, account}``.
    """
    if value is None or value == []:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{key}: {value!r} is not a list of stacks such as [dev, staging, prod]")
    stages: list[Stage] = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if isinstance(entry, str):
            entry = {"stack": entry}
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: {entry!r} is not a stack name or a mapping with stack and account")
        unknown = sorted(set(entry) - {"stack", "account"})
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown key; expected stack, account")
        name = entry.get("stack")
        if not isinstance(name, str) or not _STACK.match(name):
            raise ValueError(
                f"{where}.stack: {name!r} is not a stack name (lowercase letter, then letters, digits, '-')"
            )
        account = entry.get("account")
        if account is not None and (not isinstance(account, str) or not _ACCOUNT.match(account)):
            raise ValueError(
                f"{where}.account: {account!r} is not a 12-digit AWS account id as a quoted string "
                "(account ids may start with 0)"
            )
        if any(s.stack == name for s in stages):
            raise ValueError(f"{where}.stack: {name!r} is listed twice")
        stages.append(Stage(name, account))
    if not any(s.stack == stack for s in stages):
        names = ", ".join(s.stack for s in stages)
        raise ValueError(f"{key}: [{names}] does not list this stack {stack!r}; expected it in its place")
    return tuple(stages)


def _index(order: Sequence[Stage], stack: str) -> int | None:
    return next((i for i, s in enumerate(order) if s.stack == stack), None)


def stacks_to_deploy(order: Sequence[Stage], approved_in: str) -> list[str]:
    """The stacks an approval in ``approved_in`` deploys, in order: that stack and those after it."""
    i = _index(order, approved_in)
    return [approved_in] if i is None else [s.stack for s in order[i:]]


def promotes_to(order: Sequence[Stage], stack: str) -> tuple[Stage, ...]:
    """The stages after ``stack``: the stacks it grants its model artifacts to."""
    i = _index(order, stack)
    return () if i is None else tuple(order[i + 1 :])


def promotes_from(order: Sequence[Stage], stack: str) -> tuple[Stage, ...]:
    """The stages before ``stack``: the stacks its promotion role reads."""
    i = _index(order, stack)
    return () if i is None else tuple(order[:i])


# -- names ---------------------------------------------------------------------------------------


def resource_prefix(schema_name: str, stack: str) -> str:
    """``<schema>-<stack>``: the group, repository and feature group name of a stack."""
    return f"{schema_name}-{stack}"


def artifact_bucket_name(schema_name: str, stack: str, account: str) -> str:
    """The stack's artifact bucket (bucket names are global: the account keeps forks apart)."""
    return f"{resource_prefix(schema_name, stack)}-artifacts-{account}"


def key_alias(bucket_name: str) -> str:
    """The stack key's alias (ArtifactStore names it after the bucket)."""
    return f"alias/{bucket_name}"


def promotion_role_name(schema_name: str, stack: str) -> str:
    return fit_name(f"{resource_prefix(schema_name, stack)}-promotion", 64)


def model_artifact_prefixes(training_pipeline: str) -> tuple[str, ...]:
    """What a package of this stack points at: the trained models, and the evaluation step's
    outputs (evaluation.json, the drift baseline) of each execution. Training data, features
    and quarantined rows, under the same pipeline prefix, are left out."""
    return (f"pipelines/{training_pipeline}/models/", f"pipelines/{training_pipeline}/*/EvaluateModel/")


def promoted_key(source_stack: str, source_key: str) -> str:
    """Where the target keeps a copy of the source's object: deterministic, so a re-run rewrites it."""
    return f"{PROMOTED_PREFIX}{source_stack}/{source_key}"


# -- policies ----------------------------------------------------------------------------------


def _sid(stack: str) -> str:
    return "".join(part.capitalize() for part in stack.split("-"))


def bucket_grant_statements(
    *, partition: str, bucket_arn: str, prefixes: Sequence[str], grantees: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Bucket-policy statements: each target's promotion role may read the model-artifact prefixes.

    ``grantees``: (target stack, target account, promotion role ARN).
    """
    return [
        {
            "Sid": f"PromotionTo{_sid(stack)}ReadsModelArtifacts",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": "s3:GetObject",
            "Resource": [f"{bucket_arn}/{prefix}*" for prefix in prefixes],
            "Condition": {"ArnEquals": {"aws:PrincipalArn": role}},
        }
        for stack, account, role in grantees
    ]


def key_grant_statements(
    *, partition: str, region: str, grantees: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Key-policy statements: each target's promotion role may decrypt, only through S3 reads."""
    return [
        {
            "Sid": f"PromotionTo{_sid(stack)}DecryptsModelArtifacts",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {
                "ArnEquals": {"aws:PrincipalArn": role},
                "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
            },
        }
        for stack, account, role in grantees
    ]


def package_group_grant_policy(
    *, partition: str, region: str, account: str, group: str, grantees: Sequence[tuple[str, str, str]]
) -> dict[str, Any]:
    """The source group's resource policy: another account's promotion role may describe its
    packages (within one account the role's own policy is enough, and none is declared)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"PromotionTo{_sid(stack)}DescribesPackages",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{target_account}:root"},
                "Action": "sagemaker:DescribeModelPackage",
                "Resource": f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": role}},
            }
            for stack, target_account, role in grantees
        ],
    }


def grantees(
    *, partition: str, schema_name: str, account: str, targets: Sequence[Stage]
) -> list[tuple[str, str, str]]:
    """(stack, account, promotion role ARN) of each target; a target without account is ours."""
    out = []
    for stage in targets:
        target_account = stage.account or account
        role = f"arn:{partition}:iam::{target_account}:role/{promotion_role_name(schema_name, stage.stack)}"
        out.append((stage.stack, target_account, role))
    return out


def promotion_role_policy(
    *,
    partition: str,
    region: str,
    account: str,
    schema_name: str,
    stack: str,
    sources: Sequence[Stage],
    bucket_arn: str,
    key_arn: str,
    repository_arn: str,
) -> dict[str, Any]:
    """What the target's promotion role may do: read each source's model artifacts (the grant's
    other half), describe the source packages, and write and register its own stack's copy."""
    sm = f"arn:{partition}:sagemaker:{region}"
    statements: list[dict[str, Any]] = []
    for source in sources:
        src_account = source.account or account
        src_bucket = artifact_bucket_name(schema_name, source.stack, src_account)
        training = f"{resource_prefix(schema_name, source.stack)}-training"
        name = _sid(source.stack)
        statements += [
            {
                "Sid": f"Read{name}ModelArtifacts",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [
                    f"arn:{partition}:s3:::{src_bucket}/{p}*" for p in model_artifact_prefixes(training)
                ],
            },
            # The source key's id is not known here: the source key is named by its alias
            # (ArtifactStore's), and only S3 may use it on this role's behalf.
            {
                "Sid": f"Decrypt{name}ModelArtifacts",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": f"arn:{partition}:kms:{region}:{src_account}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": key_alias(src_bucket)},
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                },
            },
            {
                "Sid": f"Describe{name}Packages",
                "Effect": "Allow",
                "Action": "sagemaker:DescribeModelPackage",
                "Resource": f"{sm}:{src_account}:model-package/{resource_prefix(schema_name, source.stack)}/*",
            },
        ]
    group = resource_prefix(schema_name, stack)
    statements += [
        {
            "Sid": "WritePromotedCopies",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": f"{bucket_arn}/{PROMOTED_PREFIX}*",
        },
        {
            "Sid": "EncryptWithTheStackKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"],
            "Resource": key_arn,
        },
        {
            "Sid": "RegisterInTheStacksGroup",
            "Effect": "Allow",
            "Action": [
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:UpdateModelPackage",
            ],
            "Resource": [
                f"{sm}:{account}:model-package-group/{group}",
                f"{sm}:{account}:model-package/{group}/*",
            ],
        },
        # An earlier copy of the package is looked for in the group's list; IAM authorises
        # ListModelPackages on no resource type, so only "*" matches it.
        {
            "Sid": "FindEarlierCopies",
            "Effect": "Allow",
            "Action": "sagemaker:ListModelPackages",
            "Resource": "*",
        },
        {
            "Sid": "FindTheImageByDigest",
            "Effect": "Allow",
            "Action": "ecr:DescribeImages",
            "Resource": repository_arn,
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def promotion_trust_policy(partition: str, account: str) -> dict[str, Any]:
    """Principals of the target's own account may assume the role if their IAM policy lets them
    (the CI deploy role of the stack, or an operator): no other account can."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
