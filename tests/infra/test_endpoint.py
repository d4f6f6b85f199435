"""The model endpoint: names, rollout routing, variants, capture, autoscaling, argument checks."""

from __future__ import annotations

import asyncio
import json

import pulumi
import pulumi_aws as aws
import pytest

from infra.endpoint import (
    CHALLENGER,
    CHAMPION,
    ModelEndpoint,
    ModelEndpointArgs,
    endpoint_config_name,
    execution_role_policy,
    model_name,
    rollback_alarm_names,
    variant_names,
)
from infra.monitoring import Monitoring, MonitoringArgs
from tests.infra.harness import ACCOUNT, run

REGION = "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/stack-key"
PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/customer-churn/3"
CHALLENGER_PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/customer-churn/4"
REPOSITORY = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/mlops-platform"
PIPELINE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/customer-churn-prod-monitoring"
TAGS = {"project": "mlops-platform", "stack": "prod", "owner": "ml-team"}
ENDPOINT = "customer-churn-prod"
BASE = {
    "endpoint_name": ENDPOINT,
    "model_package_arn": PACKAGE,
    "bucket_name": "artifacts-prod",
    "kms_key_arn": KEY,
    "repository_arn": REPOSITORY,
    "tags": TAGS,
}

ENDPOINT_TYPE = "aws:sagemaker/endpoint:Endpoint"
CONFIG_TYPE = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL_TYPE = "aws:sagemaker/model:Model"
ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"


def deploy(**overrides):
    args = ModelEndpointArgs(**{**BASE, **overrides})
    return run(lambda: ModelEndpoint("churn", args), region=REGION)


def routing_of(recorder) -> dict:
    return recorder.one(ENDPOINT_TYPE).inputs["deploymentConfig"]["blueGreenUpdatePolicy"]


# -- pure functions ---------------------------------------------------------------------
def _role_policy(**extra):
    return execution_role_policy(
        partition="aws",
        region=REGION,
        account=ACCOUNT,
        endpoint=ENDPOINT,
        repository_arn=REPOSITORY,
        bucket_name="artifacts-prod",
        kms_key_arn=KEY,
        model_artifacts_prefix="pipelines/",
        data_capture=True,
        **extra,
    )


def test_execution_role_policy_is_scoped_to_this_endpoint():
    policy = _role_policy()
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert all(s["Action"] != "*" and "*" not in s["Action"] for s in policy["Statement"])
    assert by_sid["PullImage"]["Resource"] == REPOSITORY
    assert by_sid["WriteDataCapture"]["Resource"] == f"arn:aws:s3:::artifacts-prod/data-capture/{ENDPOINT}/*"
    assert by_sid["UseKey"]["Resource"] == KEY


GROUP_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:feature-group/customer-churn-prod"


def test_online_lookup_grants_reading_records_of_the_feature_group_only():
    policy = _role_policy

    def sagemaker_actions(document):
        return [
            s for s in document["Statement"] if any(a.startswith("sagemaker:") for a in _listed(s["Action"]))
        ]

    # Off by default: the endpoint's role reads no feature group.
    assert sagemaker_actions(policy()) == []
    (statement,) = sagemaker_actions(policy(online_feature_group_arn=GROUP_ARN))
    assert sorted(statement["Action"]) == ["sagemaker:BatchGetRecord", "sagemaker:GetRecord"]
    assert statement["Resource"] == GROUP_ARN


def _listed(value):
    return value if isinstance(value, list) else [value]


def test_online_lookup_names_the_group_to_the_container_and_lifts_network_isolation():
    recorder = deploy(online_feature_group_name="customer-churn-prod", online_feature_group_arn=GROUP_ARN)
    model = recorder.one(MODEL_TYPE).inputs
    assert model["primaryContainer"]["environment"] == {
        "MLOPS_ONLINE_FEATURE_GROUP": "customer-churn-prod",
        "AWS_DEFAULT_REGION": REGION,
    }
    # An isolated container cannot reach the feature store runtime.
    assert model["enableNetworkIsolation"] is False
    plain = deploy().one(MODEL_TYPE).inputs
    assert "environment" not in plain["primaryContainer"] and plain["enableNetworkIsolation"] is True


def test_online_lookup_needs_the_groups_name_and_arn():
    with pytest.raises(ValueError, match="online_feature_group_arn: online lookup needs both"):
        ModelEndpointArgs(**BASE, online_feature_group_name="customer-churn-prod")


