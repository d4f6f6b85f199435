"""Deploying a model endpoint into the emulator through boto3, as a stack deploy does (shared by endpoint tests)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/endpoint"
IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mlops:latest"
BUCKET = "models"


def pack(model_dir: str) -> bytes:
    """The model folder as SageMaker's model.tar.gz (files at the archive's root)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def artifact_with_model_file(model_dir: str, content: bytes) -> bytes:
    """The artifact with its model.joblib replaced by ``content``."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "model"
        shutil.copytree(model_dir, target)
        (target / "model.joblib").write_bytes(content)
        return pack(str(target))


def failing_artifact(model_dir: str) -> bytes:
    """An artifact that loads and answers /ping, but whose every prediction fails (a 500): its
    model expects one input column where the schema gives it many."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), buffer)
    return artifact_with_model_file(model_dir, buffer.getvalue())


def sagemaker_role(iam, name: str, statements: list[dict[str, Any]]) -> str:
    """A role SageMaker may assume, allowed ``statements`` (the emulator authorises what
    SageMaker does with it: pull the image, download the model, run the steps)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_role_policy(RoleName=name, PolicyName="allowed", PolicyDocument=json.dumps(policy))
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def ensure_role(client) -> None:
    """The models' execution role: it may pull the image and read (only) the models bucket."""
    iam = client("iam")
    if ROLE.rsplit("/", 1)[-1] in [r["RoleName"] for r in iam.list_roles()["Roles"]]:
        return
    sagemaker_role(
        iam,
        ROLE.rsplit("/", 1)[-1],
        [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
            {
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/mlops",
            },
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        ],
    )


def upload_model(client, name: str, artifact: bytes) -> str:
    s3 = client("s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    ensure_role(client)
    s3.put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=artifact)
    client("sagemaker").create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{name}/model.tar.gz"},
        ExecutionRoleArn=ROLE,
    )
    return name


def variant(name: str, model: str, weight: float) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


def make_config(
    client, name: str, variants: list[dict], shadows: list[dict] = (), capture: bool = True
) -> str:
    request: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": variants}
    if shadows:
        request["ShadowProductionVariants"] = list(shadows)
    if capture:
        request["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/data-capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    client("sagemaker").create_endpoint_config(**request)
    return name


def invoke(runtime, endpoint: str, row: dict, **extra: Any) -> dict:
    return runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=json.dumps(row), **extra
    )
