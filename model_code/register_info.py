"""The model registry as container steps read it: the champion of a model package group.

The champion is the group's latest Approved model package (highest version). Training reads
three things from it: the ``DataEnd`` customer metadata (the newest event time it was trained
on; EngineerFeatures' new-data-only strategy starts after it), its model (the container's
``ModelDataUrl``, which EvaluateModel scores on the challenger's test rows) and its
evaluation.json (the ``ModelMetrics.ModelQuality.Statistics`` report, whose AUC was measured
on the champion's own, older test rows and is recorded beside the fair comparison).

Clients are made with boto3's defaults, so ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL``
(a local emulator) decide where they go, exactly as for the rest of the container.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from model_code import container

APPROVED = "Approved"
DATA_END_KEY = "DataEnd"


class RegistryError(container.StepFailed):
    """The registry (or the report it points to) could not be read; the message says which."""


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def latest_approved(group: str, client: Any = None) -> dict[str, Any] | None:
    """``DescribeModelPackage`` of the group's highest Approved version, or None if it has none.

    A group that does not exist yet has no champion (the first run creates it by
    registering). Any other failure, such as missing permissions, raises ``RegistryError``:
    guessing "no champion" there could approve a worse model.
    """
    client = client or _client("sagemaker")
    best: dict[str, Any] | None = None
    try:
        pages = client.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, ModelApprovalStatus=APPROVED
        )
        for page in pages:
            for summary in page.get("ModelPackageSummaryList", []):
                # Versions order packages even when two share a creation time.
                key = (summary.get("ModelPackageVersion") or 0, summary["CreationTime"])
                if best is None or key > (best.get("ModelPackageVersion") or 0, best["CreationTime"]):
                    best = summary
        if best is None:
            return None
        return client.describe_model_package(ModelPackageName=best["ModelPackageArn"])
    except _aws_errors() as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code == "ResourceNotFound":
            return None
        raise RegistryError(f"model package group {group!r}: could not read the registry: {exc}") from None


def data_end(package: dict[str, Any] | None) -> str | None:
    """The champion's ``DataEnd`` customer metadata (ISO-8601), if it has one."""
    if not package:
        return None
    return (package.get("CustomerMetadataProperties") or {}).get(DATA_END_KEY) or None


def evaluation_uri(package: dict[str, Any]) -> str | None:
    """Where the champion's evaluation.json is (``ModelMetrics.ModelQuality.Statistics``)."""
    return package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri") or None


def model_data_url(package: dict[str, Any]) -> str | None:
    """Where the package's model artifact (model.tar.gz) is: its first container's ModelDataUrl."""
    containers = package.get("InferenceSpecification", {}).get("Containers") or [{}]
    return containers[0].get("ModelDataUrl") or None


def _read(uri: str, client: Any = None) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise RegistryError(f"{uri}: expected an s3://bucket/key URI")
    client = client or _client("s3")
    try:
        return client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    except _aws_errors() as exc:
        raise RegistryError(f"{uri}: could not read: {exc}") from None


def download(uri: str, folder: str | Path, client: Any = None) -> Path:
    """The object at ``s3://bucket/key`` saved under ``folder`` by its file name; the path."""
    path = Path(folder) / (Path(urlparse(uri).path).name or "object")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_read(uri, client))
    return path


def read_json(uri: str, client: Any = None) -> dict[str, Any]:
    """A JSON document from ``s3://bucket/key``."""
    body = _read(uri, client)
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{uri}: not valid JSON: {exc}") from None
