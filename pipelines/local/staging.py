"""A container step's files: ``/opt/ml`` remapped to the work folder, and S3 staged in and out.

Inputs are downloaded from S3 (every host gets all objects, or every n-th with
``ShardedByS3Key``), outputs are uploaded from the hosts' folders, and folders are packed as
SageMaker packs ``/opt/ml/model``. Plain functions of an S3 client and paths.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

from pipelines.local.errors import StepFailure

OPT_ML = "/opt/ml"


def download_input(s3: Any, inp: dict[str, Any], roots: dict[str, Path]) -> None:
    """A processing input into each host's remapped LocalPath (sharded or replicated)."""
    name, source = inp.get("InputName"), inp.get("S3Input")
    if source is None:
        raise StepFailure(f"input {name}: only S3 inputs run locally")
    for key, allowed in (("S3InputMode", ("File", "FastFile")), ("S3CompressionType", ("None",))):
        if source.get(key, allowed[0]) not in allowed:
            raise StepFailure(
                f"input {name}: {key} {source[key]} does not run locally ({' | '.join(allowed)} do)"
            )
    sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
    targets = {
        remap_path(source["LocalPath"], root): (i, len(roots)) if sharded else (0, 1)
        for i, root in enumerate(roots.values())
    }
    download(s3, source["S3Uri"], source.get("S3DataType", "S3Prefix"), targets, name)


def download(
    s3: Any, uri: str, data_type: str, targets: dict[Path, tuple[int, int]], name: str | None
) -> None:
    """Copy the objects under ``uri`` to each target folder; (i, n) takes every n-th from the i-th."""
    if data_type != "S3Prefix":
        raise StepFailure(f"input {name}: S3DataType {data_type} does not run locally (S3Prefix does)")
    bucket, prefix = split_s3(uri)
    keys = sorted(
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if not obj["Key"].endswith("/")
    )
    if not keys:
        raise StepFailure(f"input {name}: no S3 objects found under {uri}")
    for folder, (index, count) in targets.items():
        folder.mkdir(parents=True, exist_ok=True)
        for key in keys[index::count]:
            relative = os.path.basename(key) if key == prefix else key[len(prefix) :].lstrip("/")
            dest = folder / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(dest))


def upload_tree(s3: Any, folder: Path, uri: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        upload_file(s3, path, f"{uri.rstrip('/')}/{path.relative_to(folder).as_posix()}")


def upload_file(s3: Any, path: Path, uri: str) -> None:
    bucket, key = split_s3(uri)
    s3.upload_file(str(path), bucket, key)


def remap(arg: str, root: Path) -> str:
    """``/opt/ml/x`` → ``<root>/x``, also as the value of ``--option=/opt/ml/x``."""
    if arg == OPT_ML or arg.startswith(OPT_ML + "/"):
        return str(root) + arg[len(OPT_ML) :]
    option, sep, value = arg.partition("=")
    if sep and option.startswith("-") and (value == OPT_ML or value.startswith(OPT_ML + "/")):
        return f"{option}={root}{value[len(OPT_ML) :]}"
    return arg


def remap_path(path: str, root: Path) -> Path:
    remapped = remap(path, root)
    if remapped == path:
        raise StepFailure(f"{path}: a container path must be under {OPT_ML}")
    return Path(remapped)


def split_s3(uri: Any) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise StepFailure(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def pack(folder: Path, archive: Path) -> Path:
    """folder's files as a .tar.gz with the files at its root, as SageMaker packs /opt/ml/model."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    return archive
