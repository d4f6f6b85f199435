"""The bootstrap project under mocks: OIDC provider, CI roles and their trust, state backend."""

from __future__ import annotations

import fnmatch
import json

import pytest

from infra.bootstrap import config as config_mod
from infra.bootstrap import policies
from tests.infra.bootstrap import gitlab_tokens as tokens
from tests.infra.harness import bootstrap_stack

PROJECT = "ml-platform/mlops-platform"


def roles() -> dict[str, dict]:
    rec = bootstrap_stack()
    return {r.inputs["name"]: r.inputs for r in rec.of_type("aws:iam/role:Role")}


def role_policy(role: str) -> dict:
    rec = bootstrap_stack()
    found = [p for p in rec.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == f"ci-{role}-policy"]
    return json.loads(found[0].inputs["policy"])


def trust(role: str) -> dict:
    return json.loads(roles()[policies.role_name(role)]["assumeRolePolicy"])


# What the README tells the adopter to set, checked against GitLab's own list.
COMPONENTS = tokens.readme_sub_claim_components()
ALL_ROLES = ("deploy-dev", "deploy-staging", "deploy-prod", "build", "preview")
TIERS = ("production", "staging", "testing", "development", "other")


def may_assume(role: str, token: dict[str, str]) -> bool:
    return tokens.may_assume(trust(role), token, COMPONENTS)


def test_gitlab_is_the_identity_provider_for_sts():
    provider = bootstrap_stack().one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs
    assert provider["url"] == "https://gitlab.com"
    assert provider["clientIdLists"] == ["sts.amazonaws.com"]


def test_one_deploy_role_per_environment_and_a_build_and_preview_role():
    assert set(roles()) == {
        f"mlops-platform-{r}" for r in ("deploy-dev", "deploy-staging", "deploy-prod", "build", "preview")
    }


def test_the_readme_sets_only_components_gitlab_issues():
    # GitLab refuses anything else (the former ["project_path", "ref_type", "ref", "environment"]).
    assert tokens.check_components(COMPONENTS) == COMPONENTS
    # ... and the ones the trust policies are written for.
    assert COMPONENTS == policies.SUB_CLAIM_COMPONENTS
    with pytest.raises(tokens.SubClaimRefused, match="environment"):
        tokens.check_components(("project_path", "ref_type", "ref", "environment"))


@pytest.mark.parametrize(
    ("role", "tier"),
    [("deploy-dev", "development"), ("deploy-staging", "staging"), ("deploy-prod", "production")],
)
def test_each_deploy_role_trusts_only_its_tier_on_the_protected_default_branch(role, tier):
    assert may_assume(role, tokens.claims(tier=tier))
    assert not any(may_assume(role, tokens.claims(tier=other)) for other in TIERS if other != tier)
    # A job without an environment has no deployment_tier in its subject.
    assert not may_assume(role, tokens.claims(tier=None))


def test_a_development_job_cannot_assume_the_prod_role():
    dev_job = tokens.claims(tier="development")
    assert may_assume("deploy-dev", dev_job) and not may_assume("deploy-prod", dev_job)


@pytest.mark.parametrize("tier", [*TIERS, None])
@pytest.mark.parametrize("role", ALL_ROLES)
def test_an_unprotected_ref_assumes_no_role(role, tier):
    assert not may_assume(role, tokens.claims(ref="main", protected=False, tier=tier))
    assert not may_assume(role, tokens.claims(ref="feature-x", protected=False, tier=tier))


def test_release_tags_reach_staging_prod_and_build_but_not_dev():
    tag = {"ref": "v1.4.0", "ref_type": "tag"}
    assert may_assume("deploy-prod", tokens.claims(**tag, tier="production"))
    assert may_assume("deploy-staging", tokens.claims(**tag, tier="staging"))
    assert may_assume("build", tokens.claims(**tag, tier="other"))
    assert not may_assume("deploy-dev", tokens.claims(**tag, tier="development"))


@pytest.mark.parametrize(
    "token",
    [
        tokens.claims(ref="feature", tier="production"),  # a protected branch that is not main
        tokens.claims(project="someone/fork", tier="production"),  # another project
        tokens.claims(aud="https://gitlab.com", tier="production"),  # minted for another audience
        tokens.claims(ref="main", ref_type="tag", tier="production"),  # a tag named like the branch
    ],
    ids=["other-protected-branch", "other-project", "other-audience", "tag-named-main"],
)
def test_prod_refuses_every_other_token(token):
    assert not may_assume("deploy-prod", token)


