"""The managed MLflow tracking server and the reach of its role."""

from __future__ import annotations

import json

import pytest

from infra.experiment_tracking import (
    ExperimentTracking,
    ExperimentTrackingArgs,
    tracking_server_policy,
    validate_size,
)
from tests.infra.harness import ACCOUNT, run

TAGS = {"project": "mlops-platform", "stack": "test", "owner": "ml-team"}
BUCKET = "customer-churn-test"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/stack-key"
SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"


def declare(**extra):
    args = ExperimentTrackingArgs(
        server_name="customer-churn-test",
        bucket_name=BUCKET,
        bucket_arn=BUCKET_ARN,
        kms_key_arn=KEY,
        tags=TAGS,
        **extra,
    )
    return run(lambda: ExperimentTracking("tracking", args))


@pytest.fixture(scope="module")
def deployed():
    return declare()


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_artifacts_go_under_the_buckets_mlflow_prefix(deployed):
    assert deployed.one(SERVER).inputs["artifactStoreUri"] == f"s3://{BUCKET}/mlflow/"


def test_server_runs_as_its_own_role(deployed):
    role = deployed.one("aws:iam/role:Role")
    assert deployed.one(SERVER).inputs["roleArn"] == role.outputs["arn"]
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_server_is_small_and_does_not_register_models_itself(deployed):
    server = deployed.one(SERVER).inputs
    assert server["trackingServerSize"] == "Small"
    assert server["automaticModelRegistration"] is False


def test_server_and_role_are_tagged(deployed):
    assert deployed.one(SERVER).inputs["tags"] == TAGS
    assert deployed.one("aws:iam/role:Role").inputs["tags"] == TAGS


def test_role_policy_is_attached_for_this_bucket_and_key(deployed):
    role = deployed.one("aws:iam/role:Role")
    policy = deployed.one("aws:iam/rolePolicy:RolePolicy").inputs
    assert policy["role"] == f"{role.name}-id"
    assert json.loads(policy["policy"]) == tracking_server_policy(BUCKET_ARN, KEY)


def test_role_reaches_only_the_mlflow_prefix_and_the_stack_key():
    resources = {
        r for s in tracking_server_policy(BUCKET_ARN, KEY)["Statement"] for r in as_list(s["Resource"])
    }
    assert resources == {BUCKET_ARN, f"{BUCKET_ARN}/mlflow/*", KEY}


def test_role_lists_only_the_mlflow_prefix():
    [listing] = [
        s for s in tracking_server_policy(BUCKET_ARN, KEY)["Statement"] if s["Action"] == "s3:ListBucket"
    ]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["mlflow/", "mlflow/*"]}}


def test_role_policy_has_no_wildcard_action():
    actions = [a for s in tracking_server_policy(BUCKET_ARN, KEY)["Statement"] for a in as_list(s["Action"])]
    assert not any(a == "*" or a.endswith(":*") for a in actions)


def test_a_pinned_mlflow_version_and_size_are_passed_through():
    server = declare(size="Medium", mlflow_version="3.0").one(SERVER).inputs
    assert (server["trackingServerSize"], server["mlflowVersion"]) == ("Medium", "3.0")


def test_an_unknown_size_is_refused():
    with pytest.raises(ValueError, match=r"size: 'Huge' is not one of Small \| Medium \| Large"):
        validate_size("Huge")
