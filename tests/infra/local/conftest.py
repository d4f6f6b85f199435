"""The local cloud's fixtures: one emulator per test module, reset to fresh for each use."""

from __future__ import annotations

import logging
import os

import pytest

from infra.local.emulator import Emulator

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


def register_approved(emulator: Emulator, group: str) -> str:
    """A model package approved in ``group``, as the training pipeline and a reviewer leave it."""
    sagemaker = emulator.client("sagemaker")
    return sagemaker.create_model_package(ModelPackageGroupName=group, **APPROVED)["ModelPackageArn"]
