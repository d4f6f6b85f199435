"""Issue 20 item 11: the local cloud's ``pulumi`` runs the CI scripts' Pulumi commands unchanged.

``localcloud/bin/pulumi`` is put first on ``PATH`` as a rehearsal does, and the real ``.ci/deploy``
and ``.ci/preview`` run against the emulator (this module's, served on 127.0.0.1) for the dev
stack with the CI variables' shapes (an ``s3://`` state bucket, an ``awskms://`` secrets
provider). Only the steps that are not Pulumi (``make setup``, ``mlops verify``) are left out,
and the test fails if the scripts change shape. Exit codes are the Pulumi CLI's documented ones
(pulumi.com/docs/iac/cli/exit-codes, v3.226.1 and later).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "localcloud" / "bin"
# What the scripts run besides Pulumi: left out here (verify has its own tests). The virtualenv
# step is `make setup` or `.ci/venv`, depending on the scripts' version.
NOT_PULUMI = ("make setup", ".ci/venv", "mlops verify ")


def _ci_script(name: str, into: Path) -> Path:
    lines = (ROOT / ".ci" / name).read_text().splitlines()
    dropped = [line for line in lines if line.startswith(NOT_PULUMI)]
    assert len(dropped) == {"deploy": 3, "preview": 1}[name], f".ci/{name} changed shape: {dropped}"
    path = into / ".ci" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(line for line in lines if not line.startswith(NOT_PULUMI)) + "\n")
    path.chmod(0o755)
    return path


def _env(emulator, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_"))}
    env.update(
        PATH=f"{BIN}:{env['PATH']}",
        PULUMI_HOME=str(home),
        AWS_ENDPOINT_URL=emulator.endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="eu-west-1",
        AWS_DEFAULT_REGION="eu-west-1",
        **extra,
    )
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def ci(fresh, tmp_path):
    """A checkout of the platform (its stack files copied, infra/ linked) and the CI variables,
    with the state bucket and the secrets key the bootstrap makes."""
    fresh.client("s3").create_bucket(
        Bucket="mlops-state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    kms = fresh.client("kms")
    kms.create_alias(AliasName="alias/mlops-secrets", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, checkout / name)
    (checkout / "infra").symlink_to(ROOT / "infra")
    (checkout / "policies").symlink_to(ROOT / "policies")
    (checkout / "model_code").symlink_to(ROOT / "model_code")  # the stack's schema file
    _ci_script("deploy", checkout)
    _ci_script("preview", checkout)
    # The checks a job runs before pulumi, where the scripts have them (the CLI's version against
    # the lock's, the stack file's secrets provider).
    if (ROOT / ".ci" / "pulumi-checks").exists():
        shutil.copy(ROOT / ".ci" / "pulumi-checks", checkout / ".ci" / "pulumi-checks")
        shutil.copy(ROOT / "requirements.lock", checkout / "requirements.lock")
    env = _env(
        fresh,
        tmp_path / "home",
        PULUMI_BACKEND_URL="s3://mlops-state?region=eu-west-1",
        PULUMI_SECRETS_PROVIDER="awskms://alias/mlops-secrets?region=eu-west-1",
        PULUMI_SKIP_UPDATE_CHECK="true",
    )
    return checkout, env


def test_ci_deploy_and_preview_of_dev_run_unchanged_against_the_local_cloud(ci, fresh):
    checkout, env = ci
    # Once per stack, as README "Deploying to AWS" says: created with the CI's secrets provider.
    provider = env["PULUMI_SECRETS_PROVIDER"]
    created = _run(
        ["pulumi", "stack", "select", "--create", "dev", "--secrets-provider", provider], checkout, env
    )
    assert created.returncode == 0, created.stderr
    deployed = _run(["bash", ".ci/deploy", "dev"], checkout, env)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    outputs = json.loads((checkout / "outputs-dev.json").read_text())
    fresh.client("s3").head_bucket(Bucket=outputs["bucket"])
    group = fresh.client("sagemaker").describe_model_package_group(
        ModelPackageGroupName=outputs["modelPackageGroup"]
    )
    assert group["ModelPackageGroupStatus"] == "Completed"
    # The stack was created with the CI's secrets provider: a data key the emulator's KMS holds.
    stack_file = yaml.safe_load((checkout / "Pulumi.dev.yaml").read_text())
    assert stack_file["secretsprovider"] == env["PULUMI_SECRETS_PROVIDER"]
    data_key = fresh.client("kms").decrypt(CiphertextBlob=base64.b64decode(stack_file["encryptedkey"]))
    assert len(data_key["Plaintext"]) == 32
    # The state lives in the backend's bucket, where the next job finds it.
    keys = [o["Key"] for o in fresh.client("s3").list_objects_v2(Bucket="mlops-state")["Contents"]]
    assert keys == [".pulumi/stacks/mlops-platform/dev.json"]

    previewed = _run(["bash", ".ci/preview", "dev"], checkout, env)
    assert previewed.returncode == 0, previewed.stderr[-3000:]
    assert "Preview: stack dev" in (checkout / "preview-dev.txt").read_text()

    # The build's image reaches the next deploy through config set, and its outputs.
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-dev:abc123"
    again = _run(["bash", ".ci/deploy", "dev"], checkout, {**env, "IMAGE_URI_DEV": image})
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((checkout / "outputs-dev.json").read_text())["imageUri"] == image
    shown = _run(["pulumi", "stack", "output", "imageUri", "--stack", "dev"], checkout, env)
    assert (shown.returncode, shown.stdout.strip()) == (0, image)


PROGRAM = """
    import pulumi
    import pulumi_aws as aws

    config = pulumi.Config()
    case = config.get("case") or "ok"
    aws.sns.Topic("first", name="first-topic")
    if case == "protected":
        aws.sns.Topic("kept", name="kept-topic", opts=pulumi.ResourceOptions(protect=True))
    if case == "refused":
        aws.cloudwatch.MetricAlarm("latency-alarm", comparison_operator="GreaterThanSomething",
            evaluation_periods=1, threshold=1, metric_name="ModelLatency", namespace="AWS/SageMaker",
            period=60, statistic="Average")
    pulumi.export("token", config.get_secret("token"))
