"""``mlops promote --from <package-arn> --stack <target>``: give a stack its own copy of an approved model.

Each stack serves, monitors and retrains from its own resources only, so a model approved in
dev is not deployed to staging as dev's package: it is copied. This command

1. reads the source package (it must be Approved, in the group of a stack before the target in
   the target's ``promotionOrder``);
2. copies every object the package points at (``ModelDataUrl``, the ``ModelMetrics`` and
   ``DriftCheckBaselines`` reports, any ``s3://`` customer metadata) into the target's bucket
   under ``pipelines/promoted/<source stack>/<source key>``, encrypted with the target's key;
   each must lie under the source's model-artifact prefixes, the only ones granted;
3. registers, in the target's group, a package with the source's metrics, ``DataStart`` /
   ``DataEnd`` and other metadata, its lineage (``PromotedFrom``, ``PromotedFromStack``,
   ``PromotedFromAccount``) and the image of the target's own ECR repository at the source
   image's digest, approved as the target's rules say: Approved when the source's ``Auc``
   meets the target's ``minAuc`` (the person who runs the manual deploy job approves the rest),
   refused below it, PendingManualApproval when no AUC was recorded;
4. prints the target package ARN as its last line (``--json``: the whole record).

Promoting the same source again finds the package it made (by ``PromotedFrom``) and gives it
back: a repeated approval event, or a re-run CI job, creates nothing new. A package of the
target's own group is given back as it is (the stack it was approved in deploys it).

Credentials are the target's: in CI, the deploy job assumes the target stack's promotion role
(``--role-arn``, the stack output ``promotionRoleArn``). ``AWS_ENDPOINT_URL`` reaches the local
cloud. Exit status 1 with the reason when the promotion cannot be made; nothing is registered
then (copies already made are overwritten by the next attempt).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import yaml
from botocore.exceptions import ClientError

from infra import config as config_mod
from infra.promotion import (
    PROMOTED_DESCRIPTION_PREFIX,
    artifact_bucket_name,
    key_alias,
    model_artifact_prefixes,
    promoted_key,
    promotes_from,
    resource_prefix,
)
from model_code.contract import schema as schema_mod

_PACKAGE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"model-package/(?P<group>[^/]+)/(?P<version>\d+)$"
)
_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
APPROVED = "Approved"


class PromotionError(RuntimeError):
    """The promotion cannot be made; the message says what and why."""


@dataclass(frozen=True)
class Target:
    """The target stack's names, all derived as the program derives them."""

    stack: str
    account: str
    region: str
    schema_name: str
    order: tuple[Any, ...]
    min_auc: float = 0.0

    @property
    def group(self) -> str:
        return resource_prefix(self.schema_name, self.stack)

    @property
    def bucket(self) -> str:
        return artifact_bucket_name(self.schema_name, self.stack, self.account)

    @property
    def repository(self) -> str:
        return resource_prefix(self.schema_name, self.stack)


@dataclass
class Promotion:
    """What ``mlops promote`` did (``--json`` prints it)."""

    source_package_arn: str
    source_stack: str
    source_account: str
    target_stack: str
    model_package_arn: str
    created: bool
    image: str
    artifacts: dict[str, str] = field(default_factory=dict)


def load_target(stack: str, account: str, root: Path = config_mod.ROOT) -> Target:
    """The target stack's validated config (``Pulumi.<stack>.yaml``) as names."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise PromotionError(f"--stack {stack}: no stack file {path.name}")
    values, region = config_mod.stack_values(yaml.safe_load(path.read_text()) or {})
    config = config_mod.parse(values, stack=stack, region=region, root=root)
    schema = schema_mod.load(root / config.schema_path)
    return Target(stack, account, region, schema.name, config.promotion_order, config.min_auc)


def source_stack_of(group: str, schema_name: str) -> str:
    """The stack a group belongs to: groups are named ``<schema>-<stack>``."""
    if not group.startswith(f"{schema_name}-"):
        raise PromotionError(
            f"--from: group {group!r} is not a {schema_name} stack's group (<schema>-<stack>)"
        )
    return group[len(schema_name) + 1 :]


def referenced_uris(package: dict[str, Any]) -> dict[str, str]:
    """Every ``s3://`` URI the package points at, by where it is (``ModelMetrics.ModelQuality.Statistics``)."""
    found: dict[str, str] = {}
    for i, container in enumerate(package.get("InferenceSpecification", {}).get("Containers", [])):
        if container.get("ModelDataUrl"):
            found[f"InferenceSpecification.Containers[{i}].ModelDataUrl"] = container["ModelDataUrl"]
    for section in ("ModelMetrics", "DriftCheckBaselines"):
        for kind, reports in (package.get(section) or {}).items():
            for name, report in (reports or {}).items():
                if isinstance(report, dict) and str(report.get("S3Uri", "")).startswith("s3://"):
                    found[f"{section}.{kind}.{name}"] = report["S3Uri"]
    for key, value in (package.get("CustomerMetadataProperties") or {}).items():
        if isinstance(value, str) and value.startswith("s3://"):
            found[f"CustomerMetadataProperties.{key}"] = value
    return found


