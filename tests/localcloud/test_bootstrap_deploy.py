"""The bootstrap project (infra/bootstrap) deployed into the local cloud and read back through boto3."""

from __future__ import annotations

import json

import pytest

from localcloud.engine import ROOT, Engine

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


def test_a_second_deploy_changes_nothing_and_destroy_leaves_no_role_or_provider(deployed, emulator):
    engine, _ = deployed
    again = engine.up()
    assert {o.op for o in again.operations} == {"same"} and again.writes == 0
    engine.destroy()
    iam = emulator.client("iam")
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert iam.list_roles()["Roles"] == []
    assert emulator.client("s3").list_buckets()["Buckets"] == []
