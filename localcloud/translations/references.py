"""References checked as AWS checks them: what a resource names must exist.

moto accepts a model whose package or role does not exist, an EventBridge target whose role
or pipeline does not exist, and any KMS key id; AWS refuses them. Each check here reads the
emulator and fails naming the resource, the input and the missing reference. In a preview a
reference not known yet (an output of a resource the deploy creates) is checked when it is made.
"""

from __future__ import annotations

from typing import Any

from localcloud.translations.base import Request, is_unknown


def _check(call: Request, found: bool, member: str, kind: str, value: str) -> None:
    if not found:
        raise call.fail(f"{member} refers to {kind} {value!r}, which does not exist")


def role(call: Request, arn: str | None, member: str) -> None:
    if arn:
        _check(call, call.exists("iam", "GetRole", RoleName=arn.rsplit("/", 1)[-1]), member, "IAM role", arn)


def kms_key(call: Request, key: str | None, member: str) -> None:
    if key:
        _check(call, call.exists("kms", "DescribeKey", KeyId=key), member, "KMS key", key)


def model_package(call: Request, arn: str | None, member: str) -> None:
    if arn:
        found = call.exists("sagemaker", "DescribeModelPackage", ModelPackageName=arn)
        _check(call, found, member, "model package", arn)


def target(call: Request, arn: str | None, member: str) -> None:
    """An EventBridge or Scheduler target: a SageMaker pipeline, Lambda function or SNS topic."""
    if not arn or is_unknown(arn):
        return
    service = arn.split(":")[2]
    if service == "sagemaker" and ":pipeline/" in arn:
        found = call.exists("sagemaker", "DescribePipeline", PipelineName=arn.rsplit("/", 1)[-1])
        _check(call, found, member, "SageMaker pipeline", arn)
    elif service == "lambda":
        _check(call, call.exists("lambda", "GetFunction", FunctionName=arn), member, "Lambda function", arn)
    elif service == "sns":
        _check(call, call.exists("sns", "GetTopicAttributes", TopicArn=arn), member, "SNS topic", arn)


def model_names(call: Request, variants: list[dict[str, Any]] | None, member: str) -> None:
    for i, variant in enumerate(variants or []):
        name = variant.get("modelName")
        if is_unknown(name):
            continue
        found = call.exists("sagemaker", "DescribeModel", ModelName=name)
        _check(call, found, f"{member}[{i}].modelName", "SageMaker model", name)
