"""The emulator's extensions, each through boto3 against a fresh emulator."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from localcloud.emulator import EmulatorProcess
from localcloud.emulator.session import session_for
from tests.localcloud.behaviours.endpoint_setup import pack, sagemaker_role, upload_model
from tests.localcloud.conftest import APPROVED

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
# What these tests' pipelines and tracking server may do (they test the extensions, not IAM).
ANYTHING = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]


IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"


def _tls_only(bucket: str) -> str:
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": resources,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": resources,
                    "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
                },
            ],
        }
    )


def _bucket(s3, name: str) -> None:
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


def test_a_tls_only_bucket_policy_lets_the_emulators_requests_through(fresh):
    s3 = fresh.client("s3")
    _bucket(s3, "tls-only-bucket")
    s3.put_bucket_policy(Bucket="tls-only-bucket", Policy=_tls_only("tls-only-bucket"))
    s3.put_object(Bucket="tls-only-bucket", Key="data.csv", Body=b"a,b\n")
    assert s3.get_object(Bucket="tls-only-bucket", Key="data.csv")["Body"].read() == b"a,b\n"


def test_bucket_policy_conditions_are_really_evaluated(fresh):
    # The same condition key, denying when the transport *is* secure: the emulator's requests are.
    s3 = fresh.client("s3")
    _bucket(s3, "deny-tls-bucket")
    policy = json.loads(_tls_only("deny-tls-bucket"))
    policy["Statement"][0]["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    s3.put_bucket_policy(Bucket="deny-tls-bucket", Policy=json.dumps(policy))
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="deny-tls-bucket", Key="data.csv", Body=b"a,b\n")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _model(emulator, name: str, model_dir: str) -> None:
    """A model whose artifact serves: the endpoint's containers start only for a model that loads."""
    upload_model(emulator.client, name, pack(model_dir))


def _config(sagemaker, name: str, shadow: bool = False) -> None:
    variant = {
        "VariantName": "champion",
        "ModelName": "champion",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }
    extra = {}
    if shadow:
        extra["ShadowProductionVariants"] = [
            {**variant, "VariantName": "challenger", "ModelName": "challenger"}
        ]
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant], **extra)


def test_an_endpoint_configuration_keeps_its_shadow_variants(fresh, model_dir):
    sagemaker = fresh.client("sagemaker")
    _model(fresh, "champion", model_dir)
    _model(fresh, "challenger", model_dir)
    _config(sagemaker, "with-shadow", shadow=True)
    found = sagemaker.describe_endpoint_config(EndpointConfigName="with-shadow")
    assert [v["VariantName"] for v in found["ShadowProductionVariants"]] == ["challenger"]
    # An endpoint serving it shows its shadow variant too; switched to one without, none.
    sagemaker.create_endpoint(EndpointName="churn", EndpointConfigName="with-shadow")
    endpoint = sagemaker.describe_endpoint(EndpointName="churn")
    assert [(v["VariantName"], v["CurrentInstanceCount"]) for v in endpoint["ShadowProductionVariants"]] == [
        ("challenger", 1)
    ]
    _config(sagemaker, "without")
    sagemaker.update_endpoint(EndpointName="churn", EndpointConfigName="without")
    assert "ShadowProductionVariants" not in sagemaker.describe_endpoint(EndpointName="churn")


def test_a_shadow_variant_needs_an_existing_model(fresh, model_dir):
    sagemaker = fresh.client("sagemaker")
    _model(fresh, "champion", model_dir)
    with pytest.raises(ClientError, match="Could not find model"):
        _config(sagemaker, "missing-shadow", shadow=True)


def test_creating_an_endpoint_twice_is_refused_and_update_switches_its_configuration(fresh, model_dir):
    sagemaker = fresh.client("sagemaker")
    _model(fresh, "champion", model_dir)
    _config(sagemaker, "blue")
    _config(sagemaker, "green")
    sagemaker.create_endpoint(EndpointName="churn", EndpointConfigName="blue")
    with pytest.raises(ClientError, match="Cannot create already existing endpoint"):
        sagemaker.create_endpoint(EndpointName="churn", EndpointConfigName="green")
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 60,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            }
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "churn-5xx"}]},
    }
    sagemaker.update_endpoint(EndpointName="churn", EndpointConfigName="green", DeploymentConfig=deployment)
    # The rollout (the behaviours' UpdateEndpoint, the only one) bakes on the virtual clock.
    assert sagemaker.describe_endpoint(EndpointName="churn")["EndpointStatus"] == "Updating"
    fresh.behaviours.advance(600)
    found = sagemaker.describe_endpoint(EndpointName="churn")
    assert (found["EndpointStatus"], found["EndpointConfigName"]) == ("InService", "green")
    assert found["LastDeploymentConfig"] == deployment


