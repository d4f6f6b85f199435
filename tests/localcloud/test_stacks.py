"""Every committed stack deploys into a fresh emulator and reads back as the stack declares it.

Per stack, one module-scoped deployment: the stack as committed (a fresh platform, no model),
then a model package approved in the registry it created (and a shadow challenger on
staging) and the stack deployed again with ``modelPackageArn`` set. Each test reads the
emulator through boto3 and compares with what the program declared (the state file's
inputs), never with the engine's own answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from infra.ml_pipelines import build_definition
from infra.rollout import endpoint_name
from localcloud.engine import Engine, Result, stack_config
from localcloud.state import ResourceState, State
from model_code.contract import schema as schema_mod
from tests.localcloud.behaviours.endpoint_setup import pack
from tests.localcloud.conftest import register_approved

STACKS = ["dev", "staging", "prod", "local"]
SCHEMA = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)


SEARCH_KEY = "mlops-platform:modelSearch"


@dataclass
class Deployed:
    stack: str
    fresh: Result
    with_model: Result
    state: State
    emulator: object
    packages: list[str]

    def declared(self, type_: str) -> list[ResourceState]:
        return [r for r in self.state.resources.values() if r.type == type_]

    def client(self, service: str):
        return self.emulator.client(service)


@pytest.fixture(scope="module", params=STACKS)
def deployed(request, emulator, tmp_path_factory, model_dir) -> Deployed:
    stack = request.param
    emulator.reset()
    state_dir = tmp_path_factory.mktemp(f"state-{stack}")
    fresh = Engine(stack, emulator.endpoint_url, state_dir=state_dir).up()
    group, bucket, artifact = fresh.outputs["modelPackageGroup"], fresh.outputs["bucket"], pack(model_dir)
    overrides = {"mlops-platform:modelPackageArn": register_approved(emulator, group, bucket, artifact)}
    if stack == "staging":
        overrides["mlops-platform:shadowModelPackageArn"] = register_approved(
            emulator, group, bucket, artifact
        )
    with_model = Engine(stack, emulator.endpoint_url, state_dir=state_dir, overrides=overrides).up()
    state = State.load(state_dir / f"{stack}.json", stack)
    return Deployed(stack, fresh, with_model, state, emulator, list(overrides.values()))


def test_a_fresh_stack_creates_everything_but_the_model_and_saves_its_outputs(deployed):
    created = {o.type for o in deployed.fresh.operations}
    assert {o.op for o in deployed.fresh.operations} == {"create"}
    assert "aws:sagemaker/endpoint:Endpoint" not in created
    assert deployed.fresh.outputs["endpointName"] is None
    # The state file holds the stack outputs as `pulumi stack output --json` prints them.
    assert deployed.state.outputs["endpointName"] == endpoint_name(SCHEMA.name, deployed.stack)
    assert deployed.state.outputs["bucket"].startswith(f"customer-churn-{deployed.stack}-artifacts-")


def test_approving_a_model_adds_the_endpoint_without_replacing_anything(deployed):
    ops = deployed.with_model.operations
    assert not [o for o in ops if o.op in ("replace", "delete")]
    assert {o.type for o in ops if o.op == "create"} >= {
        "aws:sagemaker/model:Model",
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "aws:sagemaker/endpoint:Endpoint",
    }
    (endpoint,) = deployed.declared("aws:sagemaker/endpoint:Endpoint")
    found = deployed.client("sagemaker").describe_endpoint(EndpointName=endpoint.id)
    assert found["EndpointStatus"] == "InService"
    assert found["EndpointConfigName"] == endpoint.inputs["endpointConfigName"]


def test_the_bucket_is_encrypted_versioned_private_and_tls_only(deployed):
    s3 = deployed.client("s3")
    bucket = deployed.state.outputs["bucket"]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": deployed.state.outputs["kmsKeyArn"],
    }
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    (policy,) = deployed.declared("aws:s3/bucketPolicy:BucketPolicy")
    stored = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert stored == json.loads(policy.inputs["policy"])
    assert "DenyInsecureTransport" in {s["Sid"] for s in stored["Statement"]}
    # The policy is on, and objects still read and write over the emulator's "TLS".
    uploaded = next(
        o for o in deployed.declared("aws:s3/bucketObjectv2:BucketObjectv2") if "content" in o.inputs
    )
    body = s3.get_object(Bucket=bucket, Key=uploaded.inputs["key"])["Body"].read().decode()
    assert body == uploaded.inputs["content"]


def test_the_key_rotates(deployed):
    kms = deployed.client("kms")
    assert kms.get_key_rotation_status(KeyId=deployed.state.outputs["kmsKeyArn"])["KeyRotationEnabled"]


def test_the_feature_group_follows_the_schema(deployed):
    (declared,) = deployed.declared("aws:sagemaker/featureGroup:FeatureGroup")
    group = deployed.client("sagemaker").describe_feature_group(FeatureGroupName=declared.id)
    names = [d["FeatureName"] for d in group["FeatureDefinitions"]]
    assert names == [d["featureName"] for d in declared.inputs["featureDefinitions"]]
    assert set(names) >= {f.name for f in SCHEMA.features} | {SCHEMA.entity_id, SCHEMA.event_time}
    key = deployed.state.outputs["kmsKeyArn"]
    assert group["OnlineStoreConfig"]["SecurityConfig"]["KmsKeyId"] == key
    assert group["OfflineStoreConfig"]["S3StorageConfig"]["KmsKeyId"] == key
    catalog = declared.inputs["offlineStoreConfig"]["dataCatalogConfig"]
    assert group["OfflineStoreConfig"]["DataCatalogConfig"]["Database"] == catalog["database"]


def test_each_pipeline_stores_the_builders_definition_byte_for_byte(deployed):
    sagemaker = deployed.client("sagemaker")
    outputs = deployed.state.outputs
    tracking = deployed.declared("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")
    for pipeline in deployed.declared("aws:sagemaker/pipeline:Pipeline"):
        stored = sagemaker.describe_pipeline(PipelineName=pipeline.id)
        kind = pipeline.id.rsplit("-", 1)[-1]
        # What the builder takes from the stack: every name is the stack's own resource's.
        extra = {"feature_group_name": outputs["featureGroup"], "stack": deployed.stack}
        if kind == "training":
            extra = {
                "model_package_group": outputs["modelPackageGroup"],
                "tracking_uri": tracking[0].outputs["arn"] if tracking else None,
                "hyperparameters": (("search", stack_config(deployed.stack).get(SEARCH_KEY, "grid")),),
                # It trains from the offline store, and waits for what the ingestion pipeline reports.
                "feature_group_name": outputs["featureGroup"],
                "ingestion_reports_uri": f"s3://{outputs['bucket']}/pipelines/{outputs['pipelines']['ingestion'].rsplit('/', 1)[-1]}/",
            }
        if kind == "monitoring":
            extra |= {
                "endpoint_name": endpoint_name(SCHEMA.name, deployed.stack),
                "offline_store_uri": f"s3://{outputs['bucket']}/feature-store/",
                "model_package_group": outputs["modelPackageGroup"],
            }
        expected = build_definition(
            kind,
            schema=SCHEMA,
            name=pipeline.id,
            region="eu-west-1",
            role_arn=stored["RoleArn"],
            bucket=outputs["bucket"],
            image_uri=outputs["imageUri"],
            kms_key_arn=outputs["kmsKeyArn"],
            **extra,
        )
        assert stored["PipelineDefinition"] == expected, pipeline.id


def test_the_endpoint_configuration_serves_the_approved_models_and_captures(deployed):
    (config,) = deployed.declared("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    found = deployed.client("sagemaker").describe_endpoint_config(EndpointConfigName=config.id)
    variants = [(v["VariantName"], v["ModelName"]) for v in found["ProductionVariants"]]
    assert variants == [(v["variantName"], v["modelName"]) for v in config.inputs["productionVariants"]]
    shadows = [v["VariantName"] for v in found.get("ShadowProductionVariants", [])]
    assert shadows == (["challenger"] if deployed.stack == "staging" else [])
    capture = found["DataCaptureConfig"]
    assert capture["EnableCapture"] and capture["InitialSamplingPercentage"] == 100
    assert capture["DestinationS3Uri"] == f"s3://{deployed.state.outputs['bucket']}/data-capture"
    models = [v["ModelName"] for v in found["ProductionVariants"] + found.get("ShadowProductionVariants", [])]
    packages = {
        deployed.client("sagemaker").describe_model(ModelName=name)["PrimaryContainer"]["ModelPackageName"]
        for name in models
    }
    assert packages == set(deployed.packages)


def test_the_endpoints_containers_log_to_the_stacks_encrypted_group_with_its_retention(deployed):
    endpoint = deployed.state.outputs["endpointName"]
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    logs = deployed.client("logs")
    (found,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    config = stack_config(deployed.stack)
    assert found["retentionInDays"] == int(config["mlops-platform:logRetentionDays"])
    assert found["kmsKeyId"] == deployed.state.outputs["kmsKeyArn"]
    # The group is the program's, made before the endpoint: the servers' lines land in it.
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    variants = {"champion", "challenger"} if deployed.stack == "staging" else {"champion"}
    assert {s.split("/")[0] for s in streams} == variants


def test_alarms_watch_the_declared_metrics_and_dimensions(deployed):
    cloudwatch = deployed.client("cloudwatch")
    declared = deployed.declared("aws:cloudwatch/metricAlarm:MetricAlarm")
    found = {
        a["AlarmName"]: a
        for page in cloudwatch.get_paginator("describe_alarms").paginate()
        for a in page["MetricAlarms"]
    }
    assert set(found) == {a.id for a in declared}
    for alarm in declared:
        stored = found[alarm.id]
        assert stored["Threshold"] == alarm.inputs["threshold"]
        if "metricName" in alarm.inputs:
            assert stored["MetricName"] == alarm.inputs["metricName"]
            dims = {d["Name"]: d["Value"] for d in stored.get("Dimensions", [])}
            assert dims == alarm.inputs.get("dimensions", {})
        else:
            ids = [m["Id"] for m in stored["Metrics"]]
            assert ids == [q["id"] for q in alarm.inputs["metricQueries"]]


def test_rules_match_their_patterns_and_start_pipelines_with_parameters(deployed):
    events = deployed.client("events")
    for rule in deployed.declared("aws:cloudwatch/eventRule:EventRule"):
        stored = events.describe_rule(Name=rule.id)
        if "eventPattern" in rule.inputs:
            assert json.loads(stored["EventPattern"]) == json.loads(rule.inputs["eventPattern"])
        else:
            assert stored["ScheduleExpression"] == rule.inputs["scheduleExpression"]
    for target in deployed.declared("aws:cloudwatch/eventTarget:EventTarget"):
        (stored,) = [
            t
            for t in events.list_targets_by_rule(Rule=target.inputs["rule"])["Targets"]
            if t["Id"] == target.inputs["targetId"]
        ]
        assert stored["Arn"] == target.inputs["arn"]
        parameters = (target.inputs.get("sagemakerPipelineTarget") or {}).get("pipelineParameterLists")
        if parameters:
            listed = stored["SageMakerPipelineParameters"]["PipelineParameterList"]
            assert listed == [{"Name": p["name"], "Value": p["value"]} for p in parameters]
            assert stored["RoleArn"] == target.inputs["roleArn"]


def test_schedules_are_as_declared(deployed):
    scheduler = deployed.client("scheduler")
    for schedule in deployed.declared("aws:scheduler/schedule:Schedule"):
        stored = scheduler.get_schedule(Name=schedule.inputs["name"])
        assert stored["State"] == schedule.inputs["state"]
        assert stored["ScheduleExpression"] == schedule.inputs["scheduleExpression"]
        assert stored["Target"]["Arn"] == schedule.inputs["target"]["arn"]


def test_roles_trust_and_inline_policies_are_as_declared(deployed):
    iam = deployed.client("iam")
    for role in deployed.declared("aws:iam/role:Role"):
        stored = iam.get_role(RoleName=role.id)["Role"]["AssumeRolePolicyDocument"]
        assert stored == json.loads(role.inputs["assumeRolePolicy"])
    for policy in deployed.declared("aws:iam/rolePolicy:RolePolicy"):
        role_name, policy_name = policy.id.split(":")
        stored = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        assert stored == json.loads(policy.inputs["policy"])


def test_mlops_verify_passes_on_the_deployed_stack(deployed):
    from mlops.verify import verify

    checks = verify(deployed.with_model.outputs, deployed.emulator.session())
    assert checks and [c for c in checks if not c.ok] == []
    assert {c.name.split(" ")[0] for c in checks} >= {"endpoint"}