# -- argument checks --------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["canary", "linear", "shadow"])
def test_serverless_refuses_strategies_aws_cannot_run(strategy):
    extra = {"shadow_model_package_arn": CHALLENGER_PACKAGE} if strategy == "shadow" else {}
    with pytest.raises(ValueError, match=f"^serverless: .*strategy '{strategy}'"):
        ModelEndpointArgs(**BASE, strategy=strategy, serverless=True, **extra)


def test_serverless_refuses_a_shadow_model():
    with pytest.raises(ValueError, match=r"^serverless: .*shadow_model_package_arn"):
        ModelEndpointArgs(**BASE, serverless=True, shadow_model_package_arn=CHALLENGER_PACKAGE)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"strategy": "canary", "canary_size_percent": 60}, "^canary_size_percent: 60 is out of range"),
        ({"strategy": "linear", "linear_step_percent": 5}, "^linear_step_percent: 5 is out of range"),
        (
            {"min_capacity": 3, "max_capacity": 2, "initial_instance_count": 3},
            "^min_capacity: 3 is above max_capacity",
        ),
        ({"initial_instance_count": 5, "max_capacity": 4}, "^initial_instance_count: 5 is out of range"),
        (
            {"strategy": "linear", "linear_step_percent": 10},
            "^max_execution_timeout_seconds: 3600 is shorter than",
        ),
        ({"serverless": True, "serverless_memory_mb": 1000}, "^serverless_memory_mb: 1000 is not one of"),
        ({"repository_arn": None}, "^repository_arn: needed to create the execution role"),
        ({"strategy": "rolling"}, "^strategy: 'rolling' is not one of"),
    ],
)
def test_bad_arguments_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelEndpointArgs(**{**BASE, **overrides})


# -- declared resources -----------------------------------------------------------------
@pytest.fixture(scope="module")
def canary_stack(churn_schema):
    """The endpoint with its monitoring, wired as __main__ wires them."""
    captured = {}

    def program():
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                schema=churn_schema,
                stack="prod",
                kms_key_arn=KEY,
                monitoring_pipeline_name="customer-churn-prod-monitoring",
                monitoring_pipeline_arn=PIPELINE,
                endpoint_name=ENDPOINT,
                variant_names=variant_names(False),
                tags=TAGS,
            ),
        )
        endpoint = ModelEndpoint(
            "churn",
            ModelEndpointArgs(
                **BASE,
                strategy="canary",
                canary_size_percent=20,
                wait_interval_seconds=900,
                initial_instance_count=2,
                min_capacity=2,
                max_capacity=4,
                rollback_alarm_names=monitoring.rollback_alarm_names,
            ),
        )
        return pulumi.Output.all(
            endpoint_name=endpoint.endpoint_name,
            config_name=endpoint.endpoint_config_name,
            model_names=endpoint.model_names,
            variants=endpoint.variant_names,
        ).apply(captured.update)

    return run(program, region=REGION), captured


def test_canary_routes_the_configured_share_then_waits(canary_stack):
    policy = routing_of(canary_stack[0])
    assert policy["trafficRoutingConfiguration"] == {
        "type": "CANARY",
        "canarySize": {"type": "CAPACITY_PERCENT", "value": 20},
        "waitIntervalInSeconds": 900,
    }
    assert policy["maximumExecutionTimeoutInSeconds"] == 3600


