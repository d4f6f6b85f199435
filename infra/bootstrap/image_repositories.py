"""The project image's ECR repositories, made before any stack exists.

CI builds the image and pushes it to ``<resourcePrefix>-<env>`` before it runs that stack's
first ``pulumi up`` (which runs the image), so the repositories cannot be the stacks' own:
the bootstrap makes them, and the stacks refer to them by name (``imageRepositoryExists``).
Each keeps a tag on one image forever (immutable tags), scans on push and encrypts with the
bootstrap's key. Beside them, ``<resourcePrefix>-build-cache`` holds the build's layer cache:
mutable (a cache entry is rewritten), and emptied of what no build used for two weeks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.base import child_opts
from infra.container_image import lifecycle_policy

# Days a layer-cache image is kept after its last push.
CACHE_EXPIRY_DAYS = 14


def repository_names(resource_prefix: str, environments: tuple[str, ...]) -> dict[str, str]:
    """Environment -> its image repository's name, as the main program names it (<schema>-<stack>)."""
    return {env: f"{resource_prefix}-{env}" for env in environments}


def cache_lifecycle_policy(expiry_days: int = CACHE_EXPIRY_DAYS) -> dict:
    """Expire every cache image some days after it was pushed."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire layer cache after {expiry_days} days",
                "selection": {
                    "tagStatus": "any",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": expiry_days,
                },
                "action": {"type": "expire"},
            }
        ]
    }


@dataclass(frozen=True)
class ImageRepositoriesArgs:
    """resource_prefix: the schema name. environments: one repository each. kms_key_arn: the
    bootstrap's key. keep_images / untagged_expiry_days: as the main program's lifecycle."""

    resource_prefix: str
    environments: tuple[str, ...]
    kms_key_arn: pulumi.Input[str]
    tags: dict[str, str]
    keep_images: int = 30
    untagged_expiry_days: int = 7


class ImageRepositories(pulumi.ComponentResource):
    """Public attributes: ``urls`` (environment -> repository URL) and ``cache_url``."""

    def __init__(self, name: str, args: ImageRepositoriesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:bootstrap:ImageRepositories", name, None, opts)
        o = child_opts(self)
        encryption = [{"encryption_type": "KMS", "kms_key": args.kms_key_arn}]
        self.urls: dict[str, pulumi.Output[str]] = {}
        for env, repository_name in repository_names(args.resource_prefix, args.environments).items():
            repository = aws.ecr.Repository(
                f"{name}-{env}",
                name=repository_name,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=encryption,
                tags=args.tags,
                opts=o,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{env}-lifecycle",
                repository=repository.name,
                policy=json.dumps(lifecycle_policy(args.keep_images, args.untagged_expiry_days)),
                opts=o,
            )
            self.urls[env] = repository.repository_url
        cache = aws.ecr.Repository(
            f"{name}-build-cache",
            name=f"{args.resource_prefix}-build-cache",
            image_tag_mutability="MUTABLE",
            encryption_configurations=encryption,
            tags=args.tags,
            opts=o,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-build-cache-lifecycle",
            repository=cache.name,
            policy=json.dumps(cache_lifecycle_policy()),
            opts=o,
        )
        self.cache_url: pulumi.Output[str] = cache.repository_url
        self.register_outputs({"urls": self.urls, "cache_url": self.cache_url})
