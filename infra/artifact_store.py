"""The artifact store: the stack's customer-managed KMS key and the one bucket everything lands in.

Raw data, quarantined rows, the offline feature store, pipeline outputs, captured endpoint
traffic, ground truth and MLflow artifacts all live in one versioned bucket under the
well-known prefixes below, encrypted with one key, so one key policy and one bucket policy
say who may read the platform's data. The model code is uploaded under content-hashed keys:
the same code always gets the same key (no diff on a re-run), a code change gets a new key
(so whatever references it is updated rather than silently reading changed bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.base import child_opts
from infra.promotion import bucket_grant_statements, key_grant_statements
from model_code.contract.schema import EXAMPLE_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
MODEL_CODE_DIR = ROOT / "model_code"

# Where each kind of object lives in the bucket. The ingestion rule matches RAW_PREFIX, the
# lifecycle rules expire DATA_CAPTURE_PREFIX and QUARANTINE_PREFIX, and every role is scoped
# to the prefixes it needs, so these names are part of the platform's contract.
RAW_PREFIX = "raw/"
DATA_CAPTURE_PREFIX = "data-capture/"
QUARANTINE_PREFIX = "quarantine/"
GROUND_TRUTH_PREFIX = "ground-truth/"
FEATURE_STORE_PREFIX = "feature-store/"
PIPELINES_PREFIX = "pipelines/"
MLFLOW_PREFIX = "mlflow/"
CODE_PREFIX = "code/"

# The tag EventBridge requires on a customer managed key before it encrypts a connection with it.
EVENTBRIDGE_KEY_TAG = "EventBridgeApiDestinations"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Never part of the uploaded code: interpreter caches differ per machine and would change the key.
_SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class ArtifactStoreArgs:
    """What the artifact store needs from the stack.

    bucket_name: the bucket's AWS name, explicit (mocks and AWS both see it), e.g.
        ``<schema name>-<stack>-<account>``; 3-63 lowercase letters, digits, '-' or '.'.
    tags: the standard tags (project, stack, owner), put on every taggable resource.
    data_capture_expiry_days: captured endpoint traffic is deleted after this many days (30).
    quarantine_expiry_days: quarantined rows are deleted after this many days (90).
    noncurrent_version_expiry_days: overwritten or deleted object versions are kept this long (30).
    force_destroy: let `pulumi destroy` delete a non-empty bucket (False: data outlives the stack).
    key_deletion_window_days: a scheduled key deletion can be cancelled for this many days (30).
    code_paths: directories or files packed into the model code archive, each under its own name
        (default: the ``model_code`` package).
    schema_paths: data contract files uploaded on their own, next to the archive (default: the
        example schema).
    promotion_grantees: (target stack, target account, promotion role ARN) of each stack this one
        promotes to: each may read ``model_artifact_prefixes`` and decrypt through S3 (none).
    model_artifact_prefixes: the prefixes promotion may read (the training pipeline's models and
        evaluation outputs, :func:`infra.promotion.model_artifact_prefixes`).
    alarm_name_prefixes: the stack's alarm names start with one of these; CloudWatch may use
        the key (to publish to the encrypted alarm topic) for those alarms only (none: no grant).
    """

    bucket_name: str
    tags: pulumi.Input[dict[str, str]]
    data_capture_expiry_days: int = 30
    quarantine_expiry_days: int = 90
    noncurrent_version_expiry_days: int = 30
    force_destroy: bool = False
    key_deletion_window_days: int = 30
    code_paths: tuple[str, ...] = field(default=(str(MODEL_CODE_DIR),))
    schema_paths: tuple[str, ...] = field(default=(str(EXAMPLE_SCHEMA),))
    promotion_grantees: tuple[tuple[str, str, str], ...] = ()
    model_artifact_prefixes: tuple[str, ...] = ()
    alarm_name_prefixes: tuple[str, ...] = ()


# -- pure functions: everything computable without Pulumi -----------------------------------


def validate_bucket_name(name: str) -> str:
    """The bucket name as S3 accepts it, or a ValueError naming the rule it breaks."""
    if not _BUCKET_NAME.match(name) or ".." in name:
        raise ValueError(
            f"bucket name {name!r}: expected 3-63 lowercase letters, digits, '-' or '.', "
            "starting and ending with a letter or digit"
        )
    return name


def key_policy(
    account_id: str, region: str, partition: str = "aws", alarm_name_prefixes: Sequence[str] = ()
) -> dict[str, Any]:
    """The stack key's policy: the account administers it; callers use it with their own credentials.

    In a key policy ``"Resource": "*"`` means "this key" (AWS requires that form). The account
    root statement is AWS's default: it delegates to IAM, so roles get the key only through
    their own (scoped) policies, and the key can never become unmanageable. S3, SageMaker and
    SNS encrypt and decrypt with the credentials of whoever calls them (a role whose policy
    grants the key), so no service principal may use the key for the whole account. Two
    services act on their own: CloudWatch Logs, for this account's log groups only (through
    the encryption context it sends), and CloudWatch alarms publishing to the encrypted alarm
    topic, for the stack's alarms only (``alarm_name_prefixes``; AWS's SNS guide, "compatibility
    between event sources from AWS services and encrypted topics", with the confused-deputy
    conditions CloudWatch supports).
    """
    root = f"arn:{partition}:iam::{account_id}:root"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministersTheKey",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": [
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            "Resource": "*",
            "Condition": {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{partition}:logs:{region}:{account_id}:log-group:*"
                    )
                }
            },
        },
    ]
    if alarm_name_prefixes:
        statements.append(
            {
                "Sid": "TheStacksAlarmsPublishToItsEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {
                        "aws:SourceArn": [
                            f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:{prefix}-*"
                            for prefix in sorted(set(alarm_name_prefixes))
                        ]
                    },
                },
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def tls_only_bucket_policy(bucket_arn: str) -> dict[str, Any]:
    """Deny every request to the bucket or its objects that is not over TLS 1.2 or later."""
    resources = [bucket_arn, f"{bucket_arn}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyTlsBelow12",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
        ],
    }


def lifecycle_rules(
    data_capture_expiry_days: int, quarantine_expiry_days: int, noncurrent_version_expiry_days: int
) -> list[dict[str, Any]]:
    """Lifecycle rules: captured traffic and quarantined rows expire; old versions are pruned.

    Expiring an object in a versioned bucket only adds a delete marker; the noncurrent-version
    rule is what frees the bytes, for those prefixes and for every overwritten object.
    """
    for name, days in (
        ("data_capture_expiry_days", data_capture_expiry_days),
        ("quarantine_expiry_days", quarantine_expiry_days),
        ("noncurrent_version_expiry_days", noncurrent_version_expiry_days),
    ):
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise ValueError(f"{name}: {days!r} is not a whole number of days >= 1")
    return [
        {
            "id": "expire-data-capture",
            "status": "Enabled",
            "filter": {"prefix": DATA_CAPTURE_PREFIX},
            "expiration": {"days": data_capture_expiry_days},
        },
        {
            "id": "expire-quarantine",
            "status": "Enabled",
            "filter": {"prefix": QUARANTINE_PREFIX},
            "expiration": {"days": quarantine_expiry_days},
        },
        {
            "id": "prune-noncurrent-versions",
            "status": "Enabled",
            # An empty prefix is the whole bucket.
            "filter": {"prefix": ""},
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_version_expiry_days},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        },
    ]


def source_files(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(archive name, path) of every file under ``paths``, sorted by archive name.

    A directory's files are named relative to the directory's parent (``model_code/training/train.py``),
    a file by its own name. Interpreter caches and hidden files are left out: they differ from
    machine to machine and would change the content hash without changing the code.
    """
    found: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found[path.name] = path
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such file or directory to package")
        for file in path.rglob("*"):
            rel = file.relative_to(path.parent)
            if (
                file.is_file()
                and file.suffix not in _SKIPPED_SUFFIXES
                and not any(part in _SKIPPED_PARTS or part.startswith(".") for part in rel.parts)
            ):
                found[rel.as_posix()] = file
    return sorted(found.items())


