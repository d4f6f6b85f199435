"""The GitLab pipeline: valid for GitLab, and the jobs each kind of pipeline gets.

The jobs are listed by gitlab-ci-local (installed by ``make`` from package-lock.json), which
evaluates the rules the way GitLab builds a pipeline, in a throwaway git repository holding
this project's ``.gitlab-ci.yml`` on ``main`` (the default branch it reads).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GITLAB_CI_LOCAL = ROOT / "node_modules" / ".bin" / "gitlab-ci-local"
MODEL = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn-dev/7"
# The variables GitLab sets for each kind of pipeline; a merge-request or tag pipeline has no
# CI_COMMIT_BRANCH.
PIPELINES = {
    "merge-request": (
        "feature",
        ["CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=4", "CI_COMMIT_REF_PROTECTED=true"],
        ["CI_COMMIT_BRANCH"],
    ),
    "merge-request-unprotected": (
        "feature",
        ["CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=5", "CI_COMMIT_REF_PROTECTED=false"],
        ["CI_COMMIT_BRANCH"],
    ),
    "default-branch": ("main", [], []),
    "release": ("main", ["CI_COMMIT_TAG=v1.4.0"], ["CI_COMMIT_BRANCH"]),
    "model-approval": ("main", ["CI_PIPELINE_SOURCE=trigger", f"MODEL_PACKAGE_ARN={MODEL}"], []),
    "feature-branch": ("feature", [], []),
    "schedule": ("main", ["CI_PIPELINE_SOURCE=schedule"], []),
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail("gitlab-ci-local is missing: run `make test` (it runs `npm ci`)")
    path = tmp_path_factory.mktemp("gitlab")
    shutil.copy(ROOT / ".gitlab-ci.yml", path / ".gitlab-ci.yml")
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", ".gitlab-ci.yml")
    _git(path, "commit", "-q", "-m", "ci")
    _git(path, "branch", "feature")
    return path


@pytest.fixture(scope="module")
def pipelines(repo) -> dict[str, dict[str, dict]]:
    """kind -> {job name: job} for the jobs that pipeline gets (``when`` is not never)."""
    found = {}
    for kind, (branch, variables, unset) in PIPELINES.items():
        _git(repo, "checkout", "-q", branch)
        args = [str(GITLAB_CI_LOCAL), "--list-json"]
        args += [a for v in variables for a in ("--variable", v)]
        args += [a for v in unset for a in ("--unset-variable", v)]
        out = subprocess.run(args, cwd=repo, check=True, capture_output=True, text=True).stdout
        jobs = json.loads(out[re.search(r"^\[", out, re.M).start() :])
        found[kind] = {j["name"]: j for j in jobs if j["when"] != "never"}
    return found


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())


@pytest.fixture(scope="module")
def expanded(repo) -> dict:
    """The configuration as gitlab-ci-local resolves it (``extends`` merged, as GitLab does)."""
    _git(repo, "checkout", "-q", "main")
    out = subprocess.run(
        [str(GITLAB_CI_LOCAL), "--preview"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout
    return yaml.safe_load(out[out.index("---") :])


def needs(pipeline: dict[str, dict], job: str) -> set[str]:
    """What ``job`` waits for in this pipeline: optional needs of absent jobs drop out, as in GitLab."""
    return {
        n["job"] for n in pipeline[job].get("needs") or [] if not n.get("optional") or n["job"] in pipeline
    }


def test_the_file_validates_against_gitlabs_schema():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci", ".gitlab-ci.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stages_run_in_promotion_order(config):
    assert config["stages"] == ["test", "preview", "deploy-dev", "promote-staging", "promote-prod"]


def test_a_merge_request_is_tested_and_previewed_on_every_stack_and_deploys_nothing(pipelines):
    mr = pipelines["merge-request"]
    assert set(mr) == {"test", "preview: [dev]", "preview: [staging]", "preview: [prod]"}
    assert all(needs(mr, f"preview: [{s}]") == {"test"} for s in ("dev", "staging", "prod"))


def test_a_merge_request_from_an_unprotected_branch_gets_no_preview(pipelines):
    # The preview role decrypts every stack's secrets; unreviewed code never assumes it.
    assert set(pipelines["merge-request-unprotected"]) == {"test"}


def test_previews_are_kept_as_artifacts(config):
    assert config["preview"]["artifacts"]["paths"] == ["preview-$STACK.txt"]
    assert "pulumi preview --stack" in (ROOT / ".ci" / "preview").read_text()


def test_the_default_branch_builds_scans_deploys_dev_and_waits_for_people(pipelines):
    main = pipelines["default-branch"]
    assert set(main) == {"test", "build", "image-scan", "deploy-dev", "promote-staging", "promote-prod"}
    assert main["deploy-dev"]["when"] == "on_success"
    assert needs(main, "deploy-dev") == {"test", "build", "image-scan"}
    assert main["promote-staging"]["when"] == main["promote-prod"]["when"] == "manual"
    # Blocking manual jobs: prod cannot start before staging succeeded.
    assert main["promote-staging"]["allow_failure"] is False
    assert needs(main, "promote-staging") >= {"deploy-dev", "image-scan"}
    assert needs(main, "promote-prod") >= {"promote-staging", "image-scan"}


def test_a_release_tag_promotes_to_staging_then_prod_without_dev(pipelines):
    release = pipelines["release"]
    assert set(release) == {"test", "build", "image-scan", "promote-staging", "promote-prod"}
    assert needs(release, "promote-staging") == {"build", "image-scan"}
    assert needs(release, "promote-prod") >= {"promote-staging"}
    assert release["promote-prod"]["when"] == "manual"


def test_a_model_approval_only_deploys_through_the_same_gates(pipelines):
    model = pipelines["model-approval"]
    assert set(model) == {"deploy-dev", "promote-staging", "promote-prod"}
    assert model["deploy-dev"]["when"] == "on_success"
    assert model["promote-staging"]["when"] == model["promote-prod"]["when"] == "manual"
    assert needs(model, "promote-staging") == {"deploy-dev"}
    assert needs(model, "promote-prod") == {"promote-staging"}


def test_prod_never_runs_from_another_branch(pipelines):
    assert set(pipelines["feature-branch"]) == {"test"}


@pytest.mark.parametrize(
    ("job", "name", "tier"),
    [
        ("deploy-dev", "dev", "development"),
        ("promote-staging", "staging", "staging"),
        ("promote-prod", "prod", "production"),
    ],
)
def test_each_deploy_has_its_environment_and_a_resource_group(expanded, job, name, tier):
    assert expanded[job]["environment"] == {
        "name": name,
        "deployment_tier": tier,
        "url": "$DYNAMIC_ENVIRONMENT_URL",
    }
    # The URL comes from the deploy's dotenv report, written by .ci/deploy.
    assert expanded[job]["artifacts"]["reports"]["dotenv"] == "deploy.env"
    assert "DYNAMIC_ENVIRONMENT_URL=" in (ROOT / ".ci" / "deploy").read_text()
    assert expanded[job]["resource_group"] == name
    assert expanded[job]["variables"]["DEPLOY_ROLE"] == f"deploy-{name}"
    # From .deploy: pulumi up then verify, with the OIDC token.
    assert expanded[job]["script"] == ['.ci/deploy "$STACK"']
    assert "GITLAB_OIDC_TOKEN" in expanded[job]["id_tokens"]


def test_aws_access_is_an_oidc_token_and_no_key_appears(config):
    assert config[".aws"]["id_tokens"]["GITLAB_OIDC_TOKEN"]["aud"] == "sts.amazonaws.com"
    text = (ROOT / ".gitlab-ci.yml").read_text()
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert config["variables"]["PULUMI_BACKEND_URL"].startswith("s3://")


def test_the_python_tools_of_a_job_find_the_region_the_project_sets(config, monkeypatch):
    # The project sets AWS_REGION (README "Deploying to AWS"); `mlops verify` and `mlops promote`
    # run boto3 in the deploy jobs, whose botocore reads the region from AWS_DEFAULT_REGION only
    # (found by tests/ci/test_rehearsal_local_cloud.py: "You must specify a region").
    import boto3

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    for name, value in config["variables"].items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, os.path.expandvars(value))
    assert boto3.session.Session().region_name == "ap-southeast-2"


def test_every_pulumi_up_is_followed_by_verify():
    script = (ROOT / ".ci" / "deploy").read_text().splitlines()
    up = next(i for i, line in enumerate(script) if line.startswith("pulumi up"))
    assert any(line.startswith("mlops verify --stack") for line in script[up + 1 :])
    assert "set -euo pipefail" in script


def test_the_image_is_built_without_a_daemon_and_tagged_by_commit(config):
    build = "\n".join(config["build"]["script"])
    assert '.ci/build "$CI_COMMIT_SHA" dev staging prod' in build
    assert "buildah build" in (ROOT / ".ci" / "build").read_text()
    assert config["build"]["artifacts"]["reports"]["dotenv"] == "build.env"


# What a deploy job spends besides the rollout: installing the virtualenv, creating the other
# resources (a managed MLflow server takes ~25 minutes, in parallel with the endpoint) and
# verifying. The rollout itself is bounded by the blue/green update's maximum execution time.
OUTSIDE_THE_ROLLOUT_MINUTES = 30


def gitlab_minutes(duration: str) -> float:
    """A GitLab duration ("1h 45m", "90 minutes", "3600") in minutes."""
    units = {"h": 60, "hour": 60, "hours": 60, "m": 1, "min": 1, "minute": 1, "minutes": 1, "s": 1 / 60}
    parts = re.findall(r"(\d+)\s*([a-z]*)", str(duration))
    return sum(int(n) * units[u] if u else int(n) / 60 for n, u in parts)


@pytest.mark.parametrize(
    ("job", "stack"), [("deploy-dev", "dev"), ("promote-staging", "staging"), ("promote-prod", "prod")]
)
def test_each_deploy_outlasts_the_longest_rollout_its_stack_allows(expanded, job, stack):
    from infra import config as config_mod

    values, region = config_mod.stack_values(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()))
    parsed = config_mod.parse(values, stack=stack, region=region, root=ROOT)
    needed = parsed.max_execution_timeout_seconds / 60 + OUTSIDE_THE_ROLLOUT_MINUTES
    # GitLab's default job timeout, and so the ID token's lifetime, is 60 minutes.
    assert "timeout" in expanded[job], f"{job} has no timeout: GitLab's default 60 minutes applies"
    assert gitlab_minutes(expanded[job]["timeout"]) > needed


@pytest.mark.parametrize(
    "job", ["preview", "build", "image-scan", "deploy-dev", "promote-staging", "promote-prod"]
)
def test_each_jobs_token_is_trusted_by_its_role_and_by_no_other(expanded, job):
    """The token GitLab issues this job on the protected default branch, against the bootstrap's trust."""
    from infra.bootstrap import policies
    from tests.infra.bootstrap import gitlab_tokens as tokens
    from tests.infra.harness import bootstrap_stack

    declared = expanded[job if job in expanded else f"{job}: [dev]"]
    trusts = {
        r.inputs["name"].removeprefix("mlops-platform-"): json.loads(r.inputs["assumeRolePolicy"])
        for r in bootstrap_stack().of_type("aws:iam/role:Role")
    }
    ref = "feature-x" if job == "preview" else "main"
    token = tokens.claims(ref=ref, tier=declared["environment"].get("deployment_tier"))
    components = tokens.readme_sub_claim_components()
    trusted_by = {role for role, trust in trusts.items() if tokens.may_assume(trust, token, components)}
    assert trusted_by == {declared["variables"]["DEPLOY_ROLE"]}
    assert set(trusts) == set(policies.ROLE_TIERS)


def test_a_scheduled_pipeline_runs_the_mutation_tests_and_nothing_else(pipelines):
    assert set(pipelines["schedule"]) == {"mutation"}
    assert all("mutation" not in jobs for kind, jobs in pipelines.items() if kind != "schedule")


def test_the_mutation_job_keeps_its_report_and_fails_with_make(config):
    job = config["mutation"]
    assert "make mutation | tee mutation-report.txt" in job["script"] and "set -o pipefail" in job["script"]
    assert job["artifacts"] == {"when": "always", "paths": ["mutation-report.txt"]}