def test_canary_rolls_back_on_alarms_that_exist_in_the_same_program(canary_stack):
    recorder, _ = canary_stack
    endpoint = recorder.one(ENDPOINT_TYPE)
    rollback = [
        a["alarmName"] for a in endpoint.inputs["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    ]
    alarms = {r.inputs["name"]: i for i, r in enumerate(recorder.resources) if r.type == ALARM_TYPE}
    assert rollback == rollback_alarm_names(ENDPOINT, [CHAMPION])
    assert set(rollback) <= set(alarms)
    # The endpoint waits for the alarms: it is declared only once their names resolve.
    assert recorder.resources.index(endpoint) > max(alarms[name] for name in rollback)


def test_endpoint_serves_its_configuration(canary_stack):
    recorder, outputs = canary_stack
    config = recorder.one(CONFIG_TYPE)
    assert recorder.one(ENDPOINT_TYPE).inputs["endpointConfigName"] == config.inputs["name"]
    assert outputs["endpoint_name"] == ENDPOINT
    assert outputs["config_name"] == config.inputs["name"]
    assert outputs["variants"] == [CHAMPION]


def test_champion_model_serves_the_approved_package(canary_stack):
    recorder, outputs = canary_stack
    model = recorder.one(MODEL_TYPE)
    assert model.inputs["primaryContainer"] == {"modelPackageName": PACKAGE}
    assert model.inputs["enableNetworkIsolation"] is True
    assert outputs["model_names"] == [model.inputs["name"]]
    variant = recorder.one(CONFIG_TYPE).inputs["productionVariants"][0]
    assert variant["variantName"] == CHAMPION and variant["modelName"] == model.inputs["name"]


def test_autoscaling_tracks_invocations_per_instance(canary_stack):
    recorder, _ = canary_stack
    target = recorder.one("aws:appautoscaling/target:Target").inputs
    policy = recorder.one("aws:appautoscaling/policy:Policy").inputs
    assert target["resourceId"] == f"endpoint/{ENDPOINT}/variant/{CHAMPION}"
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 4)
    assert policy["policyType"] == "TargetTrackingScaling"
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert (
        tracking["predefinedMetricSpecification"]["predefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )
    assert tracking["targetValue"] == 70


def test_real_time_endpoint_captures_traffic_encrypted(canary_stack):
    config = canary_stack[0].one(CONFIG_TYPE).inputs
    capture = config["dataCaptureConfig"]
    assert capture["enableCapture"] is True
    assert capture["destinationS3Uri"] == "s3://artifacts-prod/data-capture"
    assert capture["kmsKeyId"] == KEY
    assert [o["captureMode"] for o in capture["captureOptions"]] == ["Input", "Output"]
    assert config["kmsKeyArn"] == KEY


def test_created_role_is_assumed_by_sagemaker_for_this_account_only(canary_stack):
    (role,) = [r.inputs for r in canary_stack[0].of_type("aws:iam/role:Role") if r.name == "churn-role"]
    trust = json.loads(role["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    # SageMaker's documented confused-deputy guard: this account and its SageMaker resources.
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:*"},
    }


def test_every_taggable_endpoint_resource_is_tagged(canary_stack):
    recorder, _ = canary_stack
    for typ in (MODEL_TYPE, CONFIG_TYPE, ENDPOINT_TYPE, "aws:appautoscaling/target:Target"):
        assert recorder.one(typ).inputs["tags"] == TAGS, typ


def test_linear_shifts_in_steps():
    recorder = deploy(strategy="linear", linear_step_percent=25, wait_interval_seconds=300)
    assert routing_of(recorder)["trafficRoutingConfiguration"] == {
        "type": "LINEAR",
        "linearStepSize": {"type": "CAPACITY_PERCENT", "value": 25},
        "waitIntervalInSeconds": 300,
    }


def test_all_at_once_shifts_everything_and_still_rolls_back():
    recorder = deploy(rollback_alarm_names=["a-5xx-rate", "a-latency-p99"])
    assert routing_of(recorder)["trafficRoutingConfiguration"]["type"] == "ALL_AT_ONCE"
    alarms = recorder.one(ENDPOINT_TYPE).inputs["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    assert [a["alarmName"] for a in alarms] == ["a-5xx-rate", "a-latency-p99"]


def test_one_fixed_instance_has_no_autoscaling():
    recorder = deploy()
    assert recorder.of_type("aws:appautoscaling/target:Target") == []
    assert recorder.of_type("aws:appautoscaling/policy:Policy") == []


def test_shadow_mirrors_the_sampled_share_to_the_challenger():
    recorder = deploy(
        strategy="shadow", shadow_model_package_arn=CHALLENGER_PACKAGE, shadow_sampling_percent=30
    )
    models = {r.name: r.inputs for r in recorder.of_type(MODEL_TYPE)}
    challenger = models["churn-challenger-model"]
    assert challenger["primaryContainer"] == {"modelPackageName": CHALLENGER_PACKAGE}
    config = recorder.one(CONFIG_TYPE).inputs
    (shadow,) = config["shadowProductionVariants"]
    assert shadow["variantName"] == CHALLENGER
    assert shadow["modelName"] == challenger["name"]
    # Relative to the champion's weight of 1: 0.3 mirrors 30% of requests.
    assert shadow["initialVariantWeight"] == pytest.approx(0.3)
    assert config["productionVariants"][0]["initialVariantWeight"] == 1
    assert config["dataCaptureConfig"]["enableCapture"] is True


def test_serverless_has_no_instances_capture_or_volume_key():
    recorder = deploy(serverless=True, serverless_memory_mb=3072, serverless_max_concurrency=10)
    config = recorder.one(CONFIG_TYPE).inputs
    (variant,) = config["productionVariants"]
    assert variant["serverlessConfig"] == {"memorySizeInMb": 3072, "maxConcurrency": 10}
    assert "instanceType" not in variant
    assert "dataCaptureConfig" not in config
    assert "kmsKeyArn" not in config
    assert recorder.of_type("aws:appautoscaling/target:Target") == []


def test_given_execution_role_is_used_as_is():
    role = f"arn:aws:iam::{ACCOUNT}:role/existing"
    recorder = deploy(execution_role_arn=role, repository_arn=None)
    assert recorder.of_type("aws:iam/role:Role") == []
    assert recorder.one(MODEL_TYPE).inputs["executionRoleArn"] == role


def test_a_new_model_version_gets_a_new_configuration():
    before = deploy().one(CONFIG_TYPE).inputs["name"]
    after = deploy(model_package_arn=CHALLENGER_PACKAGE).one(CONFIG_TYPE).inputs["name"]
    assert before != after


# -- names, replacements and rollbacks ---------------------------------------------------------


def test_a_shadow_stack_without_a_challenger_serves_its_model_alone():
    recorder = deploy(strategy="shadow")
    assert [m.inputs["primaryContainer"]["modelPackageName"] for m in recorder.of_type(MODEL_TYPE)] == [
        PACKAGE
    ]
    config = recorder.one(CONFIG_TYPE).inputs
    assert not config.get("shadowProductionVariants")
    assert [v["variantName"] for v in config["productionVariants"]] == ["champion"]


def _arguments(inputs: dict) -> dict:
    return {k: v for k, v in inputs.items() if k not in ("name", "tags")}


def test_each_name_is_the_digest_of_every_argument_of_its_resource():
    # Pulumi creates a replacement before deleting the old resource: a digest leaving out an
    # argument (a capture option, a weight, network isolation) would reuse the old name.
    recorder = deploy(strategy="shadow", shadow_model_package_arn=CHALLENGER_PACKAGE)
    config = recorder.one(CONFIG_TYPE).inputs
    assert config["name"] == endpoint_config_name(ENDPOINT, _arguments(config))
    for model in recorder.of_type(MODEL_TYPE):
        variant = model.name.removeprefix("churn-").removesuffix("-model")
        assert model.inputs["name"] == model_name(ENDPOINT, variant, _arguments(model.inputs))


@pytest.mark.parametrize(
    "change",
    [
        {"data_capture_percent": 50},
        {"bucket_name": "artifacts-other"},
        {"instance_type": "ml.m5.xlarge"},
        {"initial_instance_count": 2, "max_capacity": 2},
        {"kms_key_arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/other"},
    ],
)
def test_changing_any_one_input_changes_the_configuration_name(change):
    assert deploy(**change).one(CONFIG_TYPE).inputs["name"] != deploy().one(CONFIG_TYPE).inputs["name"]


def test_serverless_models_run_without_network_isolation():
    # AWS refuses network isolation on serverless inference; real-time models keep it.
    assert deploy(serverless=True).one(MODEL_TYPE).inputs["enableNetworkIsolation"] is False
    assert deploy().one(MODEL_TYPE).inputs["enableNetworkIsolation"] is True


@pytest.fixture
def options(monkeypatch):
    """The resource options and arguments the endpoint's resources are declared with."""
    seen: dict[str, tuple] = {}
    for module, cls in (
        (aws.sagemaker, "EndpointConfiguration"),
        (aws.sagemaker, "Model"),
        (aws.appautoscaling, "Target"),
    ):
        original = getattr(module, cls)

        class Recording(original):
            def __init__(self, resource_name, opts=None, **kwargs):
                super().__init__(resource_name, opts=opts, **kwargs)
                seen[resource_name] = (self, opts, kwargs)

        monkeypatch.setattr(module, cls, Recording)
    return seen


def test_configurations_and_models_outlive_their_replacement(options):
    # A rolled-back update serves the old configuration again (terraform-provider-aws #48997).
    deploy(strategy="shadow", shadow_model_package_arn=CHALLENGER_PACKAGE)
    for name in ("churn-config", "churn-champion-model", "churn-challenger-model"):
        assert options[name][1].retain_on_delete is True, name


def test_the_scaling_target_is_replaced_around_every_configuration_change(options):
    # AWS refuses an update changing the instance type of a variant registered for
    # autoscaling: deleting the configuration before replacing it makes Pulumi delete the
    # target (which reads the configuration's name) first and create it after the update.
    deps = {}

    def program():
        ModelEndpoint("churn", ModelEndpointArgs(**{**BASE, "max_capacity": 3}))
        resource_id = options["churn-scaling-target"][2]["resource_id"]
        return pulumi.Output.from_input(asyncio.ensure_future(resource_id.resources())).apply(
            lambda r: deps.update(resources=r)
        )

    run(program, region=REGION)
    config, config_opts, _ = options["churn-config"]
    assert config_opts.delete_before_replace is True
    assert config in deps["resources"]
