"""The bootstrap program: what GitLab CI needs before the first deploy, run once per account.

    StateBackend (state bucket, secrets key) ─┬─► CiAccess (GitLab OIDC provider, CI roles)
                                              └─► ImageRepositories (ECR, one per stack, build cache)

Run it from ``infra/bootstrap`` with a local backend (README "Deploying to AWS"); its outputs
are the CI variables the main pipeline reads.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.base import standard_tags
from infra.bootstrap import config as config_mod
from infra.bootstrap.ci_access import CiAccess, CiAccessArgs
from infra.bootstrap.config import ENVIRONMENTS
from infra.bootstrap.image_repositories import ImageRepositories, ImageRepositoriesArgs
from infra.bootstrap.state_backend import StateBackend, StateBackendArgs

config = config_mod.load()
account = aws.get_caller_identity().account_id
region = aws.get_region().region
tags = standard_tags(pulumi.get_stack(), config.owner)
key_alias = "alias/mlops-platform-pulumi-secrets"

backend = StateBackend(
    "state",
    StateBackendArgs(bucket_name=f"mlops-platform-state-{account}", key_alias=key_alias, tags=tags),
)
repositories = ImageRepositories(
    "images",
    ImageRepositoriesArgs(
        resource_prefix=config.resource_prefix,
        environments=ENVIRONMENTS,
        kms_key_arn=backend.key_arn,
        tags=tags,
    ),
)
access = CiAccess(
    "ci",
    CiAccessArgs(
        config=config,
        account=account,
        region=region,
        state_bucket_arn=backend.bucket_arn,
        secrets_key_arn=backend.key_arn,
        tags=tags,
    ),
)

pulumi.export("STATE_BUCKET", backend.bucket.bucket)
pulumi.export("SECRETS_KEY_ALIAS", key_alias.removeprefix("alias/"))
pulumi.export("AWS_ACCOUNT_ID", account)
pulumi.export("AWS_REGION", region)
pulumi.export("roles", access.role_arns)
pulumi.export("imageRepositories", repositories.urls)
