"""Requests to a served emulator are authorised as IAM would, as the principal that makes them.

The local stack is deployed (by the account's administrator, as a person deploys from a
laptop); then boto3 acts with the temporary credentials of the stack's roles, obtained as the
service that uses each role obtains them (its trust policy evaluated). What a role may do is
read back from the answers: AWS's AccessDenied, naming principal, action and resource.
"""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from localcloud.engine import Engine
from tests.localcloud.behaviours.endpoint_setup import pack
from tests.localcloud.conftest import register_approved

ACCOUNT = "123456789012"
ENDPOINT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/customer-churn-local-endpoint"
INGESTION_ROLE = "customer-churn-local-ingestion-pipeline"


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory, model_dir):
    """The local stack serving an approved model (so its endpoint role exists)."""
    emulator.reset()
    state_dir = tmp_path_factory.mktemp("state")
    fresh = Engine("local", emulator.endpoint_url, state_dir=state_dir).up().outputs
    package = register_approved(emulator, fresh["modelPackageGroup"], fresh["bucket"], pack(model_dir))
    overrides = {"mlops-platform:modelPackageArn": package}
    outputs = Engine("local", emulator.endpoint_url, state_dir=state_dir, overrides=overrides).up().outputs
    s3 = emulator.client("s3")
    s3.create_bucket(
        Bucket="another-stacks-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    s3.put_object(Bucket="another-stacks-artifacts", Key="pipelines/model.tar.gz", Body=b"theirs")
    return outputs


def as_role(emulator, role_arn: str) -> boto3.Session:
    """The role's credentials as SageMaker obtains them for the stack's endpoint."""
    source = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint/customer-churn-local"
    answer = requests.post(
        f"{emulator.endpoint_url}/_mlops/assume-role",
        json={"RoleArn": role_arn, "Service": "sagemaker.amazonaws.com", "SourceArn": source},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    c = answer.json()["Credentials"]
    return boto3.Session(
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
        region_name="eu-west-1",
    )


def denied(call) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
    return refused.value.response["Error"]["Message"]


def test_the_endpoint_role_reads_its_stacks_model_artifact_encrypted_with_its_key(emulator, stack):
    bucket = stack["bucket"]
    key = "pipelines/customer-churn-local-training/models/job-1/output/model.tar.gz"
    emulator.client("s3").put_object(
        Bucket=bucket, Key=key, Body=b"model", ServerSideEncryption="aws:kms", SSEKMSKeyId=stack["kmsKeyArn"]
    )
    s3 = as_role(emulator, ENDPOINT_ROLE).client("s3", endpoint_url=emulator.endpoint_url)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"model"


def test_the_endpoint_role_cannot_create_a_user(emulator, stack):
    iam = as_role(emulator, ENDPOINT_ROLE).client("iam", endpoint_url=emulator.endpoint_url)
    message = denied(lambda: iam.create_user(UserName="intruder"))
    assert message.startswith("User: arn:aws:sts::123456789012:assumed-role/customer-churn-local-endpoint/")
    assert (
        "is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::123456789012:user/intruder"
        in message
    )
    assert "intruder" not in [u["UserName"] for u in emulator.client("iam").list_users()["Users"]]


def test_the_endpoint_role_cannot_read_another_stacks_bucket(emulator, stack):
    s3 = as_role(emulator, ENDPOINT_ROLE).client("s3", endpoint_url=emulator.endpoint_url)
    message = denied(lambda: s3.get_object(Bucket="another-stacks-artifacts", Key="pipelines/model.tar.gz"))
    assert "s3:GetObject on resource: arn:aws:s3:::another-stacks-artifacts/pipelines/model.tar.gz" in message


def test_the_endpoint_role_cannot_read_its_own_bucket_outside_the_model_artifacts(emulator, stack):
    emulator.client("s3").put_object(Bucket=stack["bucket"], Key="raw/customer-churn/data.csv", Body=b"a,b\n")
    s3 = as_role(emulator, ENDPOINT_ROLE).client("s3", endpoint_url=emulator.endpoint_url)
    denied(lambda: s3.get_object(Bucket=stack["bucket"], Key="raw/customer-churn/data.csv"))


def test_a_service_the_trust_policy_does_not_name_cannot_assume_the_role(emulator, stack):
    answer = requests.post(
        f"{emulator.endpoint_url}/_mlops/assume-role",
        json={"RoleArn": ENDPOINT_ROLE, "Service": "lambda.amazonaws.com"},
        timeout=10,
    )
    assert answer.status_code == 403
    assert "lambda.amazonaws.com is not authorized to perform: sts:AssumeRole" in answer.json()["message"]
    assert "trust policy" in answer.json()["message"]


def test_the_administrator_cannot_assume_a_role_only_sagemaker_may(emulator, stack):
    message = denied(
        lambda: emulator.client("sts").assume_role(RoleArn=ENDPOINT_ROLE, RoleSessionName="person")
    )
    assert "sts:AssumeRole" in message


def test_credentials_the_emulator_never_issued_are_refused(emulator, stack):
    s3 = boto3.client(
        "s3",
        endpoint_url=emulator.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id="ASIAFORGED0000000000",
        aws_secret_access_key="x",
        aws_session_token="forged",
    )
    with pytest.raises(ClientError) as refused:
        s3.list_objects_v2(Bucket=stack["bucket"])
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_ledger_reports_the_denials_and_the_unused_grants(emulator, stack):
    report = requests.get(f"{emulator.endpoint_url}/_mlops/iam", timeout=10).json()
    assert report["evaluated"] > 0
    actions = {(d["action"], d["resource"]) for d in report["denied"]}
    assert ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/intruder") in actions
    # Never run here: the ingestion pipeline's role has used none of its grants.
    assert "s3:PutObject" in report["unused"][f"arn:aws:iam::{ACCOUNT}:role/{INGESTION_ROLE}"]


def test_removing_the_statement_that_reads_raw_uploads_fails_ingestion_naming_the_action(emulator, stack):
    """A representative of "remove any one statement": the ingestion pipeline's first step reads
    the upload as the pipeline's role; without the statement that grants it, the step fails
    with AccessDenied naming s3:GetObject, as the step would on AWS."""
    iam = emulator.client("iam")
    (name,) = iam.list_role_policies(RoleName=INGESTION_ROLE)["PolicyNames"]
    document = iam.get_role_policy(RoleName=INGESTION_ROLE, PolicyName=name)["PolicyDocument"]
    upload = f"arn:aws:s3:::{stack['bucket']}/raw/customer-churn/data.csv"

    def grants_read(statement):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        return "s3:GetObject" in actions and any(upload.startswith(r.rstrip("*")) for r in resources)

    kept = [s for s in document["Statement"] if not grants_read(s)]
    assert len(kept) == len(document["Statement"]) - 1
    iam.put_role_policy(
        RoleName=INGESTION_ROLE, PolicyName=name, PolicyDocument=json.dumps({**document, "Statement": kept})
    )
    try:
        sm = emulator.client("sagemaker")
        emulator.client("s3").put_object(
            Bucket=stack["bucket"], Key="raw/customer-churn/data.csv", Body=b"customer_id\n1\n"
        )
        emulator.behaviours.wait_for_executions(120)
        (run,) = sm.list_pipeline_executions(PipelineName=stack["pipelines"]["ingestion"].rsplit("/", 1)[-1])[
            "PipelineExecutionSummaries"
        ][:1]
        described = sm.describe_pipeline_execution(PipelineExecutionArn=run["PipelineExecutionArn"])
        assert described["PipelineExecutionStatus"] == "Failed"
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=run["PipelineExecutionArn"])
        reasons = " ".join(s.get("FailureReason", "") for s in steps["PipelineExecutionSteps"])
        assert "AccessDenied" in reasons or "Forbidden" in reasons
    finally:
        iam.put_role_policy(RoleName=INGESTION_ROLE, PolicyName=name, PolicyDocument=json.dumps(document))


def _without_statement(iam, role: str, grants) -> tuple[str, dict]:
    """The role's inline policy with the one statement ``grants`` picks removed (put back by the caller)."""
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    kept = [s for s in document["Statement"] if not grants(s)]
    assert len(kept) == len(document["Statement"]) - 1
    if kept:
        iam.put_role_policy(
            RoleName=role, PolicyName=name, PolicyDocument=json.dumps({**document, "Statement": kept})
        )
    else:  # IAM refuses a policy without statements: the role is left with none
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    return name, document


def _actions(statement) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_removing_the_upload_rules_grant_fails_the_eventbridge_delivery_naming_the_action(emulator, stack):
    """EventBridge starts the ingestion pipeline as the rule's target role: without its
    StartPipelineExecution grant the delivery fails (FailedInvocations), naming the action."""
    iam, role = emulator.client("iam"), "customer-churn-local-ingestion-events"
    name, document = _without_statement(
        iam, role, lambda s: "sagemaker:StartPipelineExecution" in _actions(s)
    )
    try:
        emulator.client("s3").put_object(
            Bucket=stack["bucket"], Key="raw/customer-churn/again.csv", Body=b"customer_id\n2\n"
        )
        failed = requests.get(f"{emulator.endpoint_url}/_mlops/deliveries", timeout=10).json()["failed"]
        errors = [
            f["error"] for f in failed if f["target"].endswith(":pipeline/customer-churn-local-ingestion")
        ]
        assert errors, failed
        assert f"assumed-role/{role}/" in errors[-1]
        assert "sagemaker:StartPipelineExecution" in errors[-1]
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


def test_removing_the_endpoint_roles_model_read_fails_the_update_naming_the_action(
    emulator, stack, model_dir
):
    """The endpoint role's ReadModelArtifacts statement is what lets SageMaker download a model:
    without it, the next update fails its health check with FailureReason naming s3:GetObject."""
    iam, role = emulator.client("iam"), "customer-churn-local-endpoint"
    sm = emulator.client("sagemaker")
    endpoint = stack["endpointName"]
    serving = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    name, document = _without_statement(
        iam, role, lambda s: _actions(s) == ["s3:GetObject"] or s["Action"] == "s3:GetObject"
    )
    try:
        config = sm.describe_endpoint_config(EndpointConfigName=serving)
        variants = [
            {k: v for k, v in variant.items() if k not in ("VariantName",)} | {"VariantName": "again"}
            for variant in config["ProductionVariants"]
        ]
        sm.create_endpoint_config(EndpointConfigName="without-read", ProductionVariants=variants)
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName="without-read")
        described = sm.describe_endpoint(EndpointName=endpoint)
        assert described["EndpointConfigName"] == serving
        assert f"assumed-role/{role}/" in described["FailureReason"]
        assert "s3:GetObject" in described["FailureReason"]
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


