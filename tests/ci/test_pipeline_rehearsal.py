"""The pipelines run as GitLab would run them, with stand-ins for the tools that reach AWS.

gitlab-ci-local's shell executor runs the real jobs of ``.gitlab-ci.yml`` (rules, needs,
``extends``, variables, before_script, dotenv artifacts between jobs) and the real ``.ci/``
scripts, in a git repository holding this project's pipeline files. ``aws``, ``buildah``,
``pulumi``, ``make``, ``dnf`` and the virtualenv are the fakes of tests/ci/fakes.py; before
``aws`` or ``pulumi`` does anything, it exchanges the job's ID token the way STS would: the
claims GitLab issues that job (from its predefined variables: project, ref, protection,
environment tier), the ``sub`` built from the components the README sets, evaluated against
the trust policies the bootstrap declares. What each image provides is checked apart
(test_images.py); here the jobs' wiring is.

The rehearsal against the local cloud (the bootstrap deployed, the tokens exchanged at the
emulator's STS, the local engine's ``pulumi``) is tests/ci/test_rehearsal_local_cloud.py; this
one shows the same wiring with no AWS at all, in about half a minute.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.ci.fakes import Tools
from tests.ci.test_pulumi_checks import LOCKED
from tests.infra.bootstrap import gitlab_tokens as tokens
from tests.test_gitlab_ci import GITLAB_CI_LOCAL, ROOT, _git

PROJECT = "ml-platform/mlops-platform"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.gitlab-issued.signature"
DASHBOARD = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home#dashboards/dashboard/customer-churn-dev"
VARIABLES = {
    # The project's CI/CD variables (README "Deploying to AWS").
    "AWS_ACCOUNT_ID": "123456789012",
    "AWS_REGION": "eu-west-1",
    "STATE_BUCKET": "mlops-platform-state-123456789012",
    # What GitLab sets and gitlab-ci-local does not: the ID token, the project, its directory.
    "GITLAB_OIDC_TOKEN": ID_TOKEN,
    "CI_PROJECT_PATH": PROJECT,
}


def trusts() -> dict[str, dict]:
    """Role name -> trust policy, as the bootstrap declares them."""
    from tests.infra.harness import bootstrap_stack

    return {
        r.inputs["name"]: json.loads(r.inputs["assumeRolePolicy"])
        for r in bootstrap_stack().of_type("aws:iam/role:Role")
    }


@pytest.fixture
def project(tmp_path):
    """A git repository with the pipeline, its scripts, the Dockerfile and the stack files as
    the adopter commits them (with their encrypted data keys), and the fakes' state."""
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail("gitlab-ci-local is missing: run `make test` (it runs `npm ci`)")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / ".gitlab-ci.yml", repo)
    shutil.copytree(ROOT / ".ci", repo / ".ci")
    for name in ("Dockerfile", "requirements.lock"):
        shutil.copy(ROOT / name, repo)
    for stack in ("dev", "staging", "prod"):
        text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
        (repo / f"Pulumi.{stack}.yaml").write_text(text + "encryptedkey: AQICAHgEXAMPLEKEY==\n")
    (repo / ".gitignore").write_text(".venv/\n.gitlab-ci-local/\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "platform")
    _git(repo, "branch", "feature")
    tools = Tools(
        tmp_path,
        {
            "trusts": trusts(),
            "sub_claim_components": tokens.readme_sub_claim_components(),
            "id_token": ID_TOKEN,
            "stacks": ["dev", "staging", "prod"],
            "outputs": {"dashboardUrl": DASHBOARD},
            "scans": [{"status": "ACTIVE", "critical": "None"}],
        },
    )
    tools.venv(repo)
    return repo, tools


def run_pipeline(project, *args: str, branch: str = "main", protected: bool = True, **variables: str):
    """gitlab-ci-local on ``branch``; returns (exit code, {job: PASS|FAIL}, output)."""
    repo, tools = project
    _git(repo, "checkout", "-q", branch)
    values = {
        **VARIABLES,
        "CI_PROJECT_DIR": str(repo),
        "CI_COMMIT_REF_PROTECTED": "true" if protected else "false",
        **variables,
    }
    command = [str(GITLAB_CI_LOCAL), "--force-shell-executor", *args]
    command += [a for k, v in values.items() for a in ("--variable", f"{k}={v}")]
    result = tools.run(command, cwd=repo, FAKE_PULUMI_VERSION=LOCKED)
    out = result.stdout + result.stderr
    outcomes = {job: outcome for outcome, job in re.findall(r"^\s*(PASS|FAIL)\s+(\S.*?)\s*$", out, re.M)}
    # What `make ci-rehearsal` shows (pytest -s): the pipeline and each job's outcome.
    print(f"\npipeline on {branch} ({' '.join(args) or 'default'}; {variables or 'push'}):")
    print("\n".join(f"  {job:<20} {outcome}" for job, outcome in outcomes.items()))
    return result.returncode, outcomes, out


def test_the_default_branch_pipeline_builds_scans_and_deploys_dev(project):
    code, jobs, out = run_pipeline(project)
    assert code == 0, out[-4000:]
    assert jobs == {"test": "PASS", "build": "PASS", "image-scan": "PASS", "deploy-dev": "PASS"}
    _, tools = project
    # The build's digest reached the deploy through build.env, and verify ran after the update.
    pushed = tools.state["images"]["customer-churn-dev"]
    (digest,) = pushed.values()
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-dev@{digest}"
    calls = tools.calls
    assert f"pulumi config set imageUri {image} --stack dev" in calls
    assert calls.index("pulumi up --stack dev --yes --diff --policy-pack policies") < calls.index(
        "mlops verify --stack dev --outputs outputs-dev.json"
    )


def test_the_manual_promotions_deploy_staging_then_prod(project):
    code, jobs, out = run_pipeline(project, "--manual", "promote-staging", "--manual", "promote-prod")
    assert code == 0, out[-4000:]
    assert jobs["promote-staging"] == jobs["promote-prod"] == "PASS"
    _, tools = project
    ups = [c for c in tools.calls if c.startswith("pulumi up")]
    assert ups == [
        f"pulumi up --stack {s} --yes --diff --policy-pack policies" for s in ("dev", "staging", "prod")
    ]


def test_a_release_tag_on_a_built_commit_pushes_nothing_and_promotes(project):
    code, _, out = run_pipeline(project)
    assert code == 0, out[-4000:]
    _, tools = project
    pushes = len([c for c in tools.calls if c.startswith("buildah push")])
    code, jobs, out = run_pipeline(
        project,
        "--manual",
        "promote-staging",
        "--manual",
        "promote-prod",
        "--unset-variable",
        "CI_COMMIT_BRANCH",
        CI_COMMIT_TAG="v1.4.0",
    )
    assert code == 0, out[-4000:]
    assert jobs == {
        "test": "PASS",
        "build": "PASS",
        "image-scan": "PASS",
        "promote-staging": "PASS",
        "promote-prod": "PASS",
    }
    # ECR refuses a second push of an immutable tag: the release reuses what main pushed.
    assert len([c for c in tools.calls if c.startswith("buildah push")]) == pushes
    assert "exists (sha256:" in out and "not pushed again" in out


def test_a_merge_request_from_a_protected_branch_previews_every_stack(project):
    code, jobs, out = run_pipeline(
        project, branch="feature", CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="4"
    )
    assert code == 0, out[-4000:]
    assert jobs == {
        "test": "PASS",
        "preview: [dev]": "PASS",
        "preview: [staging]": "PASS",
        "preview: [prod]": "PASS",
    }
    _, tools = project
    assert not [c for c in tools.calls if c.startswith(("pulumi up", "buildah"))]


def test_a_trust_that_demands_a_claim_gitlab_cannot_issue_fails_the_job(project):
    _, tools = project
    state = tools.state
    # The subject the bootstrap used to demand: GitLab has no `environment` component.
    statement = state["trusts"]["mlops-platform-deploy-dev"]["Statement"][0]
    statement["Condition"]["StringLike"]["gitlab.com:sub"] = [
        f"project_path:{PROJECT}:ref_type:branch:ref:main:environment:dev"
    ]
    tools.state_path.write_text(json.dumps(state))
    code, jobs, out = run_pipeline(project)
    assert code != 0 and jobs["deploy-dev"] == "FAIL"
    assert "AssumeRoleWithWebIdentity operation: Not authorized" in out
    assert "mlops-platform-deploy-dev does not trust sub" in out and "deployment_tier:development" in out
    assert not [c for c in tools.calls if c.startswith("pulumi up")]


def test_a_job_naming_another_role_fails_the_job(project):
    repo, _ = project
    config = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    config["deploy-dev"]["variables"]["DEPLOY_ROLE"] = "deploy-prod"
    (repo / ".gitlab-ci.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    _git(repo, "commit", "-q", "-am", "deploy-dev assumes the prod role")
    _, jobs, out = run_pipeline(project)
    assert jobs["deploy-dev"] == "FAIL"
    assert "mlops-platform-deploy-prod does not trust sub" in out


def test_a_broken_script_step_fails_the_job_naming_the_command(project):
    repo, _ = project
    deploy = repo / ".ci" / "deploy"
    deploy.write_text(deploy.read_text().replace('export PATH="$PWD/.venv/bin:$PATH"\n', ""))
    _git(repo, "commit", "-q", "-am", "the virtualenv is not on PATH")
    _, jobs, out = run_pipeline(project)
    assert jobs["deploy-dev"] == "FAIL"
    assert "mlops: command not found" in out


def test_an_unprotected_branch_gets_no_aws_role(project):
    # A push to an unprotected main (or a token for one) assumes nothing: the build stops at once.
    _, jobs, out = run_pipeline(project, protected=False)
    assert jobs["build"] == "FAIL"
    assert "mlops-platform-build does not trust sub" in out and "ref_protected:false" in out


def test_gitlab_ci_local_runs_here():
    # The rehearsal's runner: gitlab-ci-local's shell executor needs rsync.
    assert subprocess.run(["rsync", "--version"], capture_output=True).returncode == 0