"""


@pytest.fixture
def tiny(fresh, tmp_path):
    project = tmp_path / "tiny"
    (project / "infra").mkdir(parents=True)
    (project / "infra" / "__main__.py").write_text(textwrap.dedent(PROGRAM))
    (project / "Pulumi.yaml").write_text("name: tiny\nruntime: python\nmain: infra/\n")
    (project / "Pulumi.t.yaml").write_text("# the tiny stack\nconfig:\n  aws:region: eu-west-1\n")
    env = _env(
        fresh,
        tmp_path / "home",
        PULUMI_BACKEND_URL=f"file://{tmp_path / 'backend'}",
        PULUMI_CONFIG_PASSPHRASE="correct horse",
    )
    return project, env


def pulumi(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return _run(["pulumi", *args], project.parent, env)


def test_its_version_is_the_sdks_the_lock_pins(tiny):
    # .ci/pulumi-checks compares `pulumi version` with the lock's pulumi==: the engine runs that SDK.
    project, env = tiny
    pinned = next(
        line for line in (ROOT / "requirements.lock").read_text().splitlines() if line.startswith("pulumi==")
    )
    shown = pulumi(project, env, "version")
    assert (shown.returncode, shown.stdout.strip()) == (0, "v" + pinned.split("==")[1])


def test_stack_init_creates_once(tiny):
    project, env = tiny
    cwd = ["--cwd", str(project)]
    assert pulumi(project, env, "stack", "init", "t", *cwd).returncode == 0
    assert yaml.safe_load((project / "Pulumi.t.yaml").read_text())["encryptionsalt"].startswith("v1:")
    again = pulumi(project, env, "stack", "init", "t", *cwd)
    assert again.returncode == 1 and "stack 't' already exists" in again.stderr


def test_what_it_does_not_support_is_refused_by_name_with_exit_2(tiny):
    project, env = tiny
    cwd = ["--cwd", str(project)]
    whoami = pulumi(project, env, "whoami", *cwd)
    assert whoami.returncode == 2 and "`pulumi whoami` is not supported" in whoami.stderr
    targeted = pulumi(project, env, "up", "--yes", "--target", "urn:x", "--stack", "t", *cwd)
    assert targeted.returncode == 2 and "flag --target is not supported" in targeted.stderr
    unattended = pulumi(project, env, "up", "--stack", "t", *cwd)
    assert unattended.returncode == 2 and "--yes must be passed" in unattended.stderr


def test_a_missing_stack_is_exit_6_and_no_backend_exit_3(tiny):
    project, env = tiny
    missing = pulumi(project, env, "stack", "output", "--json", "--stack", "t", "--cwd", str(project))
    assert missing.returncode == 6 and "no stack named 't' found" in missing.stderr
    selected = pulumi(project, env, "stack", "select", "t", "--cwd", str(project))
    assert selected.returncode == 6
    logged_out = {k: v for k, v in env.items() if k != "PULUMI_BACKEND_URL"}
    nowhere = pulumi(project, logged_out, "preview", "--stack", "t", "--cwd", str(project))
    assert nowhere.returncode == 3 and "not logged in" in nowhere.stderr


def _decrypt_as_pulumi(stack_file: dict, ciphertext: str, passphrase: str) -> str:
    # Pulumi's passphrase scheme, from its source (see tests/localcloud/test_secrets.py).
    salt = base64.b64decode(stack_file["encryptionsalt"].split(":")[1])
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 1_000_000, 32)
    _, nonce, sealed = ciphertext.split(":")
    return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None).decode()


def test_secret_config_is_written_as_pulumi_writes_it_and_outputs_masked(tiny, fresh):
    project, env = tiny
    cwd = ["--cwd", str(project)]
    assert pulumi(project, env, "login", *cwd).returncode == 0
    created = pulumi(
        project, env, "stack", "select", "t", "--create", "--secrets-provider", "passphrase", *cwd
    )
    assert created.returncode == 0, created.stderr
    assert pulumi(project, env, "config", "set", "token", "tok-1234", "--secret", *cwd).returncode == 0
    text = (project / "Pulumi.t.yaml").read_text()
    assert text.startswith("# the tiny stack\n") and "tok-1234" not in text
    stack_file = yaml.safe_load(text)
    secure = stack_file["config"]["tiny:token"]["secure"]
    assert _decrypt_as_pulumi(stack_file, secure, "correct horse") == "tok-1234"

    up = pulumi(project, env, "up", "--yes", *cwd)
    assert up.returncode == 0, up.stderr
    masked = pulumi(project, env, "stack", "output", "--json", *cwd)
    assert json.loads(masked.stdout)["token"] == "[secret]"
    shown = pulumi(project, env, "stack", "output", "token", "--show-secrets", *cwd)
    assert shown.stdout.strip() == "tok-1234"
    assert "tok-1234" not in up.stdout + masked.stdout
    assert [t["TopicArn"].rsplit(":", 1)[-1] for t in fresh.client("sns").list_topics()["Topics"]] == [
        "first-topic"
    ]

    destroyed = pulumi(project, env, "destroy", "--yes", *cwd)
    assert destroyed.returncode == 0, destroyed.stderr
    assert fresh.client("sns").list_topics()["Topics"] == []


def test_a_failed_resource_is_exit_4_and_a_refused_option_stops_before_any_write(tiny, fresh):
    project, env = tiny
    cwd = ["--cwd", str(project)]
    assert pulumi(project, env, "stack", "select", "t", "--create", *cwd).returncode == 0
    assert pulumi(project, env, "config", "set", "case", "protected", *cwd).returncode == 0
    protected = pulumi(project, env, "up", "--yes", *cwd)
    assert protected.returncode == 4
    assert "kept (aws:sns/topic:Topic): resource option protect" in protected.stderr
    # `up` previews first: the refusal came before the first topic was created.
    assert fresh.client("sns").list_topics()["Topics"] == []

    assert pulumi(project, env, "config", "set", "case", "refused", *cwd).returncode == 0
    failed = pulumi(project, env, "up", "--yes", "--skip-preview", *cwd)
    assert failed.returncode == 4, failed.stderr
    assert "latency-alarm" in failed.stderr and "ComparisonOperator" in failed.stderr


def test_refresh_forgets_a_resource_deleted_out_of_band(tiny, fresh):
    project, env = tiny
    cwd = ["--cwd", str(project)]
    assert pulumi(project, env, "stack", "select", "t", "--create", *cwd).returncode == 0
    assert pulumi(project, env, "up", "--yes", *cwd).returncode == 0
    sns = fresh.client("sns")
    sns.delete_topic(TopicArn=sns.list_topics()["Topics"][0]["TopicArn"])
    refreshed = pulumi(project, env, "refresh", "--yes", *cwd)
    assert refreshed.returncode == 0, refreshed.stderr
    previewed = pulumi(project, env, "preview", "--diff", *cwd)
    assert previewed.returncode == 0
    row = next(line for line in previewed.stdout.splitlines() if " first " in line)
    assert "create" in row


def test_an_awskms_stack_keeps_its_secret_config_and_outputs_under_the_emulators_key(tiny, fresh):
    # The CI's provider: a data key the KMS key encrypts, in the stack file as the CLI writes it.
    project, env = tiny
    kms = fresh.client("kms")
    kms.create_alias(AliasName="alias/stack-secrets", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    cwd = ["--cwd", str(project)]
    provider = "awskms://alias/stack-secrets?region=eu-west-1"
    created = pulumi(project, env, "stack", "select", "t", "--create", "--secrets-provider", provider, *cwd)
    assert created.returncode == 0, created.stderr
    assert pulumi(project, env, "config", "set", "token", "tok-kms-77", "--secret", *cwd).returncode == 0
    stack_file = yaml.safe_load((project / "Pulumi.t.yaml").read_text())
    data_key = kms.decrypt(CiphertextBlob=base64.b64decode(stack_file["encryptedkey"]))["Plaintext"]
    _, nonce, sealed = stack_file["config"]["tiny:token"]["secure"].split(":")
    assert AESGCM(data_key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None) == b"tok-kms-77"

    assert pulumi(project, env, "up", "--yes", *cwd).returncode == 0
    state = next((project.parent / "backend").rglob("t.json")).read_text()
    assert "tok-kms-77" not in state
    shown = pulumi(project, env, "stack", "output", "token", "--show-secrets", *cwd)
    assert shown.stdout.strip() == "tok-kms-77"