def test_a_merge_request_preview_needs_a_protected_branch_and_cannot_deploy():
    protected = tokens.claims(ref="feature-x", tier="testing")
    assert may_assume("preview", protected)
    # An unprotected branch's unreviewed code never gets the role that decrypts every stack's secrets.
    assert not may_assume("preview", tokens.claims(ref="feature-x", protected=False, tier="testing"))
    assert not any(may_assume(f"deploy-{env}", protected) for env in ("dev", "staging", "prod"))
    actions = {a for s in role_policy("preview")["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "kms:Decrypt"}


def test_an_existing_gitlab_provider_is_trusted_instead_of_a_new_one():
    arn = "arn:aws:iam::123456789012:oidc-provider/gitlab.com"
    rec = bootstrap_stack((("mlops-bootstrap:existingOidcProviderArn", arn),))
    assert not rec.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    for role in rec.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Federated": arn}


def test_a_deploy_role_writes_only_its_own_stacks_state():
    written = next(s for s in role_policy("deploy-staging")["Statement"] if s["Sid"] == "ThisStacksState")
    bucket = bootstrap_stack().one("aws:s3/bucket:Bucket").outputs["arn"]
    assert any(
        fnmatch.fnmatchcase(f"{bucket}/.pulumi/stacks/mlops-platform/staging.json", r)
        for r in written["Resource"]
    )
    assert not any(
        fnmatch.fnmatchcase(f"{bucket}/.pulumi/stacks/mlops-platform/prod.json", r)
        for r in written["Resource"]
    )


def test_deploy_permissions_stay_on_their_environments_resources():
    state = bootstrap_stack().one("aws:s3/bucket:Bucket").outputs["arn"]
    for statement in role_policy("deploy-dev")["Statement"]:
        if statement["Effect"] == "Deny":  # what no deploy role may do, anywhere
            continue
        for resource in statement["Resource"]:
            if (
                resource == "*"
                or ":kms:" in resource
                or resource.startswith(state)
                or "aws-service-role" in resource
            ):
                continue
            assert (
                "customer-churn-dev" in resource
                or "customer_churn_dev" in resource
                or resource.endswith(":catalog")
            ), (statement["Sid"], resource)


def test_the_state_bucket_is_versioned_and_encrypted_with_the_secrets_key():
    rec = bootstrap_stack()
    assert rec.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"
    }
    key = rec.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    rule = rec.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert (
        rule.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key.outputs["arn"]
    )
    assert rec.one("aws:kms/alias:Alias").inputs["name"] == "alias/mlops-platform-pulumi-secrets"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "projectPath",
            "no-group",
            "mlops-bootstrap:projectPath: 'no-group' is not valid; expected <group>/<project>",
        ),
        ("gitlabUrl", "http://gitlab.com", "mlops-bootstrap:gitlabUrl: 'http://gitlab.com' is not valid"),
        ("releaseTagPattern", "v*:ref_protected:true", "mlops-bootstrap:releaseTagPattern"),
        (
            "existingOidcProviderArn",
            "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com",
            "mlops-bootstrap:existingOidcProviderArn: .* expected the ARN of the account's provider for "
            "https://gitlab.com",
        ),
        ("projectPath", None, "mlops-bootstrap:projectPath: missing"),
    ],
)
def test_bad_config_names_the_key(key, value, message):
    values = {
        "owner": "team",
        "gitlabUrl": "https://gitlab.com",
        "projectPath": PROJECT,
        "defaultBranch": "main",
        "releaseTagPattern": "v*",
        "resourcePrefix": "customer-churn",
        key: value,
    }
    with pytest.raises(config_mod.BootstrapConfigError, match=message):
        config_mod.validate(values)


