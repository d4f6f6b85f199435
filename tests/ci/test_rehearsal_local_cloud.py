"""The pipelines rehearsed against the local cloud: GitLab's jobs, AWS's answers, the engine's deploys.

gitlab-ci-local's shell executor runs the real jobs of ``.gitlab-ci.yml`` and the real ``.ci/``
scripts, in a git repository holding this project's tracked files (remote
``gitlab.com:ml-platform/mlops-platform``, the project the bootstrap trusts), against one emulator
served apart (``python -m localcloud.emulator``), set up as README "Deploying to AWS" says:

1. the bootstrap deployed first with an administrator's credentials (``mlops local deploy
   --stack bootstrap --project infra/bootstrap``): the OIDC provider, the CI roles, the state
   bucket and secrets key, the ECR repositories; its outputs are the CI/CD variables;
2. each stack created once (``pulumi stack select --create <env> --secrets-provider ...``) and
   its stack file, now holding its encrypted data key, committed;
3. each job's ID token made as GitLab makes it (tests/ci/gitlab_oidc.py: ``sub`` from the
   components the README sets, the tier the job's environment declares, the ref and whether it
   is protected), given to the jobs of its environment (GitLab's environment-scoped
   variables), so each job's AWS SDK exchanges it by ``AssumeRoleWithWebIdentity`` at the
   emulator's STS.

``pulumi`` is the local engine's (``localcloud/bin/pulumi``), which exchanges the job's token
first as the real CLI does; ``aws``, ``buildah``, ``dnf`` and the test job's ``make`` are the
stand-ins of tests/ci/standins.py (no AWS CLI or container builder here; the push puts the
manifest the build would push into the emulator's ECR). The virtualenv step (``.ci/venv``)
runs as it is, with pip offline (``PIP_NO_INDEX``) over a virtualenv that already holds the
lock's packages, as a runner's pip cache would. Nothing else is replaced: the jobs' outcome,
and what each printed, is GitLab's.

Marked ``rehearsal`` (``make ci-rehearsal`` runs it with tests/ci/test_pipeline_rehearsal.py
and prints each job with its outcome); ``make test`` runs it too.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import boto3
import pytest
import requests
import yaml

from localcloud.emulator import EmulatorProcess
from tests.ci import standins
from tests.ci.gitlab_oidc import Issuer, Job, payload
from tests.test_gitlab_ci import GITLAB_CI_LOCAL, ROOT, _git

pytestmark = pytest.mark.rehearsal

REMOTE = "git@gitlab.com:ml-platform/mlops-platform.git"
REGION = "eu-west-1"
ADMIN = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
STACKS = ("dev", "staging", "prod")
SCHEMA = "customer-churn"
# A request body in moto's recording: base64 when encoded, so never a quote inside.
_RECORDED_BODY = re.compile(r'"body": "([^"]*)", "body_encoded": (true|false)')


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without credentials, Pulumi or virtualenv settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PULUMI_", "PIP_", "CI_", "GITLAB_")) and k != "VIRTUAL_ENV"
    }
    return {**env, "AWS_EC2_METADATA_DISABLED": "true", **extra}


def _merged(config: dict, name: str) -> dict:
    """A job of ``.gitlab-ci.yml`` with its ``extends`` resolved, as GitLab merges them."""
    job = config[name]
    merged: dict = {}
    parents = job.get("extends", [])
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _deep_merge(merged, _merged(config, parent))
    return _deep_merge(merged, {k: v for k, v in job.items() if k != "extends"})


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


@dataclass
class Cloud:
    endpoint_url: str
    outputs: dict
    repo: Path
    work: Path
    issuer: Issuer
    recording: Path

    def client(self, service: str):
        return boto3.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        ).client(service, endpoint_url=self.endpoint_url)

    def exchanges(self) -> list[tuple[str, str, dict]]:
        """(role name, session name, token claims) of every AssumeRoleWithWebIdentity the
        emulator received, in order, read from its request recording (moto's recorder). The
        recorder appends concurrent requests without a lock, so a large entry may be cut by a
        small one: each request body is found on its own rather than line by line."""
        found = []
        for body, encoded in _RECORDED_BODY.findall(self.recording.read_text()):
            text = base64.b64decode(body).decode(errors="replace") if encoded == "true" else body
            fields = parse_qs(text)
            if fields.get("Action") == ["AssumeRoleWithWebIdentity"]:
                role = fields["RoleArn"][0].rsplit("/", 1)[-1]
                found.append((role, fields["RoleSessionName"][0], payload(fields["WebIdentityToken"][0])))
        return found

    def admin_env(self) -> dict[str, str]:
        return _clean_env(
            **ADMIN,
            AWS_ENDPOINT_URL=self.endpoint_url,
            PATH=f"{ROOT / 'localcloud' / 'bin'}:{os.environ['PATH']}",
            PULUMI_HOME=str(self.work / "admin-home"),
        )


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail("gitlab-ci-local is missing: run `make test` (it runs `npm ci`)")
    work = tmp_path_factory.mktemp("rehearsal")
    recording = work / "requests.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        # moto's recorder keeps each request the emulator serves: the tokens the jobs exchanged.
        patch.setenv("MOTO_RECORDER_FILEPATH", str(recording))
        emulator = EmulatorProcess()  # python -m localcloud.emulator: its own process, as a user runs it
    try:
        requests.post(
            f"{emulator.endpoint_url}/moto-api/recorder/start-recording", timeout=10
        ).raise_for_status()
        repo = work / "repo"
        cloud = Cloud(emulator.endpoint_url, {}, repo, work, Issuer(), recording)
        # 1. The bootstrap, with an administrator's credentials.
        deployed = _run(
            [
                str(ROOT / ".venv" / "bin" / "mlops"), "local", "deploy", "--stack", "bootstrap",
                "--project", str(ROOT / "infra" / "bootstrap"), "--state-dir", str(work / "bootstrap"),
            ],
            ROOT,
            cloud.admin_env(),
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        cloud.outputs = json.loads((work / "bootstrap" / "bootstrap.json").read_text())["outputs"]
        # The project as the adopter's repository holds it.
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
        for relative in listed.stdout.splitlines():
            if (ROOT / relative).is_file():
                (repo / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, repo / relative)
        (repo / ".gitignore").write_text(
            (repo / ".gitignore").read_text() + "\n.gitlab-ci-local/\n.gitlab-ci-local-variables.yml\n"
        )
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "remote", "add", "origin", REMOTE)
        # 2. Each stack created once with the committed secrets provider, its file committed.
        admin = cloud.admin_env()
        backend = f"s3://{cloud.outputs['STATE_BUCKET']}?region={REGION}"
        login = _run(["pulumi", "login", backend], repo, admin)
        assert login.returncode == 0, login.stderr
        for stack in STACKS:
            provider = yaml.safe_load((repo / f"Pulumi.{stack}.yaml").read_text())["secretsprovider"]
            created = _run(
                ["pulumi", "stack", "select", "--create", stack, "--secrets-provider", provider], repo, admin
            )
            assert created.returncode == 0, created.stderr
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", "platform, with the stacks' encrypted data keys")
        _git(repo, "tag", "rehearsal-start")
        # The virtualenv .ci/venv finds: the lock's packages (this one's, as a runner's pip cache
        # would provide them offline); .ci/venv installs the project into it.
        venv = repo / ".venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
        (next((venv / "lib").glob("python3*")) / "site-packages" / "rehearsal-packages.pth").write_text(
            f"{site}\n"
        )
        standins.install(work / "bin")
        yield cloud
    finally:
        emulator.stop()


@dataclass
class Pipeline:
    code: int
    jobs: dict[str, str]
    out: str
    calls: list[str]
    exchanged: list[tuple[str, str, dict]]  # (role, session, claims): the jobs' tokens at STS


def run_pipeline(
    cloud: Cloud,
    *args: str,
    branch: str = "main",
    protected: bool = True,
    source: str = "push",
    **variables: str,
) -> Pipeline:
    """gitlab-ci-local on ``branch`` of the rehearsal repository; each job's outcome printed."""
    repo = cloud.repo
    _git(repo, "checkout", "-q", branch)
    shutil.rmtree(repo / ".gitlab-ci-local", ignore_errors=True)
    config = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    tokens: dict[str, str] = {}
    for name in config:
        if name.startswith(".") or not isinstance(config[name], dict):
            continue
        job = _merged(config, name)
        environment = job.get("environment")
        if not isinstance(environment, dict) or "id_tokens" not in job:
            continue
        scope = re.sub(r"\$\{?[A-Z_]+\}?", "*", environment["name"])
        tokens[scope] = cloud.issuer.token(
            Job(
                name=name,
                ref=branch,
                protected=protected,
                environment=environment["name"],
                tier=environment.get("deployment_tier"),
                action=environment.get("action", "start"),
                aud=job["id_tokens"]["GITLAB_OIDC_TOKEN"]["aud"],
                pipeline_source=source,
            )
        )
    # GitLab gives each job the token of its own claims; here, environment-scoped variables.
    (repo / ".gitlab-ci-local-variables.yml").write_text(
        yaml.safe_dump({"GITLAB_OIDC_TOKEN": {"values": tokens}})
    )
    values = {
        # The project's CI/CD variables, from the bootstrap's outputs (README "Deploying to AWS").
        "AWS_ACCOUNT_ID": cloud.outputs["AWS_ACCOUNT_ID"],
        "AWS_REGION": cloud.outputs["AWS_REGION"],
        "STATE_BUCKET": cloud.outputs["STATE_BUCKET"],
        "CI_COMMIT_REF_PROTECTED": "true" if protected else "false",
        # Where the shell executor runs the jobs (gitlab-ci-local sets /builds/... for a job
        # with an image, as a Docker runner would).
        "CI_PROJECT_DIR": str(repo),
        **variables,
    }
    if source != "push":
        values["CI_PIPELINE_SOURCE"] = source
    log = cloud.work / "calls.log"
    log.write_text("")
    env = _clean_env(
        PATH=f"{cloud.work / 'bin'}:{ROOT / 'localcloud' / 'bin'}:{os.environ['PATH']}",
        AWS_ENDPOINT_URL=cloud.endpoint_url,
        PULUMI_HOME=str(cloud.work / "runner-home"),
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip's spelling of "without build isolation"
        REHEARSAL_LOG=str(log),
        REHEARSAL_IMAGES=str(cloud.work / "images"),
    )
    command = [str(GITLAB_CI_LOCAL), "--force-shell-executor", "--concurrency", "1", *args]
    command += [a for k, v in values.items() for a in ("--variable", f"{k}={v}")]
    before = len(cloud.exchanges())
    result = _run(command, repo, env)
    out = result.stdout + result.stderr
    jobs = {job: outcome for outcome, job in re.findall(r"^\s*(PASS|FAIL)\s+(\S.*?)\s*$", out, re.M)}
    # What `make ci-rehearsal` shows (pytest -s): the pipeline and each job's outcome.
    print(f"\nlocal cloud: pipeline on {branch} ({source}; {' '.join(args) or 'default jobs'}):")
    print("\n".join(f"  {job:<20} {outcome}" for job, outcome in jobs.items()))
    exchanged = cloud.exchanges()[before:]
    return Pipeline(result.returncode, jobs, out, log.read_text().splitlines(), exchanged)


@pytest.fixture
def repo(cloud):
    """The rehearsal repository as committed; a test's own commits are undone after it."""
    yield cloud.repo
    _git(cloud.repo, "checkout", "-q", "-f", "main")
    _git(cloud.repo, "reset", "-q", "--hard", "rehearsal-start")


def test_the_default_branch_pipeline_deploys_and_promotes_through_prod(cloud, repo):
    run = run_pipeline(cloud, "--manual", "promote-staging", "--manual", "promote-prod")
    assert run.code == 0, run.out[-6000:]
    assert run.jobs == {
        "test": "PASS",
        "build": "PASS",
        "image-scan": "PASS",
        "deploy-dev": "PASS",
        "promote-staging": "PASS",
        "promote-prod": "PASS",
    }
    ecr = cloud.client("ecr")
    for stack in STACKS:
        # The image the build pushed, by digest, is what the stack now runs.
        (image,) = ecr.describe_images(repositoryName=f"{SCHEMA}-{stack}")["imageDetails"]
        outputs = json.loads((repo / f"outputs-{stack}.json").read_text())
        registry = f"{cloud.outputs['AWS_ACCOUNT_ID']}.dkr.ecr.{REGION}.amazonaws.com"
        assert outputs["imageUri"] == f"{registry}/{SCHEMA}-{stack}@{image['imageDigest']}"
        # The stack's resources are in the emulator, and verify passed on them.
        cloud.client("s3").head_bucket(Bucket=outputs["bucket"])
        verified = json.loads((repo / f"verify-{stack}.json").read_text())
        assert verified["ok"] is True, verified
    # Each deploy ran pulumi up, then mlops verify, in its own job.
    ups = [c for c in run.out.splitlines() if "Deployed: stack" in c]
    assert len(ups) == 3
    # Every AWS job exchanged its own token for its own role (the session GitLab's jobs name:
    # gitlab-<pipeline>-<job>), the token of the tier its environment declares; the test job
    # reached for none.
    tiers: dict[str, set[str]] = {}
    for role, _, claims in run.exchanged:
        tiers.setdefault(role, set()).add(claims["deployment_tier"])
    assert tiers == {
        "mlops-platform-build": {"other"},
        "mlops-platform-deploy-dev": {"development"},
        "mlops-platform-deploy-staging": {"staging"},
        "mlops-platform-deploy-prod": {"production"},
    }
    assert all(re.fullmatch(r"gitlab-\d+-\d+", session) for _, session, _ in run.exchanged)


def test_a_merge_request_from_a_protected_branch_previews_every_stack(cloud, repo):
    _git(repo, "checkout", "-q", "-B", "feature")
    run = run_pipeline(cloud, branch="feature", source="merge_request_event", CI_MERGE_REQUEST_IID="4")
    assert run.code == 0, run.out[-6000:]
    assert run.jobs == {
        "test": "PASS",
        "preview: [dev]": "PASS",
        "preview: [staging]": "PASS",
        "preview: [prod]": "PASS",
    }
    for stack in STACKS:
        assert f"Preview: stack {stack}" in (repo / f"preview-{stack}.txt").read_text()
    assert not [c for c in run.calls if c.startswith("buildah")]
    # Only pulumi reaches AWS in a preview: it exchanged each job's token for the preview role.
    assert {role for role, _, _ in run.exchanged} == {"mlops-platform-preview"}
    assert len({session for _, session, _ in run.exchanged}) == 3
    assert {c["sub"] for _, _, c in run.exchanged} == {
        "project_path:ml-platform/mlops-platform:ref_type:branch:ref:feature:ref_protected:true"
        ":deployment_tier:testing"
    }


def test_the_preview_token_carries_what_the_readme_sets(cloud):
    # The token a preview job gets, decoded: what IAM's <host>:sub and <host>:aud see.
    token = cloud.issuer.token(Job("preview", ref="feature", environment="preview/dev", tier="testing"))
    claims = payload(token)
    assert claims["iss"] == "https://gitlab.com" and claims["aud"] == "sts.amazonaws.com"
    assert claims["sub"] == (
        "project_path:ml-platform/mlops-platform:ref_type:branch:ref:feature"
        ":ref_protected:true:deployment_tier:testing"
    )


# The subject the bootstrap used to demand: GitLab has no `environment` component. Through
# the AWS CLI (the build job) and through pulumi (a merge request's preview).
@pytest.mark.parametrize(
    ("role", "job", "branch", "source"),
    [
        ("mlops-platform-build", "build", "main", "push"),
        ("mlops-platform-preview", "preview: [dev]", "feature", "merge_request_event"),
    ],
)
def test_a_trust_that_demands_a_claim_gitlab_cannot_issue_fails_the_job(
    cloud, repo, role, job, branch, source
):
    iam = cloud.client("iam")
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    kept = json.dumps(trust)
    statement = trust["Statement"][0]
    (key,) = [k for k in statement["Condition"]["StringLike"] if k.endswith(":sub")]
    statement["Condition"]["StringLike"][key] = [
        f"project_path:ml-platform/mlops-platform:ref_type:branch:ref:{branch}:environment:*"
    ]
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))
    _git(repo, "checkout", "-q", "-B", branch)
    try:
        run = run_pipeline(cloud, job, branch=branch, source=source)
    finally:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=kept)
    assert run.jobs[job] == "FAIL"
    assert "An error occurred (AccessDenied) when calling the AssumeRoleWithWebIdentity operation" in run.out
    assert not [c for c in run.calls if c.startswith("buildah push")]


