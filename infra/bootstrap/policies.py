"""IAM documents of the bootstrap: who may assume each CI role, and what each may do.

Pure functions, tested without Pulumi. GitLab's ID token reaches AWS as a web identity; IAM
can condition only on its ``aud`` and ``sub`` claims (``<host>:aud``, ``<host>:sub``), and
GitLab builds ``sub`` only from the components a project allows in
``ci_id_token_sub_claim_components`` (gitlabhq ``ProjectCiCdSetting``): ``project_path`` or
``project_id`` first, then any of ``ref_type``, ``ref``, ``ref_protected``,
``environment_protected``, ``deployment_tier``; ``environment`` is not one of them. Each
component present in the job becomes ``<name>:<value>``, joined by ``:`` in the configured
order (gitlabhq ``Gitlab::Ci::JwtV2``); a job without an environment has no
``deployment_tier``. The project sets ``SUB_CLAIM_COMPONENTS`` (README "Deploying to AWS"):

    project_path:<group>/<project>:ref_type:<branch|tag>:ref:<ref>:ref_protected:<true|false>:deployment_tier:<tier>

so a role trusts a protected ref *and* the tier the job declares (``environment:
deployment_tier`` in ``.gitlab-ci.yml``): a ``development`` job cannot assume the prod role,
and no job on an unprotected ref assumes any role.
"""

from __future__ import annotations

from typing import Any

from infra.base import BOUNDARY_POLICY_NAME, permissions_boundary_arn
from infra.bootstrap.config import ENVIRONMENTS, BootstrapConfig

AUDIENCE = "sts.amazonaws.com"
ROLE_PREFIX = "mlops-platform"
# The main program's Pulumi project: its stacks' state lives under .pulumi/*/<project>/<stack>.
MAIN_PROJECT = "mlops-platform"
# Actions the main program needs that AWS grants only on "*" (no resource-level permissions):
# the provider reads log groups only through DescribeLogGroups, and CreateFeatureGroup with an
# online-store key lists the key's aliases.
UNSCOPED_ACTIONS = (
    "ecr:GetAuthorizationToken",
    "logs:DescribeLogGroups",
    "kms:ListAliases",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DescribeScalingPolicies",
)


def role_name(role: str) -> str:
    return f"{ROLE_PREFIX}-{role}"


# What the project sets as its token's subject (README "Deploying to AWS"), in this order.
SUB_CLAIM_COMPONENTS = ("project_path", "ref_type", "ref", "ref_protected", "deployment_tier")
# The deployment tier each CI role's jobs declare in .gitlab-ci.yml (GitLab's tiers:
# production, staging, testing, development, other).
ROLE_TIERS = {
    "deploy-dev": "development",
    "deploy-staging": "staging",
    "deploy-prod": "production",
    "build": "other",
    "preview": "testing",
}


def role_refs(config: BootstrapConfig) -> dict[str, tuple[tuple[str, str], ...]]:
    """CI role -> the (ref_type, ref) its tokens may come from; every one must be protected.

    dev deploys from the default branch; staging and prod, and the image build, from the
    default branch or a release tag; previews from any protected branch (a merge request's
    source branch, when the project protects it: an unprotected branch's code is unreviewed,
    and the preview role decrypts every stack's secrets).
    """
    branch = ("branch", config.default_branch)
    tag = ("tag", config.release_tag_pattern)
    roles: dict[str, tuple[tuple[str, str], ...]] = {"deploy-dev": (branch,)}
    for env in ENVIRONMENTS[1:]:
        roles[f"deploy-{env}"] = (branch, tag)
    roles["build"] = (branch, tag)
    roles["preview"] = (("branch", "*"),)
    return roles


def subjects(config: BootstrapConfig, role: str) -> list[str]:
    """The ``sub`` patterns ``role`` trusts, in the shape SUB_CLAIM_COMPONENTS gives them.

    Git ref names cannot hold ``:``, so a ``*`` in the ref field cannot reach into the
    ``ref_protected`` or ``deployment_tier`` fields GitLab writes after it.
    """
    return [
        f"project_path:{config.project_path}:ref_type:{ref_type}:ref:{ref}"
        f":ref_protected:true:deployment_tier:{ROLE_TIERS[role]}"
        for ref_type, ref in role_refs(config)[role]
    ]


def trust_policy(provider_arn: str, config: BootstrapConfig, role: str) -> dict[str, Any]:
    """Only this project's pipelines, on the protected refs and in the tier of ``role``."""
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
                    "StringLike": {f"{host}:sub": subjects(config, role)},
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


