"""IAM documents of the bootstrap: who may assume each CI role, and what each may do.

Pure functions, tested without Pulumi. GitLab's ID token reaches AWS as a web identity; IAM
can condition only on its ``aud`` and ``sub`` claims, so the project sets the subject to
carry the environment as well (``ci_id_token_sub_claim_components`` =
``["project_path", "ref_type", "ref", "environment"]``, README "Deploying to AWS"):
``project_path:<group>/<project>:ref_type:<branch|tag>:ref:<ref>:environment:<env>``.
"""

from __future__ import annotations

from typing import Any

from infra.bootstrap.config import ENVIRONMENTS, BootstrapConfig

AUDIENCE = "sts.amazonaws.com"
ROLE_PREFIX = "mlops-platform"
# The main program's Pulumi project: its stacks' state lives under .pulumi/*/<project>/<stack>.
MAIN_PROJECT = "mlops-platform"
# Actions the main program needs that AWS grants only on "*" (no resource-level permissions).
UNSCOPED_ACTIONS = (
    "ecr:GetAuthorizationToken",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DescribeScalingPolicies",
)


def role_name(role: str) -> str:
    return f"{ROLE_PREFIX}-{role}"


def role_refs(config: BootstrapConfig) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """CI role -> the (ref_type, ref, environment) its tokens may carry.

    dev deploys from the default branch; staging and prod, and the image build, from the
    default branch or a release tag; previews from any branch of a merge request.
    """
    branch = ("branch", config.default_branch)
    tag = ("tag", config.release_tag_pattern)
    roles: dict[str, tuple[tuple[str, str, str], ...]] = {"deploy-dev": ((*branch, "dev"),)}
    for env in ENVIRONMENTS[1:]:
        roles[f"deploy-{env}"] = ((*branch, env), (*tag, env))
    roles["build"] = ((*branch, "build"), (*tag, "build"))
    roles["preview"] = (("branch", "*", "preview/*"),)
    return roles


def subjects(config: BootstrapConfig, refs: tuple[tuple[str, str, str], ...]) -> list[str]:
    return [
        f"project_path:{config.project_path}:ref_type:{ref_type}:ref:{ref}:environment:{env}"
        for ref_type, ref, env in refs
    ]


def trust_policy(provider_arn: str, config: BootstrapConfig, role: str) -> dict[str, Any]:
    """Only this project's pipelines, on the refs and in the environment of ``role``."""
    host = config.gitlab_host
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{host}:aud": AUDIENCE},
                    "StringLike": {f"{host}:sub": subjects(config, role_refs(config)[role])},
                },
            }
        ],
    }


def _allow(sid: str, actions: list[str], resources: list[str], condition: dict | None = None) -> dict:
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def state_statements(env: str, state_bucket_arn: str, secrets_key_arn: str) -> list[dict]:
    """Read and write this stack's state only, and use the secrets key."""
    return [
        _allow("ListState", ["s3:ListBucket", "s3:GetBucketLocation"], [state_bucket_arn]),
        _allow("ReadStateMeta", ["s3:GetObject"], [f"{state_bucket_arn}/.pulumi/meta.yaml"]),
        _allow(
            "ThisStacksState",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            [
                f"{state_bucket_arn}/.pulumi/*/{MAIN_PROJECT}/{env}",
                f"{state_bucket_arn}/.pulumi/*/{MAIN_PROJECT}/{env}.*",
                f"{state_bucket_arn}/.pulumi/*/{MAIN_PROJECT}/{env}/*",
            ],
        ),
        _allow("PulumiSecrets", ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], [secrets_key_arn]),
    ]


