"""RegisterModel and Model steps: CreateModelPackage and CreateModel through the run's strict client."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from pipelines.local.context import RunContext
from pipelines.local.errors import StepFailure
from pipelines.local.records import StepRecord


def register_model(context: RunContext, record: StepRecord, args: dict[str, Any]) -> None:
    sagemaker = context.client("sagemaker")
    arn = _call(sagemaker.create_model_package, args)["ModelPackageArn"]
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    described.pop("ResponseMetadata", None)
    context.properties[record.name] = {"ModelPackageArn": arn, **described}
    record.metadata = {"RegisterModel": {"Arn": arn}}
    record.outputs = {"ModelPackageArn": arn}


def create_model(context: RunContext, record: StepRecord, args: dict[str, Any]) -> None:
    # The SDK leaves ModelName out: SageMaker names the model per execution.
    request = {"ModelName": context.job_name(record.name), **args}
    arn = _call(context.client("sagemaker").create_model, request)["ModelArn"]
    context.properties[record.name] = {**request, "ModelArn": arn}
    record.metadata = {"Model": {"Arn": arn}}
    record.outputs = {"ModelName": request["ModelName"], "ModelArn": arn}


def _call(method: Any, request: dict[str, Any]) -> dict[str, Any]:
    # The strict client refuses what AWS would (RequestRefused is a ParamValidationError).
    try:
        return method(**request)
    except (ParamValidationError, ClientError) as exc:
        raise StepFailure(str(exc)) from exc