# What the main program does, service by service, as (sid, service, actions): each statement
# is limited to the environment's resources by deploy_policy. Wildcards stay within a verb
# (never "service:*").
_DEPLOY_ACTIONS = (
    ("Buckets", "s3", "CreateBucket DeleteBucket Get* List* Put* DeleteObject* DeleteBucketPolicy"),
    (
        "SageMaker",
        "sagemaker",
        "Create* Delete* Describe* Update* List* AddTags DeleteTags StartPipelineExecution",
    ),
    # Reading, updating and deleting the stack's roles; creating one or changing its permissions
    # is in deploy_policy, only with the stack's permissions boundary attached.
    (
        "Roles",
        "iam",
        "GetRole DeleteRole UpdateRole UpdateAssumeRolePolicy TagRole UntagRole GetRolePolicy "
        "ListRolePolicies ListAttachedRolePolicies ListInstanceProfilesForRole DeleteRolePolicy "
        "DetachRolePolicy",
    ),
    (
        "Repository",
        "ecr",
        "CreateRepository DeleteRepository DescribeRepositories PutLifecyclePolicy GetLifecyclePolicy "
        "DeleteLifecyclePolicy PutImageScanningConfiguration PutImageTagMutability TagResource "
        "UntagResource ListTagsForResource DescribeImages BatchGetImage",
    ),
    (
        "Catalog",
        "glue",
        "CreateDatabase DeleteDatabase GetDatabase UpdateDatabase CreateTable GetTable UpdateTable "
        "DeleteTable GetTags TagResource UntagResource",
    ),
    (
        "Events",
        "events",
        "PutRule DeleteRule DescribeRule EnableRule DisableRule PutTargets RemoveTargets ListTargetsByRule "
        "CreateConnection DeleteConnection DescribeConnection UpdateConnection CreateApiDestination "
        "DeleteApiDestination DescribeApiDestination UpdateApiDestination TagResource UntagResource "
        "ListTagsForResource",
    ),
    (
        "ConnectionSecrets",
        "secretsmanager",
        "CreateSecret DeleteSecret DescribeSecret PutSecretValue UpdateSecret TagResource",
    ),
    (
        "Topic",
        "sns",
        "CreateTopic DeleteTopic GetTopicAttributes SetTopicAttributes Subscribe Unsubscribe "
        "GetSubscriptionAttributes TagResource UntagResource ListTagsForResource",
    ),
    (
        "AlarmsAndDashboard",
        "cloudwatch",
        "PutMetricAlarm DeleteAlarms DescribeAlarms TagResource UntagResource ListTagsForResource "
        "PutDashboard GetDashboard DeleteDashboards",
    ),
    (
        "RetrainGuard",
        "lambda",
        "CreateFunction DeleteFunction GetFunction GetFunctionConfiguration UpdateFunctionCode "
        "UpdateFunctionConfiguration AddPermission RemovePermission GetPolicy ListVersionsByFunction "
        "GetFunctionCodeSigningConfig TagResource UntagResource ListTags",
    ),
    (
        "LogGroups",
        "logs",
        "CreateLogGroup DeleteLogGroup PutRetentionPolicy AssociateKmsKey TagResource UntagResource "
        "ListTagsForResource",
    ),
    ("Schedules", "scheduler", "CreateSchedule DeleteSchedule GetSchedule UpdateSchedule"),
    ("KeyAliases", "kms", "CreateAlias DeleteAlias UpdateAlias"),
    (
        "ThisStacksKeys",
        "kms",
        "DescribeKey GetKeyPolicy PutKeyPolicy GetKeyRotationStatus EnableKeyRotation ScheduleKeyDeletion "
        "TagResource UntagResource ListResourceTags CreateAlias DeleteAlias UpdateAlias Encrypt Decrypt "
        "GenerateDataKey CreateGrant "
        # CreateFeatureGroup with an online-store key, of its caller (OnlineStoreSecurityConfig).
        "RetireGrant ReEncryptFrom ReEncryptTo ListGrants RevokeGrant",
    ),
    # The approval rule's dead-letter queue (infra/model_registry.py).
    (
        "DeadLetters",
        "sqs",
        "CreateQueue DeleteQueue GetQueueAttributes SetQueueAttributes GetQueueUrl TagQueue UntagQueue "
        "ListQueueTags",
    ),
    # .ci/deploy runs `mlops promote` as the stack's promotion role (infra/promotion_role.py).
    ("PromotionRole", "sts", "AssumeRole"),
)


