"""Where the main program's Pulumi state lives: a versioned, encrypted, private, TLS-only
bucket, and the KMS key that encrypts both the state objects and the stacks' secrets
(``pulumi stack init --secrets-provider awskms://alias/<key alias>``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.artifact_store import tls_only_bucket_policy
from infra.base import child_opts


@dataclass(frozen=True)
class StateBackendArgs:
    """bucket_name: globally unique (the account id is in it). key_alias: ``alias/...``."""

    bucket_name: str
    key_alias: str
    tags: dict[str, str]


class StateBackend(pulumi.ComponentResource):
    """Public attributes: ``key`` (rotating CMK), ``bucket``, ``bucket_arn``, ``key_arn``."""

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:bootstrap:StateBackend", name, None, opts)
        o = child_opts(self)
        # The key's default policy delegates to IAM: only roles granted it (the deploy roles,
        # for their stack) use it.
        self.key = aws.kms.Key(
            f"{name}-key",
            description="Encrypts the MLOps platform's Pulumi state and stack secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=o,
        )
        aws.kms.Alias(f"{name}-key-alias", name=args.key_alias, target_key_id=self.key.key_id, opts=o)
        # State is the record of what exists: never force-destroyed, every version kept.
        self.bucket = aws.s3.Bucket(f"{name}-bucket", bucket=args.bucket_name, tags=args.tags, opts=o)
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=o,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=o,
        )
        access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=o,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=o,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(tls_only_bucket_policy(arn))),
            opts=pulumi.ResourceOptions.merge(o, pulumi.ResourceOptions(depends_on=[access_block])),
        )
        self.bucket_arn: pulumi.Output[str] = self.bucket.arn
        self.key_arn: pulumi.Output[str] = self.key.arn
        self.register_outputs({"bucket_arn": self.bucket_arn, "key_arn": self.key_arn})
