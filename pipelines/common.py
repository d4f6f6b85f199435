"""What every pipeline builder shares: an offline SDK session, the S3 layout, step factories.

Building a definition must make no AWS call and need no credentials, and the same code must
give byte-identical JSON (so `pulumi preview` shows no spurious diff). The sagemaker 3.x SDK
gets there when:

* the session is a ``PipelineSession`` with the bucket given up front (``default_bucket()``
  would otherwise look the bucket up in S3) and telemetry opted out (it would otherwise send
  a request per step);
* the role is not validated through IAM (``SAGEMAKER_VALIDATE_ROLE=false``);
* model code reaches SageMaker inside the project image, whose URI (a content-derived tag
  or digest set by CI) is the only reference to it: a code change is an image change and
  shows as a diff.

Every output goes under ``s3://<bucket>/pipelines/<pipeline>/<execution id>/<step>/<output>``
through pipeline variables, so each execution writes its own prefix without the definition
carrying anything run-specific.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")

# Placeholders used when a definition is printed without a stack (`mlops pipeline definition`).
DEFAULT_REGION = "eu-west-1"
PLACEHOLDER_ACCOUNT = "000000000000"
PLACEHOLDER_BUCKET = "mlops-platform-artifacts"
PLACEHOLDER_ROLE = f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/mlops-platform-pipelines"


def placeholder_image(region: str) -> str:
    return f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/mlops-platform:local"


# Where the container steps read and write, as SageMaker mounts them.
PROCESSING = "/opt/ml/processing"
_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@dataclass(frozen=True)
class Target:
    """Where and as whom a pipeline runs: everything a builder needs from the stack."""

    region: str = DEFAULT_REGION
    role_arn: str = PLACEHOLDER_ROLE
    bucket: str = PLACEHOLDER_BUCKET
    image_uri: str | None = None
    kms_key_arn: str | None = None

    @property
    def image(self) -> str:
        return self.image_uri or placeholder_image(self.region)


def _validate_sdk_config_once() -> None:
    """Make the SDK validate a given defaults config once instead of on every lookup.

    sagemaker 3.x re-checks the whole config against its JSON schema each time a step reads
    a default (about 0.25 s, 60 times per pipeline): 20 s of a 21 s build. Our config is a
    constant, so one validation per distinct config keeps the check and drops the cost.
    """
    from sagemaker.core.config.config_manager import SageMakerConfig

    validate = SageMakerConfig.validate_sagemaker_config
    if getattr(validate, "validates_once", False):
        return
    seen: set[str] = set()

    def validate_once(sagemaker_config: dict | None = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=str)
        if key not in seen:
            validate(sagemaker_config)
            seen.add(key)

    validate_once.validates_once = True
    SageMakerConfig.validate_sagemaker_config = staticmethod(validate_once)


def session(target: Target) -> Any:
    """A PipelineSession that never calls AWS while a definition is built."""
    os.environ.setdefault("AWS_DEFAULT_REGION", target.region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from pipelines import service_models

    _validate_sdk_config_once()
    service_models.share()

    return PipelineSession(
        boto_session=boto3.Session(region_name=target.region),
        default_bucket=target.bucket,
        sagemaker_config=_SDK_CONFIG,
    )


def output_uri(target: Target, pipeline: str, step: str, output: str) -> Any:
    """``s3://bucket/pipelines/<pipeline>/<execution id>/<step>/<output>`` as a pipeline variable."""
    from sagemaker.core.workflow import ExecutionVariables, Join

    return Join(
        on="/",
        values=[
            f"s3://{target.bucket}/pipelines/{pipeline}",
            ExecutionVariables.PIPELINE_EXECUTION_ID,
            step,
            output,
        ],
    )
