"""Endpoint rollouts on the virtual clock, through boto3: immediate switches, canary bakes, auto-rollback."""

from __future__ import annotations

import pytest

from infra.alarms import AlarmThresholds, endpoint_alarms
from infra.rollout import rollback_alarm_names
from tests.localcloud.behaviours.endpoint_setup import (
    BUCKET,
    artifact_with_model_file,
    failing_artifact,
    invoke,
    make_config,
    pack,
    upload_model,
    variant,
)
from tests.localcloud.behaviours.test_alarms import alarm_request


@pytest.fixture(scope="module")
def artifact(model_dir) -> bytes:
    return pack(model_dir)


@pytest.fixture
def row(churn_frame, churn_schema) -> dict:
    first = churn_frame.iloc[0]
    return {
        n: (first[n].item() if hasattr(first[n], "item") else first[n]) for n in churn_schema.feature_names
    }


def canary(bake_seconds: int, alarms: list[str]) -> dict:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                "WaitIntervalInSeconds": bake_seconds,
            },
            "TerminationWaitInSeconds": 60,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]},
    }


@pytest.fixture
def serving(emulator, client, artifact):
    """Endpoint ``churn`` on config ``blue`` (model v1); config ``green`` (model v2) ready to roll out."""
    upload_model(client, "v1", artifact)
    upload_model(client, "v2", artifact)
    make_config(client, "blue", [variant("champion", "v1", 1.0)], capture=False)
    make_config(client, "green", [variant("champion", "v2", 1.0)], capture=False)
    sm = client("sagemaker")
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="blue")
    return sm


def test_without_a_deployment_config_the_switch_is_immediate(serving, client, row):
    serving.update_endpoint(EndpointName="churn", EndpointConfigName="green")
    described = serving.describe_endpoint(EndpointName="churn")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "green")
    assert invoke(client("sagemaker-runtime"), "churn", row)["InvokedProductionVariant"] == "champion"


def test_retain_all_variant_properties_keeps_the_current_weights(serving, client):
    # The champion keeps its current weight; a variant the endpoint did not have takes the new one's.
    make_config(
        client, "heavier", [variant("champion", "v2", 5.0), variant("challenger", "v2", 2.0)], capture=False
    )
    serving.update_endpoint(
        EndpointName="churn", EndpointConfigName="heavier", RetainAllVariantProperties=True
    )
    variants = serving.describe_endpoint(EndpointName="churn")["ProductionVariants"]
    assert [(v["VariantName"], v["CurrentWeight"]) for v in variants] == [
        ("champion", 1.0),
        ("challenger", 2.0),
    ]


