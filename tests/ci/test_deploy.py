"""``.ci/deploy``: the order of a deploy, and that nothing is changed when a check fails.

Run in a copy of the checkout with a fake ``pulumi`` and a fake virtualenv (tests/ci/fakes.py).
"""

from __future__ import annotations

import shutil

import pytest

from tests.ci.fakes import Tools
from tests.ci.test_pulumi_checks import LOCKED
from tests.test_gitlab_ci import ROOT

DASHBOARD = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards/dashboard/customer-churn-dev"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-dev@sha256:" + "b" * 64


@pytest.fixture
def checkout(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    for script in ("deploy", "venv", "pulumi-checks"):
        shutil.copy(ROOT / ".ci" / script, repo / ".ci" / script)
    shutil.copy(ROOT / "requirements.lock", repo / "requirements.lock")
    # As created once by the adopter (README "Deploying to AWS"): with its encrypted data key.
    (repo / "Pulumi.dev.yaml").write_text((ROOT / "Pulumi.dev.yaml").read_text() + "encryptedkey: AQICAHg=\n")
    return repo


def deploy(checkout, **state):
    tools = Tools(checkout.parent, {"stacks": ["dev"], "outputs": {"dashboardUrl": DASHBOARD}, **state})
    tools.venv(checkout)
    env = {"FAKE_PULUMI_VERSION": LOCKED, "PULUMI_BACKEND_URL": "s3://state?region=eu-west-1"}
    result = tools.run([str(checkout / ".ci" / "deploy"), "dev"], cwd=checkout, **env, IMAGE_URI_DEV=IMAGE)
    return tools, result


def test_a_deploy_installs_checks_updates_then_verifies_and_links_the_dashboard(checkout):
    tools, result = deploy(checkout)
    assert result.returncode == 0, result.stderr
    steps = [c.split()[0] + " " + c.split()[1] for c in tools.calls]
    assert steps.index("python -m") < steps.index("pulumi version") < steps.index("pulumi up")
    assert steps.index("pulumi up") < steps.index("mlops verify")
    assert f"pulumi config set imageUri {IMAGE} --stack dev" in tools.calls
    # The stack exists (made once by the adopter): select, never create with a flag it ignores.
    assert "pulumi stack select dev" in tools.calls
    assert (checkout / "deploy.env").read_text() == f"DYNAMIC_ENVIRONMENT_URL={DASHBOARD}\n"


def test_drift_fails_the_deploy_only_when_the_project_asks(checkout):
    tools = Tools(checkout.parent, {"stacks": ["dev"], "outputs": {}})
    tools.venv(checkout)
    env = {
        "FAKE_PULUMI_VERSION": LOCKED,
        "PULUMI_BACKEND_URL": "s3://state",
        "VERIFY_FLAGS": "--fail-on-drift",
    }
    assert tools.run([str(checkout / ".ci" / "deploy"), "dev"], cwd=checkout, **env).returncode == 0
    assert tools.calls[-1] == "mlops verify --stack dev --outputs outputs-dev.json --fail-on-drift"


def test_a_failed_check_stops_the_deploy_before_anything_changes(checkout):
    (checkout / "Pulumi.dev.yaml").write_text((ROOT / "Pulumi.dev.yaml").read_text())
    tools, result = deploy(checkout)
    assert result.returncode == 1
    assert "Pulumi.dev.yaml has no secretsprovider" in result.stderr
    assert not [c for c in tools.calls if c.startswith(("pulumi login", "pulumi up", "pulumi config"))]


def test_a_stack_nobody_created_stops_the_deploy_naming_it(checkout):
    tools, result = deploy(checkout, stacks=[])
    assert result.returncode == 6
    assert "no stack named 'dev' found" in result.stderr
    assert not [c for c in tools.calls if c.startswith(("pulumi up", "pulumi config"))]
