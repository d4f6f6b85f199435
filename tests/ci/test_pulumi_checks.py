"""``.ci/pulumi-checks`` and the committed stack files: the CLI version and the secrets provider.

``pulumi stack select --create --secrets-provider`` ignores the flag for a stack that exists
(pulumi/pulumi#5650), so the provider and its encrypted data key must be in the committed
``Pulumi.<stack>.yaml``; the CLI must be the version of the SDK the lock pins.
"""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.ci.fakes import Tools
from tests.test_gitlab_ci import ROOT

LOCKED = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M).group(1)
BOOTSTRAP = re.search(
    r'key_alias = "(alias/[^"]+)"', (ROOT / "infra" / "bootstrap" / "__main__.py").read_text()
)[1]


def checkout(tmp_path, stack_file: str):
    """A copy of the scripts, the lock and a stack file, as a job's checkout has them."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "pulumi-checks", repo / ".ci" / "pulumi-checks")
    shutil.copy(ROOT / "requirements.lock", repo / "requirements.lock")
    (repo / "Pulumi.dev.yaml").write_text(stack_file)
    return repo


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_ci_stack_file_names_the_bootstraps_kms_key_as_its_secrets_provider(stack):
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    region = data["config"]["aws:region"]
    assert data["secretsprovider"] == f"awskms://{BOOTSTRAP}?region={region}"


def test_a_cli_other_than_the_locked_sdk_is_refused(tmp_path):
    repo = checkout(tmp_path, (ROOT / "Pulumi.dev.yaml").read_text() + "encryptedkey: AQICAHg=\n")
    tools = Tools(tmp_path, {})
    result = tools.run([str(repo / ".ci" / "pulumi-checks"), "dev"], cwd=repo, FAKE_PULUMI_VERSION="3.142.0")
    assert result.returncode == 1
    assert f"pulumi CLI v3.142.0 is not the SDK's version v{LOCKED}" in result.stderr
    ok = tools.run([str(repo / ".ci" / "pulumi-checks"), "dev"], cwd=repo, FAKE_PULUMI_VERSION=LOCKED)
    assert ok.returncode == 0, ok.stderr


def test_a_stack_file_without_its_encrypted_key_stops_the_job_saying_what_to_do(tmp_path):
    repo = checkout(tmp_path, (ROOT / "Pulumi.dev.yaml").read_text())
    result = Tools(tmp_path, {}).run(
        [str(repo / ".ci" / "pulumi-checks"), "dev"], cwd=repo, FAKE_PULUMI_VERSION=LOCKED
    )
    assert result.returncode == 1
    assert "Pulumi.dev.yaml has no secretsprovider: awskms://... and encryptedkey" in result.stderr
    assert "pulumi stack select --create dev --secrets-provider" in result.stderr


def test_the_pipeline_runs_the_cli_of_the_locked_sdk():
    config = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    assert config["variables"]["PULUMI_IMAGE"] == f"pulumi/pulumi-python-3.11:{LOCKED}"
