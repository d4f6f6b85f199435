"""``.ci/deploy`` in a model-promotion pipeline: which stacks deploy, and with which package.

The script runs in a copy of the repository with ``pulumi``, ``mlops`` and the scripts it calls
first (``.ci/venv``, ``.ci/pulumi-checks``: tests/ci) replaced by recorders (no Pulumi CLI here):
what it asks them is what a GitLab job would ask.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/customer-churn-dev/7"
COPY = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/customer-churn-staging/3"


def _tool(path: Path, body: str) -> None:
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "deploy", tmp_path / ".ci" / "deploy")
    bin_ = tmp_path / "bin"
    venv = tmp_path / ".venv" / "bin"
    bin_.mkdir()
    venv.mkdir(parents=True)
    log = tmp_path / "calls.log"
    for script in ("venv", "pulumi-checks"):
        _tool(tmp_path / ".ci" / script, f'echo ".ci/{script} $*" >> {log}')
    # `pulumi stack output promotionRoleArn` answers the role; other outputs are empty.
    _tool(
        bin_ / "pulumi",
        f'echo "pulumi $*" >> {log}\n'
        'if [ "$1 $2 $3" = "stack output promotionRoleArn" ]; then echo arn:aws:iam::111111111111:role/r; fi',
    )
    _tool(
        venv / "mlops",
        f'echo "mlops $*" >> {log}\nif [ "$1" = promote ]; then echo copying >&2; echo {COPY}; fi',
    )
    return tmp_path


def deploy(repo: Path, stack: str, **variables: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = {
        "PATH": f"{repo / 'bin'}:{os.environ['PATH']}",
        "PULUMI_BACKEND_URL": "s3://state",
        "PULUMI_SECRETS_PROVIDER": "awskms://alias/x",
        **variables,
    }
    done = subprocess.run(
        ["bash", str(repo / ".ci" / "deploy"), stack], env=env, capture_output=True, text=True, check=False
    )
    log = repo / "calls.log"
    return done, log.read_text().splitlines() if log.exists() else []


def test_a_later_stack_deploys_the_copy_mlops_promote_printed(repo):
    done, calls = deploy(repo, "staging", MODEL_PACKAGE_ARN=SOURCE, DEPLOY_STACKS="dev staging prod")
    assert done.returncode == 0, done.stderr
    promote = [c for c in calls if c.startswith("mlops promote")]
    assert promote == [
        f"mlops promote --from {SOURCE} --stack staging --role-arn arn:aws:iam::111111111111:role/r"
    ]
    assert f"pulumi config set modelPackageArn {COPY} --stack staging" in calls
    assert any(c.startswith("pulumi up --stack staging") for c in calls)


def test_a_prod_approval_never_deploys_dev(repo):
    done, calls = deploy(
        repo, "dev", MODEL_PACKAGE_ARN=SOURCE, DEPLOY_STACKS="prod", MODEL_SOURCE_STACK="prod"
    )
    assert done.returncode == 0
    assert "dev: not deployed: approved in prod, which deploys prod" in done.stdout
    assert not [c for c in calls if c.startswith(("pulumi up", "mlops promote", "pulumi config set"))]