def test_a_wrong_ci_variable_fails_the_job_naming_what_it_reached_for(cloud, repo):
    # SCHEMA_NAME names the ECR repositories the bootstrap made: a typo reaches for none.
    config = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    config["variables"]["SCHEMA_NAME"] = "customer-chrun"
    (repo / ".gitlab-ci.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    _git(repo, "commit", "-q", "-am", "a typo in SCHEMA_NAME")
    run = run_pipeline(cloud, "build")
    assert run.jobs == {"build": "FAIL"}
    assert "ECR DescribeImages on customer-chrun-dev failed" in run.out
    # The build role may describe only the bootstrap's repositories: AWS authorises before it
    # looks, so the answer is AccessDenied naming the repository, not RepositoryNotFound.
    assert "AccessDeniedException" in run.out
    assert "repository/customer-chrun-dev" in run.out


def test_a_broken_script_step_fails_the_job_with_the_tools_message(cloud, repo):
    deploy = repo / ".ci" / "deploy"
    deploy.write_text(
        deploy.read_text().replace('pulumi up --stack "$stack" --yes', 'pulumi up --stack "$stack"')
    )
    _git(repo, "commit", "-q", "-am", "the deploy asks pulumi up for a confirmation nobody gives")
    run = run_pipeline(cloud, "deploy-dev")
    assert run.jobs == {"deploy-dev": "FAIL"}
    assert "--yes must be passed in to proceed when running in non-interactive mode" in run.out


def test_the_local_pulumi_gets_the_jobs_credentials_before_anything_else(cloud, repo):
    # As the real CLI's AWS SDK: the job's role first, from its token file; no token, no login.
    env = {
        k: v for k, v in cloud.admin_env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env |= {
        "AWS_ROLE_ARN": cloud.outputs["roles"]["preview"],
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(cloud.work / "no-token-here"),
        "PULUMI_HOME": str(cloud.work / "no-token-home"),
    }
    login = _run(["pulumi", "login", f"s3://{cloud.outputs['STATE_BUCKET']}"], repo, env)
    assert login.returncode == 1
    assert f"AWS credentials for {cloud.outputs['roles']['preview']} (AWS_ROLE_ARN)" in login.stderr
    assert "no-token-here" in login.stderr
    # With the job's token, it is the preview role's session that logs in.
    token = cloud.work / "preview-token"
    token.write_text(
        cloud.issuer.token(Job("preview", ref="feature", environment="preview/dev", tier="testing"))
    )
    before = len(cloud.exchanges())
    login = _run(
        ["pulumi", "login", f"s3://{cloud.outputs['STATE_BUCKET']}"],
        repo,
        env | {"AWS_WEB_IDENTITY_TOKEN_FILE": str(token)},
    )
    assert login.returncode == 0, login.stderr
    assert [role for role, _, _ in cloud.exchanges()[before:]] == ["mlops-platform-preview"]