def test_a_healthy_canary_bakes_on_the_clock_and_completes(serving, emulator):
    deployment = canary(600, rollback_alarm_names("churn", ["champion"]))
    serving.update_endpoint(EndpointName="churn", EndpointConfigName="green", DeploymentConfig=deployment)
    during = serving.describe_endpoint(EndpointName="churn")
    assert during["EndpointStatus"] == "Updating"
    assert during["PendingDeploymentSummary"]["EndpointConfigName"] == "green"
    emulator.advance(599)
    assert serving.describe_endpoint(EndpointName="churn")["EndpointStatus"] == "Updating"
    emulator.advance(61 + 60)  # the rest of the bake, then the termination wait
    after = serving.describe_endpoint(EndpointName="churn")
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", "green")
    assert (
        after["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]
        == "CANARY"
    )
    assert "FailureReason" not in after
    assert [
        (v["VariantName"], v["CurrentWeight"], v["CurrentInstanceCount"]) for v in after["ProductionVariants"]
    ] == [("champion", 1.0, 1)]


def test_a_canary_whose_challenger_fails_trips_the_rollback_alarm_and_rolls_back(
    serving, emulator, client, row, model_dir
):
    # v2 passes its health check, then answers every prediction with a 500.
    client("s3").put_object(Bucket=BUCKET, Key="v2/model.tar.gz", Body=failing_artifact(model_dir))
    cw = client("cloudwatch")
    specs = {s.name: s for s in endpoint_alarms("churn", ["champion"], AlarmThresholds())}
    rollback = rollback_alarm_names("churn", ["champion"])
    for name in rollback:  # the program's rollback alarms, as the stack declares them
        cw.put_metric_alarm(**alarm_request(specs[name]))
    serving.update_endpoint(
        EndpointName="churn", EndpointConfigName="green", DeploymentConfig=canary(600, rollback)
    )
    runtime = client("sagemaker-runtime")
    failures = 0
    for _minute in range(4):  # 3 bad minutes of 5 trip the 5XX-rate alarm, well inside the bake
        for _ in range(20):
            try:
                invoke(runtime, "churn", row)
            except runtime.exceptions.ModelError:
                failures += 1
        emulator.advance(60)
    assert failures > 0
    assert cw.describe_alarms(AlarmNames=[rollback[0]])["MetricAlarms"][0]["StateValue"] == "ALARM"
    after = serving.describe_endpoint(EndpointName="churn")
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", "blue")
    assert "rolled back" in after["FailureReason"] and rollback[0] in after["FailureReason"]
    assert after["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"][0]["AlarmName"] == rollback[0]
    # Back on the old fleet: every answer comes from v1 again.
    for _ in range(10):
        invoke(runtime, "churn", row)


@pytest.mark.parametrize(
    ("artifact_of", "reason"),
    [
        (
            lambda _: b"not a model",
            'Failed to extract model data archive from URL "s3://models/v2/model.tar.gz"',
        ),
        (
            lambda model_dir: artifact_with_model_file(model_dir, b"not a pickle"),
            "The primary container for production variant champion did not pass the ping health check",
        ),
    ],
    ids=["not-an-archive", "model-that-cannot-load"],
)
def test_a_new_fleet_that_fails_its_health_check_leaves_the_endpoint_on_its_old_configuration(
    serving, emulator, client, row, model_dir, artifact_of, reason
):
    client("s3").put_object(Bucket=BUCKET, Key="v2/model.tar.gz", Body=artifact_of(model_dir))
    serving.update_endpoint(
        EndpointName="churn", EndpointConfigName="green", DeploymentConfig=canary(600, ["any-alarm"])
    )
    after = serving.describe_endpoint(EndpointName="churn")
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", "blue")
    assert after["FailureReason"].startswith(reason)
    # No traffic moved: the old fleet answers everything, through the clock too.
    emulator.advance(120)
    assert serving.describe_endpoint(EndpointName="churn")["EndpointConfigName"] == "blue"
    assert invoke(client("sagemaker-runtime"), "churn", row)["InvokedProductionVariant"] == "champion"


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}, [(1.0, 300.0), (1.0, 60.0)]),
        (
            {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 600,
            },
            [(0.5, 600.0), (1.0, 0.0), (1.0, 60.0)],  # one of the new fleet's two instances
        ),
        (
            {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40},
                "WaitIntervalInSeconds": 120,
            },
            [(0.4, 120.0), (0.8, 120.0), (1.0, 120.0), (1.0, 60.0)],
        ),
    ],
)
def test_traffic_shifting_steps_follow_the_policy(routing, expected):
    from localcloud.behaviours.rollouts import phases

    policy = {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 60}
    steps = phases(policy, [variant("champion", "v2", 1.0) | {"InitialInstanceCount": 2}])
    assert [(round(share, 6), bake) for share, bake in steps] == expected