def _granted(key: str, prefixes: tuple[str, ...]) -> bool:
    # The bucket policy's resources, as S3 matches them: '*' is any run of characters.
    return any(re.fullmatch(".*".join(map(re.escape, p.split("*"))) + ".*", key) for p in prefixes)


def plan_copies(
    package: dict[str, Any],
    *,
    source_bucket: str,
    source_stack: str,
    training_pipeline: str,
    target_bucket: str,
) -> dict[str, str]:
    """Source URI -> target URI for every object the package points at; PromotionError for one
    outside the source's model-artifact prefixes (the promotion role may not read it)."""
    prefixes = model_artifact_prefixes(training_pipeline)
    copies: dict[str, str] = {}
    for where, uri in referenced_uris(package).items():
        parsed = urlparse(uri)
        key = parsed.path.lstrip("/")
        if parsed.netloc != source_bucket or not _granted(key, prefixes):
            raise PromotionError(
                f"{where}: {uri} is outside the source stack's model artifacts "
                f"(s3://{source_bucket}/{' or '.join(prefixes)}): the promotion role may not read it"
            )
        copies[uri] = f"s3://{target_bucket}/{promoted_key(source_stack, key)}"
    return copies


def rewrite(value: Any, copies: dict[str, str]) -> Any:
    """``value`` with every copied URI replaced by its copy's."""
    if isinstance(value, dict):
        return {k: rewrite(v, copies) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite(v, copies) for v in value]
    return copies.get(value, value) if isinstance(value, str) else value


def target_package_request(
    source: dict[str, Any],
    *,
    group: str,
    image: str,
    copies: dict[str, str],
    source_stack: str,
    source_account: str,
    status: str = APPROVED,
) -> dict[str, Any]:
    """The ``CreateModelPackage`` request of the target's copy."""
    containers = [
        {**rewrite(c, copies), "Image": image}
        for c in source.get("InferenceSpecification", {}).get("Containers", [])
    ]
    # Only what CreateModelPackage takes back from DescribeModelPackage's container.
    keep = {"ContainerHostname", "Image", "ModelDataUrl", "Environment", "Framework", "FrameworkVersion"}
    # The rest of the specification (the content types and instance types it supports) is the
    # same in DescribeModelPackage's answer and CreateModelPackage's request.
    spec = {k: v for k, v in source.get("InferenceSpecification", {}).items() if k != "Containers"}
    spec["Containers"] = [{k: v for k, v in c.items() if k in keep} for c in containers]
    metadata = {
        **rewrite(source.get("CustomerMetadataProperties") or {}, copies),
        "PromotedFrom": source["ModelPackageArn"],
        "PromotedFromStack": source_stack,
        "PromotedFromAccount": source_account,
    }
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"{PROMOTED_DESCRIPTION_PREFIX}{source['ModelPackageArn']}"[:1024],
        "InferenceSpecification": spec,
        "ModelApprovalStatus": status,
        "CustomerMetadataProperties": metadata,
    }
    for section in ("ModelMetrics", "DriftCheckBaselines"):
        if source.get(section):
            request[section] = rewrite(source[section], copies)
    return request


def approval_status(metadata: dict[str, str], *, stack: str, min_auc: float) -> str:
    """The copy's approval as the target's rules say: its quality bar (``minAuc``) on the AUC the
    source was evaluated with. Below it: PromotionError, nothing is registered. No AUC recorded:
    PendingManualApproval, for a person to decide in the target's registry."""
    raw = metadata.get("Auc")
    if raw in (None, ""):
        return "PendingManualApproval"
    try:
        auc = float(raw)
    except ValueError:
        raise PromotionError(f"CustomerMetadataProperties.Auc: {raw!r} is not a number") from None
    if auc < min_auc:
        raise PromotionError(
            f"CustomerMetadataProperties.Auc: {auc:g} is below {stack}'s minAuc {min_auc:g}: not promoted"
        )
    return APPROVED


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def find_promoted(sm: Any, group: str, source_arn: str, stack: str) -> str | None:
    """The package of ``group`` promoted from ``source_arn``, if one was made already."""
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as error:
        if _code(error) not in ("ValidationException", "ResourceNotFound"):
            raise PromotionError(
                f"--stack: the target's model package group {group}: {_code(error)}: {error}"
            ) from None
        # A stack's first promotion can come before its first deploy (.ci/deploy promotes, then
        # deploys): nothing of the target exists yet to copy into.
        raise PromotionError(
            f"--stack: the target's model package group {group} does not exist ({_code(error)}): "
            f"deploy {stack} once before promoting to it"
        ) from None
    for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        for summary in page.get("ModelPackageSummaryList", []):
            described = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (described.get("CustomerMetadataProperties") or {}).get("PromotedFrom") == source_arn:
                return described["ModelPackageArn"]
    return None


