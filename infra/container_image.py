"""The project image's ECR repository, and which image of it the stack runs.

Every SageMaker step and model runs the project image (never a prebuilt framework image). The
stack refers to it as ``<repository url>:<content tag>``, where the content tag is a hash of
exactly what goes into the image and changes what it runs (see ``IMAGE_INPUTS``). CI computes
the same tag, builds and pushes it when ECR does not have it yet, then runs ``pulumi up``::

    TAG=$(python -m infra.container_image)          # e.g. content-3f2a9c0d1b4e5f67
    aws ecr describe-images --repository-name $REPO --image-ids imageTag=$TAG \
      || (docker build -t $REPO_URL:$TAG . && docker push $REPO_URL:$TAG)

Tags are immutable, so a tag always names the same bytes, and a change to the code is a new
tag, hence a diff on every model and pipeline that runs it. A stack can pin another image
with the ``imageUri`` config key (e.g. a digest CI pushed), which then wins.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifact_store import content_hash, source_files
from infra.base import child_opts

ROOT = Path(__file__).resolve().parents[1]
CONTENT_TAG_PREFIX = "content-"
# What the image runs: the build recipe, the locked dependencies, the project metadata, the
# entry scripts and the two packages the jobs import.
IMAGE_INPUTS = ("Dockerfile", "requirements.lock", "pyproject.toml", "docker", "model_code", "pipelines")
# Copied into the image only so `pip install .` sees the whole project; no job runs them, so
# changing them must not roll every model and pipeline onto a new image. An image rebuilt from
# a changed README or infra/ keeps the tag: CI pushes a tag only when ECR does not have it.
IMAGE_INPUTS_NOT_HASHED = ("README.md", "infra")
_COPY = re.compile(r"^\s*COPY\s+(?:--\S+\s+)*(.+?)\s+\S+\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ContainerImageArgs:
    """The repository and the image the stack runs.

    repository_name: the ECR repository's name, e.g. ``mlops-platform-<stack>``.
    kms_key_arn: the stack key; ECR encrypts the image layers with it.
    tags: the standard tags (project, stack, owner).
    image_uri: the ``imageUri`` config value; when set, the stack runs it instead of the
        content-tagged image of this repository (None).
    keep_images: how many tagged images the lifecycle policy keeps (30). Models still serving
        an older image keep working only while it is kept: raise this if prod lags far behind.
    untagged_expiry_days: untagged images (superseded pushes, failed builds) expire after this (7).
    source_root: the checkout whose files the content tag hashes (the repository root).
    repository_exists: the repository was created before the stack (by infra/bootstrap, so CI
        can push the first image before the first ``pulumi up``): the stack refers to it by
        name and creates no repository or lifecycle policy (False: the stack creates both).
    """

    repository_name: str
    kms_key_arn: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    image_uri: str | None = None
    keep_images: int = 30
    untagged_expiry_days: int = 7
    source_root: str = str(ROOT)
    repository_exists: bool = False


# -- pure functions ---------------------------------------------------------------------------


def content_tag(root: str | Path = ROOT) -> str:
    """``content-<16 hex>``: a hash of ``IMAGE_INPUTS`` under ``root``; same sources, same tag."""
    root = Path(root)
    return CONTENT_TAG_PREFIX + content_hash(source_files(root / item for item in IMAGE_INPUTS))


def repository_url(
    account_id: str, region: str, repository_name: str, dns_suffix: str = "amazonaws.com"
) -> str:
    """The URL ECR gives a private repository: ``<account>.dkr.ecr.<region>.<suffix>/<name>``."""
    return f"{account_id}.dkr.ecr.{region}.{dns_suffix}/{repository_name}"


def dockerfile_copy_sources(dockerfile: str | Path) -> list[str]:
    """The build-context paths a Dockerfile COPYs (top-level names), to check the tag covers them."""
    sources: list[str] = []
    for line in Path(dockerfile).read_text().splitlines():
        match = _COPY.match(line)
        if match and "--from" not in line:
            sources += [s.rstrip("/").split("/")[0] for s in match.group(1).split()]
    return sources


def lifecycle_policy(keep_images: int, untagged_expiry_days: int) -> dict[str, Any]:
    """Expire untagged images after some days; keep only the newest ``keep_images`` tagged ones."""
    if keep_images < 1 or untagged_expiry_days < 1:
        raise ValueError(
            f"keep_images {keep_images!r} and untagged_expiry_days {untagged_expiry_days!r} must be >= 1"
        )
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {untagged_expiry_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_expiry_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {keep_images} tagged images",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            },
        ]
    }


# -- the component ---------------------------------------------------------------------------


class ContainerImage(pulumi.ComponentResource):
    """The project image's ECR repository; ``image_uri`` is the image every job and model runs.

    Public attributes: ``repository`` (None when it exists already), ``repository_arn``,
    ``repository_url``, ``content_tag`` (a plain string) and ``image_uri``.
    """

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:container_image:ContainerImage", name, None, opts)
        child = child_opts(self, opts)

        self.repository: aws.ecr.Repository | None = None
        repository_name: pulumi.Output[str] = pulumi.Output.from_input(args.repository_name)
        if not args.repository_exists:
            self.repository = aws.ecr.Repository(
                f"{name}-repository",
                name=args.repository_name,
                # A tag names one image forever: what a model was deployed with cannot change under it.
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
                tags=args.tags,
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-lifecycle",
                repository=self.repository.name,
                policy=json.dumps(lifecycle_policy(args.keep_images, args.untagged_expiry_days)),
                opts=child,
            )
            repository_name = self.repository.name

        self.content_tag: str = content_tag(args.source_root)
        # Built from the repository's name (so it waits for the repository) rather than read
        # back from AWS: the URL has a fixed form, and previews then show the exact image.
        identity = aws.get_caller_identity_output()
        region = aws.get_region_output()
        partition = aws.get_partition_output()
        self.repository_url: pulumi.Output[str] = pulumi.Output.all(
            identity.account_id, region.region, partition.dns_suffix, repository_name
        ).apply(lambda a: repository_url(a[0], a[1], a[3], a[2]))
        self.repository_arn: pulumi.Output[str] = (
            self.repository.arn
            if self.repository is not None
            else pulumi.Output.all(
                partition.partition, region.region, identity.account_id, repository_name
            ).apply(lambda a: f"arn:{a[0]}:ecr:{a[1]}:{a[2]}:repository/{a[3]}")
        )
        self.image_uri: pulumi.Output[str] = (
            pulumi.Output.from_input(args.image_uri)
            if args.image_uri
            else self.repository_url.apply(lambda url: f"{url}:{self.content_tag}")
        )
        self.register_outputs({"repository_url": self.repository_url, "image_uri": self.image_uri})


if __name__ == "__main__":
    # CI: the tag to build and push for this checkout (see the module docstring).
    print(content_tag())
