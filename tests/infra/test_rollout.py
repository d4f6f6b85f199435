"""Rollout as plain data: names, variants, traffic routing, waits and rollback alarms."""

from __future__ import annotations

import pytest

from infra.rollout import (
    CHALLENGER,
    CHAMPION,
    deployment_config,
    endpoint_config_name,
    endpoint_name,
    model_name,
    rollback_alarm_names,
    rollout_wait_seconds,
    traffic_routing,
    variant_names,
)

ENDPOINT = "customer-churn-prod"
PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn/3"
CHALLENGER_PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn/4"


def test_endpoint_name_joins_schema_and_stack():
    assert endpoint_name("customer-churn", "prod") == "customer-churn-prod"


def test_endpoint_name_replaces_characters_sagemaker_refuses():
    assert endpoint_name("customer-churn", "team_a.dev") == "customer-churn-team-a-dev"


def test_long_endpoint_names_fit_and_stay_distinct():
    a, b = endpoint_name("x" * 40, "staging-" + "a" * 30), endpoint_name("x" * 40, "staging-" + "b" * 30)
    assert len(a) <= 63 and len(b) <= 63
    assert a != b


def test_variant_names_put_the_champion_first():
    assert variant_names(False) == [CHAMPION]
    assert variant_names(True) == [CHAMPION, CHALLENGER]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("all-at-once", {"type": "ALL_AT_ONCE", "wait_interval_in_seconds": 300}),
        ("shadow", {"type": "ALL_AT_ONCE", "wait_interval_in_seconds": 300}),
        (
            "canary",
            {
                "type": "CANARY",
                "canary_size": {"type": "CAPACITY_PERCENT", "value": 15},
                "wait_interval_in_seconds": 300,
            },
        ),
        (
            "linear",
            {
                "type": "LINEAR",
                "linear_step_size": {"type": "CAPACITY_PERCENT", "value": 25},
                "wait_interval_in_seconds": 300,
            },
        ),
    ],
)
def test_traffic_routing_per_strategy(strategy, expected):
    assert traffic_routing(strategy, 15, 25, 300) == expected


def test_traffic_routing_rejects_an_unknown_strategy():
    with pytest.raises(ValueError, match="strategy: 'blue-green' is not one of all-at-once, canary"):
        traffic_routing("blue-green")


def test_rollback_alarms_watch_the_champion_not_the_shadow():
    assert rollback_alarm_names(ENDPOINT, [CHAMPION, CHALLENGER]) == [
        "customer-churn-prod-champion-5xx-rate",
        "customer-churn-prod-champion-latency-p99",
    ]


def test_deployment_config_leaves_out_rollback_without_alarms():
    # AWS wants one to ten alarms in an auto-rollback configuration, never zero.
    config = deployment_config(traffic_routing("canary"), 3600, 0, [])
    assert "auto_rollback_configuration" not in config


def test_endpoint_config_name_changes_with_its_content():
    one = endpoint_config_name(ENDPOINT, {"instance_type": "ml.m5.large"})
    assert one == endpoint_config_name(ENDPOINT, {"instance_type": "ml.m5.large"})
    assert one != endpoint_config_name(ENDPOINT, {"instance_type": "ml.m5.xlarge"})
    assert len(endpoint_config_name("e" * 63, {})) <= 63


def test_model_name_changes_with_the_package_version():
    def spec(package):
        return {"primary_container": {"model_package_name": package}, "execution_role_arn": "role"}

    assert model_name(ENDPOINT, CHAMPION, spec(PACKAGE)) != model_name(
        ENDPOINT, CHAMPION, spec(CHALLENGER_PACKAGE)
    )
    assert len(model_name("e" * 63, CHALLENGER, spec(PACKAGE))) <= 63


def test_names_read_the_arguments_in_any_spelling_the_engine_uses():
    # The program writes snake_case and ints; the engine reports camelCase and floats.
    program = {"production_variants": [{"initial_instance_count": 2, "model_name": "m"}], "kms_key_arn": None}
    engine = {"productionVariants": [{"initialInstanceCount": 2.0, "modelName": "m"}]}
    assert endpoint_config_name(ENDPOINT, program) == endpoint_config_name(ENDPOINT, engine)


@pytest.mark.parametrize(
    ("strategy", "waits"),
    [("all-at-once", 600), ("shadow", 600), ("canary", 1200), ("linear", 3000)],
)
def test_rollout_waits_a_bake_after_every_shift(strategy, waits):
    assert (
        rollout_wait_seconds(strategy, linear_step_percent=20, wait_seconds=600, termination_seconds=0)
        == waits
    )


def test_rollout_wait_includes_the_termination_wait():
    assert rollout_wait_seconds("canary", 20, 600, 300) == 1500