def test_a_linear_rollout_completes_after_its_steps(serving, emulator):
    linear = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 300,
            },
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "none-yet"}]},
    }
    serving.update_endpoint(EndpointName="churn", EndpointConfigName="green", DeploymentConfig=linear)
    emulator.advance(540)  # the first step baked, the second not yet
    assert serving.describe_endpoint(EndpointName="churn")["EndpointStatus"] == "Updating"
    emulator.advance(60)
    assert serving.describe_endpoint(EndpointName="churn")["EndpointConfigName"] == "green"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({}, [(1.0, 0.0), (1.0, 0.0)]),  # no routing configuration: all at once, nothing baked
        (
            {
                "TrafficRoutingConfiguration": {
                    "Type": "LINEAR",
                    "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 30},
                    "WaitIntervalInSeconds": 60,
                },
                "TerminationWaitInSeconds": 30,
            },
            [(0.3, 60.0), (0.6, 60.0), (0.9, 60.0), (1.0, 60.0), (1.0, 30.0)],
        ),
        (
            {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 5},
                    "WaitIntervalInSeconds": 600,
                }
            },
            [(1.0, 600.0), (1.0, 0.0), (1.0, 0.0)],  # more instances than the fleet has: all of it
        ),
        (
            {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 150},
                }
            },
            [(1.0, 0.0), (1.0, 0.0), (1.0, 0.0)],
        ),
    ],
    ids=["default", "linear-30-percent", "canary-beyond-the-fleet", "canary-over-100-percent"],
)
def test_traffic_shifting_edges(policy, expected):
    from localcloud.behaviours.rollouts import phases

    steps = phases(policy, [variant("champion", "v2", 1.0) | {"InitialInstanceCount": 2}])
    assert [(round(share, 6), bake) for share, bake in steps] == expected


@pytest.mark.parametrize(
    ("routing", "named"),
    [
        ({"Type": "BLUE"}, "TrafficRoutingConfiguration.Type: 'BLUE' is not ALL_AT_ONCE, CANARY or LINEAR"),
        (
            {"Type": "CANARY", "CanarySize": {"Type": "PERCENT", "Value": 10}},
            "CanarySize.Type: 'PERCENT' is not CAPACITY_PERCENT or INSTANCE_COUNT",
        ),
        (
            {"Type": "LINEAR", "LinearStepSize": {"Type": "COUNT", "Value": 1}},
            "LinearStepSize.Type: 'COUNT' is not CAPACITY_PERCENT or INSTANCE_COUNT",
        ),
    ],
)
def test_a_routing_configuration_sagemaker_does_not_know_is_refused_naming_the_field(routing, named):
    from moto.sagemaker.exceptions import ValidationError

    from localcloud.behaviours.rollouts import phases

    with pytest.raises(ValidationError) as refused:
        phases({"TrafficRoutingConfiguration": routing}, [variant("champion", "v2", 1.0)])
    assert named in str(refused.value)


def test_update_endpoint_refusals_name_what_is_wrong(serving):
    errors = serving.exceptions.ClientError
    with pytest.raises(errors, match=r'Could not find endpoint "nowhere"'):
        serving.update_endpoint(EndpointName="nowhere", EndpointConfigName="green")
    with pytest.raises(errors, match=r'Could not find endpoint configuration "purple"'):
        serving.update_endpoint(EndpointName="churn", EndpointConfigName="purple")
    serving.update_endpoint(
        EndpointName="churn", EndpointConfigName="green", DeploymentConfig=canary(600, ["quiet-alarm"])
    )
    with pytest.raises(errors, match=r"Cannot update in-progress endpoint .*endpoint/churn"):
        serving.update_endpoint(EndpointName="churn", EndpointConfigName="blue")
    during = serving.describe_endpoint(EndpointName="churn")
    assert (during["EndpointStatus"], during["EndpointConfigName"]) == ("Updating", "blue")
    pending = during["PendingDeploymentSummary"]
    assert [
        (v["VariantName"], v["DesiredInstanceCount"], v["VariantStatus"][0]["Status"])
        for v in pending["ProductionVariants"]
    ] == [("champion", 1, "Baking")]


def test_a_variant_without_an_instance_count_counts_as_one_instance():
    from localcloud.behaviours.rollouts import phases

    bare = [
        {k: v for k, v in variant(name, "v2", 1.0).items() if k != "InitialInstanceCount"}
        for name in ("a", "b")
    ]
    routing = {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}
    assert phases({"TrafficRoutingConfiguration": routing}, bare)[0] == (0.5, 0.0)


def test_a_rollout_without_rollback_alarms_completes(serving, emulator):
    policy = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 60},
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {},
    }
    serving.update_endpoint(EndpointName="churn", EndpointConfigName="green", DeploymentConfig=policy)
    emulator.advance(60)
    after = serving.describe_endpoint(EndpointName="churn")
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", "green")