def content_hash(files: Sequence[tuple[str, Path]], length: int = 16) -> str:
    """The first ``length`` hex digits of a SHA-256 over each file's name and bytes, in order.

    Names are hashed too, so renaming or moving a file is a change like editing it.
    """
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:length]


def code_object_key(paths: Iterable[str | Path], name: str = "model_code") -> str:
    """``code/<name>-<content hash>.zip``: the same code → the same key, a change → a new key."""
    return f"{CODE_PREFIX}{name}-{content_hash(source_files(paths))}.zip"


def schema_object_key(path: str | Path) -> str:
    """``code/schemas/<file stem>-<content hash>.yaml`` for one data contract file."""
    path = Path(path)
    return f"{CODE_PREFIX}schemas/{path.stem}-{content_hash([(path.name, path)])}{path.suffix}"


# -- the component ---------------------------------------------------------------------------


class ArtifactStore(pulumi.ComponentResource):
    """The stack's KMS key and artifact bucket, with the model code uploaded into it.

    Public attributes: ``key``, ``key_arn``, ``bucket``, ``bucket_name``, ``bucket_arn``,
    ``code_key`` (the archive's S3 key, a plain string) and ``schema_keys`` (schema file stem
    → S3 key).
    """

    def __init__(self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:artifact_store:ArtifactStore", name, None, opts)
        self._opts = child_opts(self, opts)
        self._name = name
        self._args = args
        validate_bucket_name(args.bucket_name)

        self.key = self._create_key()
        self.bucket = self._create_bucket()
        self._create_object_uploads()

        self.key_arn: pulumi.Output[str] = self.key.arn
        self.bucket_name: pulumi.Output[str] = self.bucket.bucket
        self.bucket_arn: pulumi.Output[str] = self.bucket.arn
        self.register_outputs(
            {
                "key_arn": self.key_arn,
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "code_key": self.code_key,
            }
        )

    def _create_key(self) -> aws.kms.Key:
        identity = aws.get_caller_identity_output()
        region = aws.get_region_output()
        partition = aws.get_partition_output()
        grantees = self._args.promotion_grantees

        def document(a: list[str]) -> str:
            policy = key_policy(a[0], a[1], a[2], self._args.alarm_name_prefixes)
            # The one cross-stack read: the promotion roles of the stacks this one promotes to.
            policy["Statement"] += key_grant_statements(partition=a[2], region=a[1], grantees=grantees)
            return json.dumps(policy)

        policy = pulumi.Output.all(identity.account_id, region.region, partition.partition).apply(document)
        key = aws.kms.Key(
            f"{self._name}-key",
            description=f"Encrypts the MLOps platform's data and artifacts ({self._args.bucket_name})",
            enable_key_rotation=True,
            deletion_window_in_days=self._args.key_deletion_window_days,
            policy=policy,
            # EventBridge encrypts an API destination connection's secret with a customer key
            # only if the key carries this tag (the GitLab promotion trigger uses it).
            tags=pulumi.Output.from_input(self._args.tags).apply(
                lambda tags: {**tags, EVENTBRIDGE_KEY_TAG: "true"}
            ),
            opts=self._opts,
        )
        # An alias gives people a readable name in the console and CLI; nothing refers to it.
        aws.kms.Alias(
            f"{self._name}-key-alias",
            name=f"alias/{self._args.bucket_name}",
            target_key_id=key.key_id,
            opts=self._opts,
        )
        return key

    def _create_bucket(self) -> aws.s3.Bucket:
        args = self._args
        bucket = aws.s3.Bucket(
            f"{self._name}-bucket",
            bucket=args.bucket_name,
            force_destroy=args.force_destroy,
            tags=args.tags,
            opts=self._opts,
        )
        aws.s3.BucketVersioning(
            f"{self._name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=self._opts,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{self._name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    # A bucket key cuts KMS requests (and their cost) by orders of magnitude.
                    "bucket_key_enabled": True,
                }
            ],
            opts=self._opts,
        )
        access_block = aws.s3.BucketPublicAccessBlock(
            f"{self._name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._opts,
        )
        # ACLs off: the bucket policy and IAM alone decide access, and every object is ours.
        aws.s3.BucketOwnershipControls(
            f"{self._name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=self._opts,
        )
        aws.s3.BucketPolicy(
            f"{self._name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(self._bucket_policy(arn))),
            # S3 rejects a policy put while the public access block is still being written.
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=[access_block])),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{self._name}-lifecycle",
            bucket=bucket.id,
            rules=lifecycle_rules(
                args.data_capture_expiry_days,
                args.quarantine_expiry_days,
                args.noncurrent_version_expiry_days,
            ),
            opts=self._opts,
        )
        # Object events go to EventBridge, where the ingestion rule matches raw/ uploads. This
        # resource owns the bucket's whole notification configuration: other components add
        # EventBridge rules, never another BucketNotification (it would overwrite this one).
        aws.s3.BucketNotification(
            f"{self._name}-eventbridge",
            bucket=bucket.id,
            eventbridge=True,
            opts=self._opts,
        )
        return bucket

    def _bucket_policy(self, bucket_arn: str) -> dict[str, Any]:
        policy = tls_only_bucket_policy(bucket_arn)
        if self._args.promotion_grantees:
            # The one cross-stack read: the promotion roles of the stacks this one promotes to.
            policy["Statement"] += bucket_grant_statements(
                partition=bucket_arn.split(":")[1],
                bucket_arn=bucket_arn,
                prefixes=self._args.model_artifact_prefixes,
                grantees=self._args.promotion_grantees,
            )
        return policy

    def _create_object_uploads(self) -> None:
        args = self._args
        self.code_key: str = code_object_key(args.code_paths)
        # An archive of exactly the hashed files (not a FileArchive of the folder, which would
        # pick up __pycache__ and differ from machine to machine).
        archive = {name: pulumi.FileAsset(str(path)) for name, path in source_files(args.code_paths)}
        self._upload("model-code", self.code_key, pulumi.AssetArchive(archive), "application/zip")
        self.schema_keys: dict[str, str] = {}
        for path in map(Path, args.schema_paths):
            self.schema_keys[path.stem] = schema_object_key(path)
            self._upload(
                f"schema-{path.stem}",
                self.schema_keys[path.stem],
                pulumi.FileAsset(str(path)),
                "application/yaml",
            )

    def _upload(
        self, suffix: str, key: str, source: pulumi.Asset | pulumi.Archive, content_type: str
    ) -> None:
        aws.s3.BucketObjectv2(
            f"{self._name}-{suffix}",
            bucket=self.bucket.id,
            key=key,
            source=source,
            content_type=content_type,
            server_side_encryption="aws:kms",
            kms_key_id=self.key.arn,
            bucket_key_enabled=True,
            tags=self._args.tags,
            opts=self._opts,
        )


# -- IAM building blocks for the components whose roles reach into this bucket -----------------


def prefix_statements(bucket_arn: str, prefix: str, *, write: bool, delete: bool = False) -> list[dict]:
    """IAM statements for objects under one prefix of the bucket (and listing only that prefix)."""
    if not prefix.endswith("/"):
        raise ValueError(f"prefix {prefix!r}: expected a folder prefix ending in '/'")
    actions = ["s3:GetObject"]
    if write:
        actions += ["s3:PutObject", "s3:AbortMultipartUpload"]
    if delete:
        actions.append("s3:DeleteObject")
    name = "".join(part.capitalize() for part in re.split(r"[-/]", prefix) if part)
    return [
        {
            "Sid": f"ObjectsUnder{name}",
            "Effect": "Allow",
            "Action": actions,
            "Resource": f"{bucket_arn}/{prefix}*",
        },
        {
            "Sid": f"List{name}",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
        },
    ]


def key_use_statement(key_arn: str) -> dict[str, Any]:
    """IAM statement to encrypt and decrypt with the stack key (data keys, as S3 and SageMaker do)."""
    return {
        "Sid": "UseTheStackKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
        "Resource": key_arn,
    }