def test_the_offline_store_is_written_as_the_feature_groups_role_and_waits_for_it(emulator, stack):
    """SageMaker writes the offline store as the feature group's role: without its grant on
    the store's prefix no file appears, and the records wait; with it back, they arrive."""
    iam, role = emulator.client("iam"), "customer-churn-local-feature-store"
    s3, group = emulator.client("s3"), stack["featureGroup"]
    store = emulator.client("sagemaker").describe_feature_group(FeatureGroupName=group)["OfflineStoreConfig"]
    prefix = store["S3StorageConfig"]["ResolvedOutputS3Uri"].removeprefix(f"s3://{stack['bucket']}/")

    def files() -> int:
        return s3.list_objects_v2(Bucket=stack["bucket"], Prefix=prefix)["KeyCount"]

    before = files()
    described = emulator.client("sagemaker").describe_feature_group(FeatureGroupName=group)
    record = [
        {"FeatureName": d["FeatureName"], "ValueAsString": "1" if d["FeatureType"] != "String" else "x"}
        for d in described["FeatureDefinitions"]
    ]
    for item in record:
        if item["FeatureName"] == described["EventTimeFeatureName"]:
            item["ValueAsString"] = "2026-01-01T00:00:00Z"
    name, document = _without_statement(iam, role, lambda s: "s3:PutObject" in _actions(s))
    try:
        emulator.client("sagemaker-featurestore-runtime").put_record(FeatureGroupName=group, Record=record)
        emulator.behaviours.advance(16 * 60)
        assert files() == before
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
    emulator.behaviours.advance(60)
    assert files() == before + 1