def deploy_policy(
    env: str,
    config: BootstrapConfig,
    *,
    account: str,
    region: str,
    state_bucket_arn: str,
    secrets_key_arn: str,
) -> dict[str, Any]:
    """What ``pulumi up --stack <env>`` needs, on that environment's resources only.

    The main program names every AWS resource ``<resourcePrefix>-<env>...`` (Glue: with
    underscores), and tags each with ``stack``; keys have no name, so they are reached by tag.
    """
    p = f"{config.resource_prefix}-{env}"
    glue = p.replace("-", "_")
    arn = f"{region}:{account}"
    statements = [
        *state_statements(env, state_bucket_arn, secrets_key_arn),
        _allow(
            "Buckets",
            [
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:Get*",
                "s3:List*",
                "s3:Put*",
                "s3:DeleteObject*",
                "s3:DeleteBucketPolicy",
            ],
            [f"arn:aws:s3:::{p}-*", f"arn:aws:s3:::{p}-*/*"],
        ),
        _allow(
            "SageMaker",
            [
                f"sagemaker:{v}"
                for v in (
                    "Create*",
                    "Delete*",
                    "Describe*",
                    "Update*",
                    "List*",
                    "AddTags",
                    "DeleteTags",
                    "StartPipelineExecution",
                )
            ],
            [f"arn:aws:sagemaker:{arn}:*/{p}*"],
        ),
        _allow(
            "Roles",
            [
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:PutRolePolicy",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
                "iam:PassRole",
            ],
            [f"arn:aws:iam::{account}:role/{p}-*"],
        ),
        _allow(
            "AutoscalingServiceRole",
            ["iam:CreateServiceLinkedRole"],
            [
                f"arn:aws:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"
            ],
            {"StringEquals": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}},
        ),
        _allow(
            "Repository",
            [
                "ecr:CreateRepository",
                "ecr:DeleteRepository",
                "ecr:DescribeRepositories",
                "ecr:PutLifecyclePolicy",
                "ecr:GetLifecyclePolicy",
                "ecr:DeleteLifecyclePolicy",
                "ecr:PutImageScanningConfiguration",
                "ecr:PutImageTagMutability",
                "ecr:TagResource",
                "ecr:UntagResource",
                "ecr:ListTagsForResource",
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
            ],
            [f"arn:aws:ecr:{arn}:repository/{p}"],
        ),
        _allow(
            "Catalog",
            [
                "glue:CreateDatabase",
                "glue:DeleteDatabase",
                "glue:GetDatabase",
                "glue:UpdateDatabase",
                "glue:GetTable",
                "glue:CreateTable",
                "glue:UpdateTable",
                "glue:DeleteTable",
                "glue:GetTags",
                "glue:TagResource",
                "glue:UntagResource",
            ],
            [
                f"arn:aws:glue:{arn}:catalog",
                f"arn:aws:glue:{arn}:database/{glue}*",
                f"arn:aws:glue:{arn}:table/{glue}*/*",
            ],
        ),
        _allow(
            "Events",
            [
                "events:PutRule",
                "events:DeleteRule",
                "events:DescribeRule",
                "events:EnableRule",
                "events:DisableRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:ListTargetsByRule",
                "events:CreateConnection",
                "events:DeleteConnection",
                "events:DescribeConnection",
                "events:UpdateConnection",
                "events:CreateApiDestination",
                "events:DeleteApiDestination",
                "events:DescribeApiDestination",
                "events:UpdateApiDestination",
                "events:TagResource",
                "events:UntagResource",
                "events:ListTagsForResource",
            ],
            [
                f"arn:aws:events:{arn}:rule/{p}-*",
                f"arn:aws:events:{arn}:connection/{p}-*",
                f"arn:aws:events:{arn}:api-destination/{p}-*",
            ],
        ),
        _allow(
            "ConnectionSecrets",
            [
                "secretsmanager:CreateSecret",
                "secretsmanager:DeleteSecret",
                "secretsmanager:DescribeSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecret",
                "secretsmanager:TagResource",
            ],
            [f"arn:aws:secretsmanager:{arn}:secret:events!connection/{p}-*"],
        ),
        _allow(
            "Alarms",
            [
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:Subscribe",
                "sns:Unsubscribe",
                "sns:GetSubscriptionAttributes",
                "sns:TagResource",
                "sns:UntagResource",
                "sns:ListTagsForResource",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:PutDashboard",
                "cloudwatch:GetDashboard",
                "cloudwatch:DeleteDashboards",
            ],
            [
                f"arn:aws:sns:{arn}:{p}-*",
                f"arn:aws:cloudwatch:{arn}:alarm:{p}-*",
                f"arn:aws:cloudwatch::{account}:dashboard/{p}",
            ],
        ),
        _allow(
            "RetrainGuard",
            [
                "lambda:CreateFunction",
                "lambda:DeleteFunction",
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:AddPermission",
                "lambda:RemovePermission",
                "lambda:GetPolicy",
                "lambda:ListVersionsByFunction",
                "lambda:GetFunctionCodeSigningConfig",
                "lambda:TagResource",
                "lambda:UntagResource",
                "lambda:ListTags",
                "logs:CreateLogGroup",
                "logs:DeleteLogGroup",
                "logs:PutRetentionPolicy",
                "logs:AssociateKmsKey",
                "logs:TagResource",
                "logs:UntagResource",
                "logs:ListTagsForResource",
                "scheduler:CreateSchedule",
                "scheduler:DeleteSchedule",
                "scheduler:GetSchedule",
                "scheduler:UpdateSchedule",
            ],
            [
                f"arn:aws:lambda:{arn}:function:{p}-*",
                f"arn:aws:logs:{arn}:log-group:/aws/lambda/{p}-*",
                f"arn:aws:scheduler:{arn}:schedule/default/{p}*",
            ],
        ),
        _allow(
            "KeyAliases",
            ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
            [f"arn:aws:kms:{arn}:alias/{p}-*"],
        ),
        _allow(
            "ThisStacksKeys",
            [
                "kms:DescribeKey",
                "kms:GetKeyPolicy",
                "kms:PutKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:EnableKeyRotation",
                "kms:ScheduleKeyDeletion",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ListResourceTags",
                "kms:CreateAlias",
                "kms:DeleteAlias",
                "kms:UpdateAlias",
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:CreateGrant",
            ],
            [f"arn:aws:kms:{arn}:key/*"],
            {"StringEquals": {"aws:ResourceTag/stack": env}},
        ),
        _allow(
            "NewKeysTaggedForThisStack",
            ["kms:CreateKey"],
            ["*"],
            {"StringEquals": {"aws:RequestTag/stack": env}},
        ),
    ]
    statements += [_allow(f"Unscoped{i}", [action], ["*"]) for i, action in enumerate(UNSCOPED_ACTIONS)]
    return {"Version": "2012-10-17", "Statement": statements}