def test_the_image_repositories_exist_before_any_stack():
    # CI's build pushes to <schema>-<env> before that stack's first `pulumi up`.
    rec = bootstrap_stack()
    repositories = {r.inputs["name"]: r.inputs for r in rec.of_type("aws:ecr/repository:Repository")}
    for env in ("dev", "staging", "prod"):
        repository = repositories[f"customer-churn-{env}"]
        assert repository["imageTagMutability"] == "IMMUTABLE"
        assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
        assert (
            repository["encryptionConfigurations"][0]["kmsKey"] == rec.one("aws:kms/key:Key").outputs["arn"]
        )
    assert repositories["customer-churn-build-cache"]["imageTagMutability"] == "MUTABLE"
    lifecycles = {p.inputs["repository"] for p in rec.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")}
    assert lifecycles == set(repositories)


def test_the_build_role_may_push_to_every_repository_and_read_the_cache():
    (push,) = [s for s in role_policy("build")["Statement"] if s["Sid"] == "Push"]
    assert {r.rsplit("/", 1)[1] for r in push["Resource"]} == {
        "customer-churn-dev",
        "customer-churn-staging",
        "customer-churn-prod",
        "customer-churn-build-cache",
    }
    assert {"ecr:PutImage", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"} <= set(push["Action"])


# -- what a deploy role may do with roles: the permissions boundary -------------------------------

# IAM's actions that take the iam:PermissionsBoundary condition key for roles and give a role
# permissions (Service Authorization Reference, "Actions defined by AWS Identity and Access
# Management"); DeleteRolePolicy and DetachRolePolicy take it too but only remove permissions.
BOUNDARY_CONDITIONED = {
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePermissionsBoundary",
}
ACCOUNT = "123456789012"


def _allowed(policy: dict, action: str) -> list[dict]:
    return [
        s
        for s in policy["Statement"]
        if s["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in s["Action"])
    ]


def _denied(policy: dict, action: str) -> list[dict]:
    return [
        s
        for s in policy["Statement"]
        if s["Effect"] == "Deny" and any(fnmatch.fnmatchcase(action, a) for a in s["Action"])
    ]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_a_deploy_role_creates_or_changes_a_role_only_with_its_stacks_boundary(env):
    policy = role_policy(f"deploy-{env}")
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/mlops-platform-{env}-boundary"
    for action in sorted(BOUNDARY_CONDITIONED):
        statements = _allowed(policy, action)
        assert statements, action
        for s in statements:
            assert s["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": boundary}}, action


def test_a_deploy_role_removes_the_roles_it_replaced_though_they_predate_the_boundary():
    # The role-per-pipeline change deletes the old shared role, made without a boundary.
    policy = role_policy("deploy-dev")
    old = f"arn:aws:iam::{ACCOUNT}:role/customer-churn-dev-pipelines"
    for action in ("iam:DeleteRolePolicy", "iam:DeleteRole"):
        grants = _allowed(policy, action)
        assert any(
            "Condition" not in s and any(fnmatch.fnmatchcase(old, r) for r in s["Resource"]) for s in grants
        ), action


def test_a_deploy_role_never_changes_or_removes_a_boundary():
    policy = role_policy("deploy-prod")
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/mlops-platform-prod-boundary"
    assert _denied(policy, "iam:DeleteRolePermissionsBoundary")
    for action in ("iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:SetDefaultPolicyVersion"):
        [deny] = _denied(policy, action)
        assert any(fnmatch.fnmatchcase(boundary, r) for r in deny["Resource"]), action
        assert not _allowed(policy, action), action


def test_every_boundary_exists_and_reaches_only_its_stacks_resources():
    boundaries = {p.inputs["name"]: p.inputs for p in bootstrap_stack().of_type("aws:iam/policy:Policy")}
    assert set(boundaries) == {f"mlops-platform-{env}-boundary" for env in ("dev", "staging", "prod")}
    dev = json.loads(boundaries["mlops-platform-dev-boundary"]["policy"])
    for s in dev["Statement"]:
        for resource in s["Resource"]:
            assert "staging" not in resource and "prod" not in resource, (s["Sid"], resource)


def test_a_role_is_passed_only_to_the_services_that_run_it():
    for env in ("dev", "prod"):
        for s in _allowed(role_policy(f"deploy-{env}"), "iam:PassRole"):
            services = s["Condition"]["StringEquals"]["iam:PassedToService"]
            assert set(services) == {
                "sagemaker.amazonaws.com",
                "events.amazonaws.com",
                "scheduler.amazonaws.com",
                "lambda.amazonaws.com",
            }


def test_every_role_of_a_stack_carries_the_boundary_its_deploy_role_demands():
    from tests.infra.harness import committed_stack

    [demand] = _allowed(role_policy("deploy-staging"), "iam:CreateRole")
    boundary = demand["Condition"]["StringEquals"]["iam:PermissionsBoundary"]
    roles = committed_stack("staging", True).of_type("aws:iam/role:Role")
    assert roles and {r.inputs.get("permissionsBoundary") for r in roles} == {boundary}


def test_the_deploy_role_reads_log_groups_as_the_provider_does_and_owns_the_endpoints_log_group():
    policy = role_policy("deploy-dev")
    # terraform-provider-aws reads a log group only through DescribeLogGroups, on "*".
    assert any("*" in s["Resource"] for s in _allowed(policy, "logs:DescribeLogGroups"))
    endpoint_group = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/customer-churn-dev"
    for action in (
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "logs:AssociateKmsKey",
        "logs:DeleteLogGroup",
    ):
        assert any(
            fnmatch.fnmatchcase(endpoint_group, r) for s in _allowed(policy, action) for r in s["Resource"]
        ), action


def test_the_deploy_role_holds_what_create_feature_group_needs_with_an_online_store_key():
    # OnlineStoreSecurityConfig: the caller of CreateFeatureGroup needs these on the key.
    policy = role_policy("deploy-dev")
    for action in (
        "kms:RetireGrant",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:ListAliases",
        "kms:ListGrants",
        "kms:RevokeGrant",
        "kms:CreateGrant",
        "kms:DescribeKey",
    ):
        assert _allowed(policy, action), action


@pytest.mark.parametrize("role", ["deploy-dev", "deploy-staging", "deploy-prod", "build", "preview"])
def test_each_ci_role_policy_fits_iams_inline_policy_limit(role):
    # IAM: a role's inline policies total at most 10,240 characters, whitespace not counted.
    assert len(json.dumps(role_policy(role), separators=(",", ":"))) < 10_240


def _boundary_allows(boundary: dict, action: str, resource: str) -> bool:
    """Whether an Allow of the boundary matches (action, resource), IAM's wildcards as fnmatch;
    conditions aside (they narrow, checked where they are granted)."""
    return any(
        s["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in s["Action"])
        and any(fnmatch.fnmatchcase(resource, r) for r in s["Resource"])
        for s in boundary["Statement"]
    )


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_boundary_allows_everything_the_stacks_roles_are_granted(env):
    # A grant outside the boundary would fail on AWS with AccessDenied however the role's own
    # policy reads; every (action, resource) each role of the stack holds must lie inside it.
    from tests.infra.harness import committed_stack

    [boundary] = [
        json.loads(p.inputs["policy"])
        for p in bootstrap_stack().of_type("aws:iam/policy:Policy")
        if p.inputs["name"] == f"mlops-platform-{env}-boundary"
    ]
    rec = committed_stack(env, True)
    # The harness gives placeholder ARNs; the roles' resources below are built from the
    # program's names, with the bucket and key ARNs as AWS gives them.
    bucket = rec.one("aws:s3/bucket:Bucket")
    key = rec.one("aws:kms/key:Key")
    real = {
        bucket.outputs["arn"]: f"arn:aws:s3:::{bucket.inputs['bucket']}",
        key.outputs["arn"]: f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd",
        **{
            r.outputs["arn"]: f"arn:aws:iam::{ACCOUNT}:role/{r.inputs['name']}"
            for r in rec.of_type("aws:iam/role:Role")
        },
        **{
            g.outputs["arn"]: f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{g.inputs['name']}"
            for g in rec.of_type("aws:cloudwatch/logGroup:LogGroup")
        },
    }
    outside = []
    for policy in rec.of_type("aws:iam/rolePolicy:RolePolicy"):
        text = policy.inputs["policy"]
        for placeholder, arn in real.items():
            text = text.replace(placeholder, arn)
        for s in json.loads(text)["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            for action in actions:
                for resource in resources:
                    if (
                        ":iam:" not in resource
                        and "arn:aws:" in resource
                        and f":{ACCOUNT}:" not in resource
                        and ":s3:::" not in resource
                    ):
                        continue  # another placeholder (a mock ARN): checked by name elsewhere
                    if not _boundary_allows(boundary, action, resource):
                        outside.append((policy.name, action, resource))
    assert outside == []
