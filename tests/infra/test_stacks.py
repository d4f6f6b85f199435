"""The whole program per committed stack, as `pulumi up --stack <env>` would declare it."""

from __future__ import annotations

import json

import pytest

from infra.feature_store import feature_definitions
from model_code.contract import schema as schema_mod
from tests.infra.harness import committed_stack, run_stack

COMPONENTS = {
    "mlops:artifact_store:ArtifactStore",
    "mlops:container_image:ContainerImage",
    "mlops:feature_store:FeatureStore",
    "mlops:model_registry:ModelRegistry",
    "mlops:ml_pipelines:MlPipelines",
    "mlops:monitoring:Monitoring",
    "mlops:retraining:Retraining",
}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_builds_every_component(stack):
    types = {r.type for r in committed_stack(stack, True).resources}
    assert types >= COMPONENTS | {"mlops:endpoint:ModelEndpoint"}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_a_fresh_stack_deploys_everything_but_the_model_and_endpoint(stack):
    rec = committed_stack(stack)
    types = {r.type for r in rec.resources}
    assert types >= COMPONENTS
    for absent in (
        "aws:sagemaker/model:Model",
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "aws:sagemaker/endpoint:Endpoint",
    ):
        assert absent not in types


def test_mlflow_only_where_the_stack_enables_it():
    assert committed_stack("prod").of_type("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")
    assert not committed_stack("dev").of_type("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")