def build_policy(config: BootstrapConfig, *, account: str, region: str) -> dict[str, Any]:
    """Push the image to each environment's repository (and read its scan), nothing else."""
    repos = [
        f"arn:aws:ecr:{region}:{account}:repository/{config.resource_prefix}-{env}" for env in ENVIRONMENTS
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            _allow("Login", ["ecr:GetAuthorizationToken"], ["*"]),
            _allow(
                "Push",
                [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:InitiateLayerUpload",
                    "ecr:UploadLayerPart",
                    "ecr:CompleteLayerUpload",
                    "ecr:PutImage",
                    "ecr:BatchGetImage",
                    "ecr:DescribeImages",
                    "ecr:DescribeImageScanFindings",
                ],
                repos,
            ),
        ],
    }


def preview_policy(state_bucket_arn: str, secrets_key_arn: str) -> dict[str, Any]:
    """Read any stack's state and decrypt its secrets: what `pulumi preview` needs."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _allow("ListState", ["s3:ListBucket", "s3:GetBucketLocation"], [state_bucket_arn]),
            _allow("ReadState", ["s3:GetObject"], [f"{state_bucket_arn}/.pulumi/*"]),
            _allow("PulumiSecrets", ["kms:Decrypt"], [secrets_key_arn]),
        ],
    }
