"""The local cloud's fixtures: one emulator per test module, reset to fresh for each use."""

from __future__ import annotations

import logging
import os
import uuid

import pytest

from localcloud.emulator import Emulator

# The program's pipeline builders log what they leave out of a definition; not news here.
logging.getLogger("sagemaker").setLevel(logging.ERROR)
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

APPROVED = {
    "ModelApprovalStatus": "Approved",
    "InferenceSpecification": {
        "Containers": [{"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["application/json"],
    },
}


@pytest.fixture(scope="module")
def emulator():
    # Per module: the emulator installs the behaviours, one installation per process at a time,
    # and the behaviour tests install their own.
    with Emulator() as emu:
        yield emu


@pytest.fixture
def fresh(emulator):
    """The emulator, emptied."""
    emulator.reset()
    return emulator


def register_approved(emulator: Emulator, group: str, bucket: str, artifact: bytes) -> str:
    """A model package approved in ``group`` with ``artifact`` (a model.tar.gz) in the stack's
    ``bucket`` where the training pipeline writes, as a pipeline and a reviewer leave it."""
    key = f"pipelines/{uuid.uuid4().hex}/model.tar.gz"
    emulator.client("s3").put_object(Bucket=bucket, Key=key, Body=artifact)
    # The stack's own repository (named as its group): its endpoint role may pull only that.
    container = {
        "Image": f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{group}:1",
        "ModelDataUrl": f"s3://{bucket}/{key}",
    }
    request = {
        **APPROVED,
        "InferenceSpecification": {**APPROVED["InferenceSpecification"], "Containers": [container]},
    }
    sagemaker = emulator.client("sagemaker")
    return sagemaker.create_model_package(ModelPackageGroupName=group, **request)["ModelPackageArn"]