def test_prod_endpoint_rolls_out_by_canary_with_rollback_on_alarms_of_the_same_stack():
    rec = committed_stack("prod", True)
    endpoint = rec.one("aws:sagemaker/endpoint:Endpoint").inputs
    policy = endpoint["deploymentConfig"]["blueGreenUpdatePolicy"]
    routing = policy["trafficRoutingConfiguration"]
    assert routing["type"] == "CANARY"
    assert routing["canarySize"] == {"type": "CAPACITY_PERCENT", "value": 10}
    assert routing["waitIntervalInSeconds"] == 600
    rollback = {a["alarmName"] for a in endpoint["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]}
    alarms = {a.inputs["name"] for a in rec.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert rollback and rollback <= alarms


def test_prod_runs_at_least_two_instances_with_autoscaling():
    rec = committed_stack("prod", True)
    variant = rec.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs[
        "productionVariants"
    ][0]
    assert variant["initialInstanceCount"] >= 2
    target = rec.one("aws:appautoscaling/target:Target").inputs
    assert target["minCapacity"] >= 2 and target["maxCapacity"] > target["minCapacity"]


def test_staging_endpoint_configuration_has_the_challenger_in_shadow_with_capture():
    rec = committed_stack("staging", True)
    config = rec.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    shadows = config["shadowProductionVariants"]
    assert [v["variantName"] for v in shadows] == ["challenger"]
    assert config["dataCaptureConfig"]["enableCapture"] is True
    models = {
        m.inputs["primaryContainer"]["modelPackageName"] for m in rec.of_type("aws:sagemaker/model:Model")
    }
    assert any(m.endswith("/4") for m in models) and any(m.endswith("/3") for m in models)


def test_dev_endpoint_updates_all_at_once_on_one_small_instance():
    rec = committed_stack("dev", True)
    endpoint = rec.one("aws:sagemaker/endpoint:Endpoint").inputs
    routing = endpoint["deploymentConfig"]["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing["type"] == "ALL_AT_ONCE"
    variant = rec.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs[
        "productionVariants"
    ][0]
    assert (variant["instanceType"], variant["initialInstanceCount"]) == ("ml.t2.medium", 1)


def test_dev_pauses_its_schedules():
    rec = committed_stack("dev")
    assert rec.one("aws:scheduler/schedule:Schedule").inputs["state"] == "DISABLED"
    schedule_rules = [
        r for r in rec.of_type("aws:cloudwatch/eventRule:EventRule") if r.inputs.get("scheduleExpression")
    ]
    assert schedule_rules and all(r.inputs["state"] == "DISABLED" for r in schedule_rules)


def test_feature_definitions_equal_the_schema():
    schema = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    group = committed_stack("dev").one("aws:sagemaker/featureGroup:FeatureGroup").inputs
    declared = {(d["featureName"], d["featureType"]) for d in group["featureDefinitions"]}
    expected = {(d["feature_name"], d["feature_type"]) for d in feature_definitions(schema)}
    assert declared == expected
    assert {name for name, _ in declared} == set(schema.columns)


def test_retraining_rules_start_the_training_pipeline_with_reason_and_strategy():
    rec = committed_stack("prod")
    training = next(
        p
        for p in rec.of_type("aws:sagemaker/pipeline:Pipeline")
        if p.inputs["pipelineName"].endswith("-training")
    )
    reasons = {}
    for target in rec.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        params = (target.inputs.get("sagemakerPipelineTarget") or {}).get("pipelineParameterLists")
        if params and target.inputs["arn"] == training.outputs["arn"]:
            values = {p["name"]: p["value"] for p in params}
            reasons[values["TriggerReason"]] = values["TrainingStrategy"]
    assert set(reasons) == {"drift", "quality", "data-volume", "schedule"}
    assert set(reasons.values()) <= {"new-data-only", "combined"}


def test_retraining_listens_to_the_alarms_the_stack_declares():
    rec = committed_stack("prod")
    alarms = {a.inputs["name"] for a in rec.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    listened = set()
    for rule in rec.of_type("aws:cloudwatch/eventRule:EventRule"):
        pattern = json.loads(rule.inputs.get("eventPattern") or "{}")
        if pattern.get("detail-type") == ["CloudWatch Alarm State Change"]:
            listened |= set(pattern["detail"]["alarmName"])
            assert pattern["detail"]["state"]["value"] == ["ALARM"]
    assert listened and listened <= alarms


def test_pipeline_definitions_run_the_stack_image_in_the_stack_bucket():
    rec = committed_stack("staging")
    bucket = rec.one("aws:s3/bucket:Bucket").inputs["bucket"]
    for pipeline in rec.of_type("aws:sagemaker/pipeline:Pipeline"):
        definition = json.loads(pipeline.inputs["pipelineDefinition"])
        text = json.dumps(definition)
        assert f"s3://{bucket}/" in text
        assert ".dkr.ecr.eu-west-1.amazonaws.com/customer-churn-staging:" in text


def test_outputs_say_when_no_model_is_deployed():
    rec = committed_stack("dev")
    assert not rec.of_type("aws:sagemaker/endpoint:Endpoint")


def test_a_config_error_stops_the_program_before_any_resource():
    from infra.config import ConfigError

    with pytest.raises(Exception) as err:
        run_stack("prod", {"mlops-platform:canarySizePercent": 150})
    assert isinstance(err.value, ConfigError) or "canarySizePercent: 150" in str(err.value)


def test_a_serverless_stack_has_no_capture_no_drift_alarms_and_no_drift_rule():
    rec = run_stack(
        "dev",
        {
            "mlops-platform:serverless": True,
            "mlops-platform:driftMonitoring": False,
            "mlops-platform:modelPackageArn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn-dev/3",
        },
    )
    config = rec.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert "serverlessConfig" in config["productionVariants"][0]
    assert "dataCaptureConfig" not in config
    alarms = {a.inputs["name"] for a in rec.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert not any("-drift-" in name for name in alarms)
    reasons = {
        p["value"]
        for t in rec.of_type("aws:cloudwatch/eventTarget:EventTarget")
        for p in (t.inputs.get("sagemakerPipelineTarget") or {}).get("pipelineParameterLists", [])
        if p["name"] == "TriggerReason"
    }
    assert "drift" not in reasons and {"quality", "data-volume", "schedule"} <= reasons
