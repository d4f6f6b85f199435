"""Experiment tracking: a SageMaker managed MLflow tracking server for the stack.

Training runs log parameters, metrics, the data version and the code version to it; its
artifacts (models, plots, reports) go to the artifact bucket under ``mlflow/``. AWS offers no
customer key for the server's own metadata store (CreateMlflowTrackingServer takes none): the
artifacts are encrypted with the stack key through the bucket's default encryption, and the
server's role may use that key and that prefix only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifact_store import (
    MLFLOW_PREFIX,
    key_use_statement,
    prefix_statements,
)
from infra.base import child_opts, sagemaker_trust, stack_boundary

SIZES = ("Small", "Medium", "Large")


@dataclass(frozen=True)
class ExperimentTrackingArgs:
    """The tracking server and where it keeps artifacts.

    server_name: the tracking server's AWS name, e.g. ``<schema>-<stack>``.
    bucket_name, bucket_arn: the artifact bucket; artifacts go under ``mlflow/``.
    kms_key_arn: the stack key the bucket encrypts artifacts with.
    tags: the standard tags (project, stack, owner).
    size: Small | Medium | Large ("Small": up to about 25 users, the cheapest).
    mlflow_version: the MLflow version to run (None: the newest SageMaker offers when created).
    """

    server_name: str
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    size: str = "Small"
    mlflow_version: str | None = None


def validate_size(size: str) -> str:
    if size not in SIZES:
        raise ValueError(f"size: {size!r} is not one of {' | '.join(SIZES)}")
    return size


def tracking_server_policy(bucket_arn: str, key_arn: str) -> dict[str, Any]:
    """The server's role: read, write and delete (garbage collection) under ``mlflow/`` only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            *prefix_statements(bucket_arn, MLFLOW_PREFIX, write=True, delete=True),
            {
                "Sid": "LocateTheBucket",
                "Effect": "Allow",
                "Action": "s3:GetBucketLocation",
                "Resource": bucket_arn,
            },
            key_use_statement(key_arn),
        ],
    }


class ExperimentTracking(pulumi.ComponentResource):
    """A managed MLflow tracking server with its artifact store in the artifact bucket.

    Public attributes: ``server``, ``tracking_server_arn``, ``tracking_server_url``,
    ``artifact_store_uri`` and ``role_arn``.
    """

    def __init__(self, name: str, args: ExperimentTrackingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:experiment_tracking:ExperimentTracking", name, None, opts)
        child = child_opts(self, opts)
        validate_size(args.size)

        role = aws.iam.Role(
            f"{name}-role",
            name=f"{args.server_name}-mlflow"[:64],
            description="SageMaker managed MLflow: the tracking server's artifact store",
            assume_role_policy=sagemaker_trust(),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=role.id,
            policy=pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                lambda a: json.dumps(tracking_server_policy(a[0], a[1]))
            ),
            opts=child,
        )
        self.artifact_store_uri: pulumi.Output[str] = pulumi.Output.concat(
            "s3://", args.bucket_name, "/", MLFLOW_PREFIX
        )
        self.server = aws.sagemaker.MlflowTrackingServer(
            f"{name}-server",
            tracking_server_name=args.server_name,
            artifact_store_uri=self.artifact_store_uri,
            role_arn=role.arn,
            tracking_server_size=args.size,
            mlflow_version=args.mlflow_version,
            # The training pipeline registers models in the model package group after its quality
            # gate; MLflow registering every logged model there too would bypass that gate.
            automatic_model_registration=False,
            tags=args.tags,
            # SageMaker checks the role can reach the artifact store when the server is created.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[role_policy])),
        )

        self.role_arn: pulumi.Output[str] = role.arn
        self.tracking_server_arn: pulumi.Output[str] = self.server.arn
        self.tracking_server_url: pulumi.Output[str] = self.server.tracking_server_url
        self.register_outputs(
            {
                "tracking_server_arn": self.tracking_server_arn,
                "tracking_server_url": self.tracking_server_url,
                "artifact_store_uri": self.artifact_store_uri,
            }
        )
