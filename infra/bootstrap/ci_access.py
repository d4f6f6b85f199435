"""GitLab CI's way into AWS: the OIDC identity provider and one role per CI duty.

Roles (``infra.bootstrap.policies.role_refs``): ``deploy-<env>`` per environment, ``build``
(push the image), ``preview`` (read state for merge-request previews). Each trusts only this
project's tokens from its protected refs and deployment tier; none has a long-lived key. An
account holds one provider per issuer URL: where it already has GitLab's, the config names it
(``existingOidcProviderArn``) and the roles trust that one. Beside them, each environment's
permissions boundary (``mlops-platform-<env>-boundary``), which every role a deploy creates
must carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.base import BOUNDARY_POLICY_NAME, child_opts
from infra.bootstrap import policies
from infra.bootstrap.config import ENVIRONMENTS, BootstrapConfig


@dataclass(frozen=True)
class CiAccessArgs:
    config: BootstrapConfig
    account: str
    region: str
    state_bucket_arn: pulumi.Input[str]
    secrets_key_arn: pulumi.Input[str]
    tags: dict[str, str]


class CiAccess(pulumi.ComponentResource):
    """Public attributes: ``provider_arn`` and ``role_arns`` (CI role -> ARN)."""

    def __init__(self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:bootstrap:CiAccess", name, None, opts)
        o = child_opts(self)
        cfg = args.config
        if cfg.existing_oidc_provider_arn:
            self.provider_arn: pulumi.Output[str] = pulumi.Output.from_input(cfg.existing_oidc_provider_arn)
        else:
            self.provider_arn = aws.iam.OpenIdConnectProvider(
                f"{name}-gitlab-oidc",
                url=cfg.gitlab_url,
                client_id_lists=[policies.AUDIENCE],
                tags=args.tags,
                opts=o,
            ).arn
        # Each stack's permissions boundary: every role its deploy creates must carry it, and no
        # deploy role may change it (policies.role_statements), so only this program sets it.
        self.boundaries = {
            env: aws.iam.Policy(
                f"{name}-{env}-boundary",
                name=BOUNDARY_POLICY_NAME.format(stack=env),
                description=f"The most any role of the {env} stack may do",
                policy=json.dumps(
                    policies.boundary_policy(env, cfg, account=args.account, region=args.region)
                ),
                tags=args.tags,
                opts=o,
            )
            for env in ENVIRONMENTS
        }
        state = pulumi.Output.all(args.state_bucket_arn, args.secrets_key_arn)
        permissions = {
            f"deploy-{env}": state.apply(
                lambda s, env=env: policies.deploy_policy(
                    env,
                    cfg,
                    account=args.account,
                    region=args.region,
                    state_bucket_arn=s[0],
                    secrets_key_arn=s[1],
                )
            )
            for env in ENVIRONMENTS
        }
        permissions["build"] = pulumi.Output.from_input(
            policies.build_policy(cfg, account=args.account, region=args.region)
        )
        permissions["preview"] = state.apply(lambda s: policies.preview_policy(s[0], s[1]))
        self.role_arns: dict[str, pulumi.Output[str]] = {}
        for role, document in permissions.items():
            resource = aws.iam.Role(
                f"{name}-{role}",
                name=policies.role_name(role),
                description=f"GitLab CI ({cfg.project_path}): {role}",
                assume_role_policy=self.provider_arn.apply(
                    lambda arn, role=role: json.dumps(policies.trust_policy(arn, cfg, role))
                ),
                # Sessions last an hour; a longer deploy (their timeout is 1 h 45 min) gets a new
                # one from the AWS SDK, which re-exchanges the job's token: GitLab issues it for
                # as long as the job's timeout (gitlabhq JwtV2, ttl: build.timeout_value).
                max_session_duration=3600,
                tags=args.tags,
                opts=o,
            )
            aws.iam.RolePolicy(
                f"{name}-{role}-policy", role=resource.id, policy=document.apply(json.dumps), opts=o
            )
            self.role_arns[role] = resource.arn
        self.register_outputs({"provider_arn": self.provider_arn, "role_arns": self.role_arns})
