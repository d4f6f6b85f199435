"""The bootstrap project (infra/bootstrap) deployed into the local cloud and read back through boto3."""

from __future__ import annotations

import base64
import json
import time

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.engine import ROOT, Engine
from tests.infra.bootstrap.gitlab_tokens import claims, readme_sub_claim_components, subject

PROJECT = ROOT / "infra" / "bootstrap"


@pytest.fixture(scope="module")
def deployed(emulator, tmp_path_factory):
    emulator.reset()
    engine = Engine(
        "bootstrap", emulator.endpoint_url, root=PROJECT, state_dir=tmp_path_factory.mktemp("state")
    )
    return engine, engine.up()


def test_gitlab_is_trusted_through_oidc_for_the_sts_audience_only(deployed, emulator):
    _, result = deployed
    iam = emulator.client("iam")
    (provider,) = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])
    assert found["Url"].endswith("gitlab.com") and found["ClientIDList"] == ["sts.amazonaws.com"]
    for arn in result.outputs["roles"].values():
        role = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]
        (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"] == provider["Arn"]
        assert statement["Condition"]["StringEquals"] == {"gitlab.com:aud": "sts.amazonaws.com"}
        assert all(s.startswith("project_path:ml-platform/mlops-platform:") for s in _subjects(statement))


def _subjects(statement) -> list[str]:
    subjects = statement["Condition"]["StringLike"]["gitlab.com:sub"]
    return [subjects] if isinstance(subjects, str) else subjects


def test_the_state_bucket_is_versioned_private_and_encrypted_with_the_rotated_key(deployed, emulator):
    _, result = deployed
    s3, kms = emulator.client("s3"), emulator.client("kms")
    bucket = result.outputs["STATE_BUCKET"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    key = rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy["Statement"]
    )
    aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert f"alias/{result.outputs['SECRETS_KEY_ALIAS']}" in aliases


def test_the_image_repositories_exist_for_the_first_build(deployed, emulator):
    # CI pushes to <schema>-<env> before that stack's first `pulumi up`.
    _, result = deployed
    ecr = emulator.client("ecr")
    names = [f"customer-churn-{env}" for env in ("dev", "staging", "prod")]
    found = {r["repositoryName"]: r for r in ecr.describe_repositories(repositoryNames=names)["repositories"]}
    for name in names:
        assert found[name]["imageTagMutability"] == "IMMUTABLE"
        assert found[name]["imageScanningConfiguration"] == {"scanOnPush": True}
        assert found[name]["encryptionConfiguration"]["encryptionType"] == "KMS"
        assert ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
    assert result.outputs["imageRepositories"]["prod"] == found["customer-churn-prod"]["repositoryUri"]
    (cache,) = ecr.describe_repositories(repositoryNames=["customer-churn-build-cache"])["repositories"]
    assert cache["imageTagMutability"] == "MUTABLE"


def test_the_command_previews_the_bootstrap_in_the_local_cloud(emulator, monkeypatch, tmp_path, capsys):
    from localcloud import cli

    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
    argv = ["--stack", "bootstrap", "--project", str(PROJECT), "--preview", "--state-dir", str(tmp_path)]
    argv += ["--set", "projectPath=acme/churn"]  # a fork's project, in the bootstrap's namespace
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Preview: stack bootstrap" in out and "aws:iam/openIdConnectProvider:OpenIdConnectProvider" in out


def _token(claims: dict, components: tuple[str, ...], **extra) -> str:
    """A GitLab ID token (a JWT) with the claims GitLab issues and ``sub`` built from ``components``."""
    payload = {**claims, "sub": subject(claims, components), "iss": "https://gitlab.com", **extra}
    payload.setdefault("exp", int(time.time()) + 3600)

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'kid': 'k1', 'typ': 'JWT'})}.{part(payload)}.c2lnbmF0dXJl"


def _assume(emulator, role_arn: str, token: str):
    sts = boto3.client(
        "sts",
        endpoint_url=emulator.endpoint_url,
        region_name="eu-west-1",
        config=Config(signature_version=UNSIGNED),
    )
    return sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName="gitlab-job", WebIdentityToken=token
    )


@pytest.fixture
def roles(deployed):
    _, result = deployed
    return result.outputs["roles"]


def test_a_protected_main_job_for_dev_assumes_the_dev_deploy_role(deployed, emulator, roles):
    components = readme_sub_claim_components()
    token = _token(claims(tier="development"), components)
    credentials = _assume(emulator, roles["deploy-dev"], token)["Credentials"]
    identity = boto3.client(
        "sts",
        endpoint_url=emulator.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    ).get_caller_identity()
    assert identity["Arn"].startswith(
        f"arn:aws:sts::123456789012:assumed-role/{roles['deploy-dev'].rsplit('/', 1)[1]}/"
    )


@pytest.mark.parametrize(
    ("role", "token_claims", "why"),
    [
        ("deploy-prod", {"tier": "development"}, "a dev job's token is refused by the prod role"),
        ("deploy-dev", {"tier": "development", "protected": False}, "an unprotected branch deploys nothing"),
        ("deploy-dev", {"tier": "development", "project": "someone/else"}, "another project is refused"),
    ],
)
def test_sts_refuses_a_token_the_trust_does_not_allow(deployed, emulator, roles, role, token_claims, why):
    token = _token(claims(**token_claims), readme_sub_claim_components())
    with pytest.raises(ClientError) as refused:
        _assume(emulator, roles[role], token)
    assert refused.value.response["Error"]["Code"] == "AccessDenied", why
    assert (
        refused.value.response["Error"]["Message"]
        == "Not authorized to perform sts:AssumeRoleWithWebIdentity"
    )


def test_a_trust_demanding_a_claim_gitlab_cannot_issue_refuses_every_job(deployed, emulator, roles):
    """The defect the CI issue found: a trust on ``:environment:<env>`` in ``sub``, which GitLab
    never puts there (environment is no sub claim component), is satisfied by no token."""
    iam = emulator.client("iam")
    name = roles["deploy-dev"].rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    demanding = json.loads(json.dumps(trust))
    demanding["Statement"][0]["Condition"]["StringLike"]["gitlab.com:sub"] = (
        "project_path:ml-platform/mlops-platform:ref_type:branch:ref:main:environment:dev"
    )
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(demanding))
    try:
        with pytest.raises(ClientError) as refused:
            _assume(
                emulator,
                roles["deploy-dev"],
                _token(claims(tier="development"), readme_sub_claim_components()),
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    finally:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"aud": "https://gitlab.com"}, "InvalidIdentityToken"),
        ({"iss": "https://gitlab.example.net"}, "InvalidIdentityToken"),
        ({"exp": 1}, "ExpiredTokenException"),
    ],
)
def test_sts_refuses_a_token_of_another_audience_issuer_or_an_expired_one(
    deployed, emulator, roles, extra, code
):
    token = _token(claims(tier="development"), readme_sub_claim_components(), **extra)
    with pytest.raises(ClientError) as refused:
        _assume(emulator, roles["deploy-dev"], token)
    assert refused.value.response["Error"]["Code"] == code


# Last: it destroys the bootstrap the tests above use.
def test_a_second_deploy_changes_nothing_and_destroy_leaves_no_role_or_provider(deployed, emulator):
    engine, _ = deployed
    again = engine.up()
    assert {o.op for o in again.operations} == {"same"} and again.writes == 0
    engine.destroy()
    iam = emulator.client("iam")
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert iam.list_roles()["Roles"] == []
    assert emulator.client("s3").list_buckets()["Buckets"] == []