def _deploy_resources(env: str, config: BootstrapConfig, account: str, region: str) -> dict[str, list[str]]:
    """Statement id -> the ARNs of that environment's resources it may act on."""
    p = f"{config.resource_prefix}-{env}"
    glue = p.replace("-", "_")
    at = f"{region}:{account}"
    return {
        "Buckets": [f"arn:aws:s3:::{p}-*", f"arn:aws:s3:::{p}-*/*"],
        "SageMaker": [f"arn:aws:sagemaker:{at}:*/{p}*"],
        "Roles": [f"arn:aws:iam::{account}:role/{p}-*"],
        "Repository": [f"arn:aws:ecr:{at}:repository/{p}"],
        "Catalog": [
            f"arn:aws:glue:{at}:catalog",
            f"arn:aws:glue:{at}:database/{glue}*",
            f"arn:aws:glue:{at}:table/{glue}*/*",
        ],
        "Events": [
            f"arn:aws:events:{at}:rule/{p}-*",
            f"arn:aws:events:{at}:connection/{p}-*",
            f"arn:aws:events:{at}:api-destination/{p}-*",
        ],
        "ConnectionSecrets": [f"arn:aws:secretsmanager:{at}:secret:events!connection/{p}-*"],
        "Topic": [f"arn:aws:sns:{at}:{p}-*"],
        "AlarmsAndDashboard": [
            f"arn:aws:cloudwatch:{at}:alarm:{p}-*",
            f"arn:aws:cloudwatch::{account}:dashboard/{p}",
        ],
        "RetrainGuard": [f"arn:aws:lambda:{at}:function:{p}-*"],
        # The guard function's log group, and the endpoint's (SageMaker writes
        # /aws/sagemaker/Endpoints/<endpoint>; the program creates it with a key and a retention).
        "LogGroups": [
            f"arn:aws:logs:{at}:log-group:/aws/lambda/{p}-*",
            f"arn:aws:logs:{at}:log-group:/aws/sagemaker/Endpoints/{p}*",
        ],
        "Schedules": [f"arn:aws:scheduler:{at}:schedule/default/{p}*"],
        "KeyAliases": [f"arn:aws:kms:{at}:alias/{p}-*"],
        "ThisStacksKeys": [f"arn:aws:kms:{at}:key/*"],
        "DeadLetters": [f"arn:aws:sqs:{at}:{p}-*"],
        "PromotionRole": [f"arn:aws:iam::{account}:role/{p}-promotion"],
    }


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
    underscores) and tags each with ``stack``; keys have no name, so they are reached by tag.
    """
    resources = _deploy_resources(env, config, account, region)
    conditions = {"ThisStacksKeys": {"StringEquals": {"aws:ResourceTag/stack": env}}}
    statements = [*state_statements(env, state_bucket_arn, secrets_key_arn)]
    statements += [
        _allow(sid, [f"{service}:{a}" for a in actions.split()], resources[sid], conditions.get(sid))
        for sid, service, actions in _DEPLOY_ACTIONS
    ]
    statements += role_statements(env, config, account)
    statements += [
        _allow(
            "AutoscalingServiceRole",
            ["iam:CreateServiceLinkedRole"],
            [
                f"arn:aws:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"
            ],
            {"StringEquals": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}},
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


# The services the main program hands its roles to: SageMaker (pipelines, models, feature
# group, tracking server), EventBridge (rule targets), EventBridge Scheduler and Lambda (the
# retraining guard).
PASSED_TO_SERVICES = (
    "sagemaker.amazonaws.com",
    "events.amazonaws.com",
    "scheduler.amazonaws.com",
    "lambda.amazonaws.com",
)
# What gives a role permissions: allowed only with the stack's boundary attached (IAM actions
# taking the iam:PermissionsBoundary condition key). Removing a permission (DeleteRolePolicy,
# DetachRolePolicy) cannot escalate, and must work on roles made before the boundary existed
# (a deploy deletes them), so those are granted on the stack's roles without it.
BOUNDED_ROLE_ACTIONS = (
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePermissionsBoundary",
)
# What would change or remove a boundary: denied to every deploy role, whatever else allows it.
BOUNDARY_CHANGES = (
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:TagPolicy",
    "iam:UntagPolicy",
)


def boundary_arn(account: str, env: str) -> str:
    return permissions_boundary_arn("aws", account, env)


def role_statements(env: str, config: BootstrapConfig, account: str) -> list[dict]:
    """Create and change the stack's roles only with its permissions boundary, pass them only to
    the services that run them, and never touch a boundary."""
    roles = [f"arn:aws:iam::{account}:role/{config.resource_prefix}-{env}-*"]
    boundaries = [f"arn:aws:iam::{account}:policy/{BOUNDARY_POLICY_NAME.format(stack='*')}"]
    return [
        _allow(
            "RolesOnlyWithTheBoundary",
            list(BOUNDED_ROLE_ACTIONS),
            roles,
            {"StringEquals": {"iam:PermissionsBoundary": boundary_arn(account, env)}},
        ),
        _allow(
            "PassTheStacksRolesToTheirServices",
            ["iam:PassRole"],
            roles,
            {"StringEquals": {"iam:PassedToService": list(PASSED_TO_SERVICES)}},
        ),
        {
            "Sid": "NeverRemoveABoundary",
            "Effect": "Deny",
            "Action": ["iam:DeleteRolePermissionsBoundary"],
            "Resource": [f"arn:aws:iam::{account}:role/*"],
        },
        {
            "Sid": "NeverChangeABoundary",
            "Effect": "Deny",
            "Action": list(BOUNDARY_CHANGES),
            "Resource": boundaries,
        },
    ]


def boundary_policy(env: str, config: BootstrapConfig, *, account: str, region: str) -> dict[str, Any]:
    """The most any role of stack ``env`` may do, whatever its own policy says.

    Each statement is one service the platform's runtime roles use, on that stack's resources
    (or, for SageMaker, this account's in this region: pipelines name their jobs
    ``pipelines-<execution>-...``); the actions AWS grants only on "*" are listed one by one.
    The roles' own policies narrow this to what each needs.
    """
    p = f"{config.resource_prefix}-{env}"
    glue = p.replace("-", "_")
    at = f"{region}:{account}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            _allow("TheStacksBuckets", ["s3:*"], [f"arn:aws:s3:::{p}-*", f"arn:aws:s3:::{p}-*/*"]),
            _allow(
                "SageMakerInThisAccountAndRegion",
                ["sagemaker:*", "sagemaker-mlflow:*"],
                [f"arn:aws:sagemaker:{at}:*"],
            ),
            _allow(
                "TheStacksKeys",
                [
                    "kms:Decrypt",
                    "kms:Encrypt",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                    "kms:DescribeKey",
                    "kms:CreateGrant",
                ],
                [f"arn:aws:kms:{at}:key/*"],
                {"StringEquals": {"aws:ResourceTag/stack": env}},
            ),
            _allow(
                "TheStacksImage",
                [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                    # mlops promote finds the source's image in this stack's repository by digest
                    "ecr:DescribeImages",
                ],
                [f"arn:aws:ecr:{at}:repository/{p}"],
            ),
            *_earlier_stacks_model_artifacts(env, config, at),
            _allow(
                "TheStacksLogs",
                [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                [
                    f"arn:aws:logs:{at}:log-group:/aws/sagemaker/*",
                    f"arn:aws:logs:{at}:log-group:/aws/lambda/{p}-*",
                ],
            ),
            _allow(
                "TheStacksCatalog",
                ["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"],
                [
                    f"arn:aws:glue:{at}:catalog",
                    f"arn:aws:glue:{at}:database/{glue}*",
                    f"arn:aws:glue:{at}:table/{glue}*/*",
                ],
            ),
            _allow(
                "TheStacksGitLabTrigger",
                ["events:InvokeApiDestination"],
                [f"arn:aws:events:{at}:api-destination/{p}-*"],
            ),
            _allow(
                "PassTheStacksRolesToSageMaker",
                ["iam:PassRole"],
                [f"arn:aws:iam::{account}:role/{p}-*"],
                {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            *[
                _allow(f"Unscoped{i}", [action], ["*"])
                for i, action in enumerate(
                    (
                        "ecr:GetAuthorizationToken",
                        "cloudwatch:PutMetricData",
                        "sagemaker:ListModelPackages",
                        "sagemaker:Search",
                    )
                )
            ],
        ],
    }


def _earlier_stacks_model_artifacts(env: str, config: BootstrapConfig, at: str) -> list[dict[str, Any]]:
    """The one cross-stack read (``mlops promote``, README "How a model is promoted"): the model
    artifacts the training pipelines of the stacks before ``env`` write, and their keys' Decrypt."""
    earlier = ENVIRONMENTS[: ENVIRONMENTS.index(env)] if env in ENVIRONMENTS else ()
    if not earlier:
        return []
    prefixes = [f"{config.resource_prefix}-{e}" for e in earlier]
    return [
        _allow(
            "EarlierStacksModelArtifacts",
            ["s3:GetObject"],
            [f"arn:aws:s3:::{p}-*/pipelines/{p}-training/*" for p in prefixes],
        ),
        _allow(
            "EarlierStacksKeysDecrypt",
            ["kms:Decrypt"],
            [f"arn:aws:kms:{at}:key/*"],
            {"StringEquals": {"aws:ResourceTag/stack": list(earlier)}},
        ),
    ]


def build_policy(config: BootstrapConfig, *, account: str, region: str) -> dict[str, Any]:
    """Push the image to each environment's repository (and read its scan) and the layer cache
    (``<prefix>-build-cache``, infra/bootstrap/image_repositories.py), nothing else."""
    repos = [
        f"arn:aws:ecr:{region}:{account}:repository/{config.resource_prefix}-{env}"
        for env in (*ENVIRONMENTS, "build-cache")
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
                    "ecr:GetDownloadUrlForLayer",
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