def test_a_pipeline_execution_started_in_the_emulator_runs_its_steps(fresh):
    sagemaker_role(fresh.client("iam"), "sagemaker", ANYTHING)
    sagemaker = fresh.client("sagemaker")
    step = {
        "Name": "SayHello",
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
            },
            "AppSpecification": {
                "ImageUri": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mlops:1",
                "ContainerEntrypoint": ["python", "-c", "print('hello')"],
            },
            "RoleArn": ROLE,
        },
    }
    definition = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [step]})
    sagemaker.create_pipeline(PipelineName="hello", PipelineDefinition=definition, RoleArn=ROLE)
    arn = sagemaker.start_pipeline_execution(PipelineName="hello")["PipelineExecutionArn"]
    fresh.behaviours.wait_for_executions(60)
    assert (
        sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        == "Succeeded"
    )
    steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [("SayHello", "Succeeded")]


def test_a_feature_group_keeps_its_description_online_store_key_and_catalog(fresh):
    sagemaker = fresh.client("sagemaker")
    key = "arn:aws:kms:eu-west-1:123456789012:key/feature-key"
    catalog = {"Catalog": "AwsDataCatalog", "Database": "churn_features", "TableName": "churn_offline"}
    sagemaker.create_feature_group(
        FeatureGroupName="churn",
        RecordIdentifierFeatureName="id",
        EventTimeFeatureName="time",
        FeatureDefinitions=[
            {"FeatureName": "id", "FeatureType": "String"},
            {"FeatureName": "time", "FeatureType": "String"},
        ],
        OnlineStoreConfig={"EnableOnlineStore": True, "SecurityConfig": {"KmsKeyId": key}},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://bucket/fs"}, "DataCatalogConfig": catalog},
        RoleArn=ROLE,
        Description="churn features",
    )
    found = sagemaker.describe_feature_group(FeatureGroupName="churn")
    assert found["Description"] == "churn features"
    assert found["OnlineStoreConfig"]["SecurityConfig"]["KmsKeyId"] == key
    assert found["OfflineStoreConfig"]["DataCatalogConfig"] == catalog
    sagemaker.delete_feature_group(FeatureGroupName="churn")
    assert sagemaker.list_feature_groups()["FeatureGroupSummaries"] == []


def test_a_model_package_group_holding_packages_cannot_be_deleted(fresh):
    sagemaker = fresh.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    package = sagemaker.create_model_package(ModelPackageGroupName="churn", **APPROVED)["ModelPackageArn"]
    with pytest.raises(ClientError, match="contains model packages"):
        sagemaker.delete_model_package_group(ModelPackageGroupName="churn")
    sagemaker.delete_model_package(ModelPackageName=package)
    sagemaker.delete_model_package_group(ModelPackageGroupName="churn")
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_the_emulator_runs_as_a_process_of_its_own_with_the_extensions():
    emulator = EmulatorProcess()
    try:
        assert emulator.endpoint_url.startswith("http://127.0.0.1:")
        sagemaker = session_for("eu-west-1").client("sagemaker", endpoint_url=emulator.endpoint_url)
        sagemaker_role(
            session_for("eu-west-1").client("iam", endpoint_url=emulator.endpoint_url), "sagemaker", ANYTHING
        )
        sagemaker.create_mlflow_tracking_server(
            TrackingServerName="churn", ArtifactStoreUri="s3://bucket/mlflow/", RoleArn=ROLE
        )
        assert (
            sagemaker.describe_mlflow_tracking_server(TrackingServerName="churn")["TrackingServerName"]
            == "churn"
        )
    finally:
        emulator.stop()


def test_a_role_created_while_a_lookup_walks_the_roles_does_not_break_the_lookup(fresh):
    """What a GetRole beside a CreateRole does in a threaded emulator, made deterministic."""
    from moto.iam.models import iam_backends

    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam = fresh.client("iam")
    iam.create_role(RoleName="first", AssumeRolePolicyDocument=trust)
    backend = iam_backends[ACCOUNT]["global"]
    seen = []
    for role in backend.get_roles():  # moto iterated the live dict: this loop raised RuntimeError
        seen.append(role.name)
        if len(seen) == 1:
            iam.create_role(RoleName="second", AssumeRolePolicyDocument=trust)
    assert seen == ["first"]
    assert iam.get_role(RoleName="second")["Role"]["RoleName"] == "second"
