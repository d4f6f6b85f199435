"""The project image's repository, its lifecycle, and the content tag the stack runs."""

from __future__ import annotations

import json
import re
import shutil

import pulumi
import pytest

from infra.container_image import (
    IMAGE_INPUTS,
    IMAGE_INPUTS_NOT_HASHED,
    ROOT,
    ContainerImage,
    ContainerImageArgs,
    content_tag,
    dockerfile_copy_sources,
    lifecycle_policy,
)
from tests.infra.harness import ACCOUNT, run

TAGS = {"project": "mlops-platform", "stack": "test", "owner": "ml-team"}
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/stack-key"
# ECR's rule for image tags.
ECR_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@pytest.fixture
def checkout(tmp_path):
    """A copy of the files the image is built from."""
    root = tmp_path / "repo"
    root.mkdir()
    for item in (*IMAGE_INPUTS, *IMAGE_INPUTS_NOT_HASHED):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, root / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / item)
    return root


def declare(args: ContainerImageArgs):
    box = {}

    def program():
        image = ContainerImage("image", args)
        box["image"] = image
        return image.image_uri.apply(lambda uri: box.update(image_uri=uri))

    return run(program), box


# -- the content tag ---------------------------------------------------------------------------


def test_content_tag_is_the_same_for_an_identical_checkout(checkout):
    assert content_tag(checkout) == content_tag(ROOT)


def test_content_tag_changes_when_model_code_changes(checkout):
    before = content_tag(checkout)
    with (checkout / "model_code" / "train.py").open("a") as f:
        f.write("\n# a change\n")
    assert content_tag(checkout) != before


def test_content_tag_changes_when_a_locked_dependency_changes(checkout):
    before = content_tag(checkout)
    with (checkout / "requirements.lock").open("a") as f:
        f.write("extra-package==1.0\n")
    assert content_tag(checkout) != before


def test_content_tag_changes_when_the_dockerfile_changes(checkout):
    before = content_tag(checkout)
    with (checkout / "Dockerfile").open("a") as f:
        f.write("ENV EXTRA=1\n")
    assert content_tag(checkout) != before


def test_content_tag_ignores_files_no_job_runs(checkout):
    before = content_tag(checkout)
    with (checkout / "README.md").open("a") as f:
        f.write("\nMore docs.\n")
    assert content_tag(checkout) == before


def test_content_tag_is_a_valid_ecr_tag():
    tag = content_tag()
    assert ECR_TAG.match(tag) and tag.startswith("content-")


def test_every_path_the_dockerfile_copies_is_hashed_or_deliberately_left_out():
    copied = set(dockerfile_copy_sources(ROOT / "Dockerfile"))
    assert copied, "no COPY found in the Dockerfile"
    assert copied <= set(IMAGE_INPUTS) | set(IMAGE_INPUTS_NOT_HASHED)


# -- the lifecycle policy ----------------------------------------------------------------------


def test_lifecycle_expires_untagged_images_after_the_given_days():
    [rule] = [r for r in lifecycle_policy(30, 7)["rules"] if r["selection"]["tagStatus"] == "untagged"]
    assert rule["selection"]["countType"] == "sinceImagePushed"
    assert rule["selection"]["countNumber"] == 7
    assert rule["action"] == {"type": "expire"}


def test_lifecycle_keeps_the_newest_tagged_images():
    [rule] = [r for r in lifecycle_policy(30, 7)["rules"] if r["selection"]["tagStatus"] == "tagged"]
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] == 30


def test_lifecycle_rule_priorities_are_unique():
    priorities = [r["rulePriority"] for r in lifecycle_policy(30, 7)["rules"]]
    assert len(set(priorities)) == len(priorities)


def test_lifecycle_refuses_to_keep_no_images():
    with pytest.raises(ValueError, match="keep_images 0"):
        lifecycle_policy(0, 7)


# -- the component -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_image():
    return declare(ContainerImageArgs(repository_name="mlops-platform-test", kms_key_arn=KEY, tags=TAGS))


def test_repository_tags_are_immutable(default_image):
    rec, _ = default_image
    assert rec.one("aws:ecr/repository:Repository").inputs["imageTagMutability"] == "IMMUTABLE"


def test_repository_scans_images_on_push(default_image):
    rec, _ = default_image
    assert rec.one("aws:ecr/repository:Repository").inputs["imageScanningConfiguration"] == {
        "scanOnPush": True
    }


def test_repository_is_encrypted_with_the_stack_key(default_image):
    rec, _ = default_image
    assert rec.one("aws:ecr/repository:Repository").inputs["encryptionConfigurations"] == [
        {"encryptionType": "KMS", "kmsKey": KEY}
    ]


def test_repository_is_named_and_tagged(default_image):
    rec, _ = default_image
    repository = rec.one("aws:ecr/repository:Repository").inputs
    assert repository["name"] == "mlops-platform-test"
    assert repository["tags"] == TAGS


def test_lifecycle_policy_is_attached_to_the_repository(default_image):
    rec, _ = default_image
    policy = rec.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs
    assert policy["repository"] == "mlops-platform-test"
    assert json.loads(policy["policy"]) == lifecycle_policy(30, 7)


def test_image_defaults_to_the_repository_at_the_content_tag(default_image):
    _, box = default_image
    assert box["image_uri"] == (
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mlops-platform-test:{content_tag()}"
    )


def test_configured_image_uri_wins():
    pinned = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mlops-platform-test@sha256:{'a' * 64}"
    _, box = declare(
        ContainerImageArgs(
            repository_name="mlops-platform-test", kms_key_arn=KEY, tags=TAGS, image_uri=pinned
        )
    )
    assert box["image_uri"] == pinned


def test_image_uri_follows_the_source_checkout(checkout):
    with (checkout / "pipelines" / "common.py").open("a") as f:
        f.write("\n# a change\n")
    _, box = declare(
        ContainerImageArgs(
            repository_name="mlops-platform-test", kms_key_arn=KEY, tags=TAGS, source_root=str(checkout)
        )
    )
    assert box["image_uri"].endswith(f":{content_tag(checkout)}")
    assert content_tag(checkout) != content_tag()


def test_an_existing_repository_is_referred_to_and_not_created():
    # The CI stacks use the repository infra/bootstrap made (imageRepositoryExists).
    box = {}

    def program():
        image = ContainerImage(
            "image",
            ContainerImageArgs(
                repository_name="customer-churn-dev", kms_key_arn=KEY, tags=TAGS, repository_exists=True
            ),
        )
        return pulumi.Output.all(image.repository_arn, image.image_uri).apply(
            lambda v: box.update(arn=v[0], image_uri=v[1])
        )

    rec = run(program)
    assert not rec.of_type("aws:ecr/repository:Repository")
    assert not rec.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert box["arn"] == f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/customer-churn-dev"
    assert box["image_uri"].startswith(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-dev:")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_ci_stacks_use_the_bootstraps_repository(stack):
    from tests.infra.harness import run_stack

    assert not run_stack(stack).of_type("aws:ecr/repository:Repository")
