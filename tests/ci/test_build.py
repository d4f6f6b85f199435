"""``.ci/build``: one build per commit, pushed only where ECR lacks the tag (tags are immutable).

Run with fake ``aws`` and ``buildah`` (tests/ci/fakes.py); ECR refuses a second push of a
tag even with the same digest, so a retried job or a release tag on a commit the default
branch already built must push nothing.
"""

from __future__ import annotations

import shutil

import pytest

from tests.ci.fakes import Tools
from tests.test_gitlab_ci import ROOT

REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
SHA = "0123456789abcdef0123456789abcdef01234567"
EARLIER, BUILT = "sha256:" + "a" * 64, "sha256:" + "b" * 64
ENV = {
    "REGISTRY": REGISTRY,
    "SCHEMA_NAME": "customer-churn",
    "CI_COMMIT_SHA": SHA,
    "CI_COMMIT_TIMESTAMP": "2026-12-01T10:00:00+00:00",
}


@pytest.fixture
def checkout(tmp_path):
    """The job's checkout: the script and the Dockerfile (build.env is written beside them)."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "build", repo / ".ci" / "build")
    shutil.copy(ROOT / "Dockerfile", repo / "Dockerfile")
    return repo


def build(checkout, images: dict, **state):
    tools = Tools(checkout.parent, {"images": images, "built": BUILT, **state})
    result = tools.run([str(checkout / ".ci" / "build"), SHA, "dev", "staging", "prod"], cwd=checkout, **ENV)
    return tools, result


def build_env(checkout) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (checkout / "build.env").read_text().splitlines())


def test_a_first_build_pushes_once_to_every_repository_with_the_code_version(checkout):
    tools, result = build(checkout, {})
    assert result.returncode == 0, result.stderr
    builds = [c for c in tools.calls if c.startswith("buildah build")]
    assert len(builds) == 1
    assert f"--build-arg CODE_VERSION={SHA}" in builds[0]
    assert f"--cache-from {REGISTRY}/customer-churn-build-cache" in builds[0]
    pushes = [c.split()[-1] for c in tools.calls if c.startswith("buildah push")]
    assert pushes == [f"docker://{REGISTRY}/customer-churn-{s}:{SHA}" for s in ("dev", "staging", "prod")]
    assert build_env(checkout)["IMAGE_URI_PROD"] == f"{REGISTRY}/customer-churn-prod@{BUILT}"


def test_a_retry_pushes_only_where_the_tag_is_missing_and_deploys_what_ecr_holds(checkout):
    tools, result = build(checkout, {"customer-churn-dev": {SHA: EARLIER}})
    assert result.returncode == 0, result.stderr
    pushes = [c.split()[-1] for c in tools.calls if c.startswith("buildah push")]
    assert pushes == [f"docker://{REGISTRY}/customer-churn-{s}:{SHA}" for s in ("staging", "prod")]
    assert f"customer-churn-dev:{SHA} exists ({EARLIER}): not pushed again" in result.stdout
    assert build_env(checkout)["IMAGE_URI_DEV"] == f"{REGISTRY}/customer-churn-dev@{EARLIER}"
    assert build_env(checkout)["IMAGE_URI_STAGING"] == f"{REGISTRY}/customer-churn-staging@{BUILT}"


def test_a_release_tag_on_a_built_commit_builds_and_pushes_nothing(checkout):
    held = {f"customer-churn-{s}": {SHA: EARLIER} for s in ("dev", "staging", "prod")}
    tools, result = build(checkout, held)
    assert result.returncode == 0, result.stderr
    assert not [c for c in tools.calls if c.startswith("buildah")]
    assert set(build_env(checkout).values()) == {
        f"{REGISTRY}/customer-churn-{s}@{EARLIER}" for s in ("dev", "staging", "prod")
    }


def test_an_ecr_error_other_than_a_missing_tag_stops_the_build_naming_it(checkout):
    tools, result = build(checkout, {}, denied=True)
    assert result.returncode != 0
    assert "ECR DescribeImages on customer-churn-dev failed" in result.stderr
    assert "AccessDeniedException" in result.stderr
    assert not [c for c in tools.calls if c.startswith("buildah")]