def target_image(ecr: Any, source_image: str, repository: str, registry: str) -> str:
    """The target repository's image at the source image's digest.

    A digest in the source URI is used as is; a tag is resolved in the source repository (if
    readable) and in the target's: the build pushes one image under one tag to every stack's
    repository, and tags are immutable, so both name the same digest, or the promotion stops.
    """
    parsed = _IMAGE.match(source_image)
    if not parsed:
        raise PromotionError(
            f"InferenceSpecification.Containers[0].Image: {source_image!r} is not an ECR image URI"
        )
    digest = parsed["digest"]
    if digest is None:
        tag = parsed["tag"] or "latest"
        source_digest = None
        try:
            found = ecr.describe_images(
                registryId=parsed["account"],
                repositoryName=parsed["repository"],
                imageIds=[{"imageTag": tag}],
            )["imageDetails"]
            source_digest = found[0]["imageDigest"] if found else None
        except ClientError:
            pass  # the source repository is not granted: the tag decides (see above)
        try:
            found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])[
                "imageDetails"
            ]
        except ClientError as error:
            raise PromotionError(
                f"image {source_image}: tag {tag!r} is not in the target repository {repository} "
                f"({_code(error)}): push the build there first"
            ) from None
        digest = found[0]["imageDigest"]
        if source_digest is not None and source_digest != digest:
            raise PromotionError(
                f"image {source_image}: {repository}:{tag} is {digest}, not the source's {source_digest}"
            )
    else:
        try:
            ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])
        except ClientError as error:
            raise PromotionError(
                f"image {source_image}: digest {digest} is not in the target repository {repository} "
                f"({_code(error)}): push the build there first"
            ) from None
    return f"{registry}/{repository}@{digest}"


def promote(
    source_arn: str,
    stack: str,
    *,
    session: Any | None = None,
    root: Path = config_mod.ROOT,
    log: Callable[[str], None] = lambda line: None,
) -> Promotion:
    """Copy the approved ``source_arn`` into ``stack``; the target package (existing or new)."""
    session = session or boto3.session.Session()
    parsed = _PACKAGE_ARN.match(source_arn)
    if not parsed:
        raise PromotionError(
            f"--from: {source_arn!r} is not a versioned model package ARN "
            "(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)"
        )
    account = session.client("sts").get_caller_identity()["Account"]
    target = load_target(stack, account, root)
    source_stack = source_stack_of(parsed["group"], target.schema_name)
    if source_stack == stack:
        # The stack the model was approved in deploys its own package (CI runs the same
        # command for every stack of the promotion).
        return _own(session, target, source_arn, parsed["account"])
    allowed = [s.stack for s in promotes_from(target.order, stack)]
    if source_stack not in allowed:
        order = " → ".join(s.stack for s in target.order) or "unset"
        raise PromotionError(
            f"--from: a package of stack {source_stack!r} does not promote to {stack!r} "
            f"(promotionOrder of {stack}: {order}; {stack} promotes from: {', '.join(allowed) or 'none'})"
        )
    expected_account = next(s.account for s in target.order if s.stack == source_stack) or account
    if parsed["account"] != expected_account:
        raise PromotionError(
            f"--from: {source_arn} is in account {parsed['account']}, but promotionOrder puts "
            f"{source_stack} in {expected_account}"
        )
    sm = session.client("sagemaker", region_name=target.region)
    try:
        source = sm.describe_model_package(ModelPackageName=source_arn)
    except ClientError as error:
        raise PromotionError(f"--from: {source_arn}: {_code(error)}: {error}") from None
    if source.get("ModelApprovalStatus") != APPROVED:
        raise PromotionError(
            f"--from: {source_arn} is {source.get('ModelApprovalStatus')}, not Approved: only an approved model is promoted"
        )

    status = approval_status(
        source.get("CustomerMetadataProperties") or {}, stack=stack, min_auc=target.min_auc
    )
    ecr = session.client("ecr", region_name=target.region)
    registry = f"{account}.dkr.ecr.{target.region}.amazonaws.com"
    containers = source.get("InferenceSpecification", {}).get("Containers") or [{}]
    image = target_image(ecr, containers[0].get("Image", ""), target.repository, registry)
    copies = plan_copies(
        source,
        source_bucket=artifact_bucket_name(target.schema_name, source_stack, parsed["account"]),
        source_stack=source_stack,
        training_pipeline=f"{resource_prefix(target.schema_name, source_stack)}-training",
        target_bucket=target.bucket,
    )
    existing = find_promoted(sm, target.group, source_arn, stack)
    record = Promotion(
        source_package_arn=source_arn,
        source_stack=source_stack,
        source_account=parsed["account"],
        target_stack=stack,
        model_package_arn=existing or "",
        created=existing is None,
        image=image,
        artifacts=copies,
    )
    if existing:
        log(f"already promoted: {source_arn} is {existing} in {target.group}")
        return _approved(sm, record)

    kms = session.client("kms", region_name=target.region)
    key_arn = kms.describe_key(KeyId=key_alias(target.bucket))["KeyMetadata"]["Arn"]
    s3 = session.client("s3", region_name=target.region)
    for src, dst in copies.items():
        s, d = urlparse(src), urlparse(dst)
        try:
            s3.copy(
                {"Bucket": s.netloc, "Key": s.path.lstrip("/")},
                d.netloc,
                d.path.lstrip("/"),
                # The bucket's default encryption would do the same; stating the key makes a
                # copy into a bucket with another default fail rather than land unencrypted.
                ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn},
            )
        except ClientError as error:
            raise PromotionError(f"copying {src} to {dst}: {_code(error)}: {error}") from None
        log(f"copied {src} -> {dst}")
    request = target_package_request(
        source,
        group=target.group,
        image=image,
        copies=copies,
        source_stack=source_stack,
        source_account=parsed["account"],
        status=status,
    )
    record.model_package_arn = sm.create_model_package(**request)["ModelPackageArn"]
    log(f"registered {record.model_package_arn} ({status}) in {target.group}")
    return _approved(sm, record)


def _approved(sm: Any, record: Promotion) -> Promotion:
    """The record, if its package is Approved (a person may have approved it since)."""
    status = sm.describe_model_package(ModelPackageName=record.model_package_arn)["ModelApprovalStatus"]
    if status != APPROVED:
        raise PromotionError(
            f"{record.model_package_arn} is {status} (the source records no Auc to hold against "
            f"{record.target_stack}'s minAuc): approve it there, then run mlops promote again"
        )
    return record


def _own(session: Any, target: Target, arn: str, account: str) -> Promotion:
    sm = session.client("sagemaker", region_name=target.region)
    try:
        package = sm.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        raise PromotionError(f"--from: {arn}: {_code(error)}: {error}") from None
    if package.get("ModelApprovalStatus") != APPROVED:
        raise PromotionError(f"--from: {arn} is {package.get('ModelApprovalStatus')}, not Approved")
    image = (package.get("InferenceSpecification", {}).get("Containers") or [{}])[0].get("Image", "")
    return Promotion(arn, target.stack, account, target.stack, arn, False, image)


def as_role(session: Any, role_arn: str, stack: str) -> dict[str, str]:
    """The role's temporary credentials, as a boto3 session takes them (``--role-arn``)."""
    credentials = session.client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName=f"mlops-promote-{stack}"
    )["Credentials"]
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops promote", description=__doc__.split("\n\n")[0].replace("``", "")
    )
    add = parser.add_argument
    # Each help text alone on its line: the mutation run leaves what `--help` prints alone.
    add(
        "--from",
        dest="source",
        required=True,
        help="the approved model package ARN",
    )
    add(
        "--stack",
        required=True,
        help="the target stack (Pulumi.<stack>.yaml)",
    )
    add(
        "--role-arn",
        help="assume this role first (the target stack's promotionRoleArn)",
    )
    add(
        "--json",
        action="store_true",
        help="print the whole record as JSON",
    )
    args = parser.parse_args(argv)
    session = boto3.session.Session()
    try:
        if args.role_arn:
            session = boto3.session.Session(
                **as_role(session, args.role_arn, args.stack), region_name=session.region_name
            )
        record = promote(
            args.source, args.stack, session=session, log=lambda line: print(line, file=sys.stderr)
        )
    except (PromotionError, config_mod.ConfigError) as error:
        print(f"mlops promote: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(record), indent=2) if args.json else record.model_package_arn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
