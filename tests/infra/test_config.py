"""Stack configuration: each committed stack validates; each bad value fails naming its key."""

from __future__ import annotations

import re

import pytest
import yaml

from infra import config
from infra.config import ConfigError
from tests.infra.harness import ROOT

BASE = {"owner": "team", "deploymentStrategy": "all-at-once"}


def parse(**values):
    return config.parse({**BASE, **values}, stack="test", region="eu-west-1")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "local"])
def test_committed_stacks_validate(stack):
    values, region = config.stack_values(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()))
    parsed = config.parse(values, stack=stack, region=region)
    assert parsed.region == "eu-west-1"


def test_committed_stacks_choose_their_documented_strategies():
    strategies = {}
    for stack in ("dev", "staging", "prod", "local"):
        values, region = config.stack_values(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()))
        strategies[stack] = config.parse(values, stack=stack, region=region)
    assert strategies["dev"].deployment_strategy == "all-at-once"
    assert strategies["dev"].instance_count == 1 and not strategies["dev"].monitoring_schedule_enabled
    assert strategies["staging"].deployment_strategy == "shadow"
    prod = strategies["prod"]
    assert (
        prod.deployment_strategy == "canary"
        and prod.min_capacity >= 2
        and prod.max_capacity > prod.min_capacity
    )
    assert prod.mlflow_enabled
    # The local cloud's stack: canary with auto-rollback, a short bake, schedules on.
    local = strategies["local"]
    assert local.deployment_strategy == "canary" and local.wait_interval_seconds <= 300
    assert local.monitoring_schedule_enabled and local.retrain_schedule_enabled
    assert local.canary_size_percent <= 50 and local.instance_count >= 2


@pytest.mark.parametrize(("count", "percent"), [(1, 10), (1, 50)])
def test_a_canary_on_one_instance_is_refused_naming_both_keys(count, percent):
    # AWS refuses the blue/green update only when it runs, after the stack half-changed.
    with pytest.raises(ConfigError) as err:
        parse(deploymentStrategy="canary", instanceCount=count, canarySizePercent=percent, maxCapacity=4)
    message = str(err.value)
    assert "mlops-platform:deploymentStrategy: 'canary'" in message
    assert f"mlops-platform:instanceCount {count}" in message and "at most 50%" in message


@pytest.mark.parametrize(("count", "percent"), [(2, 10), (2, 50), (4, 50)])
def test_a_canary_of_at_most_half_the_instances_is_accepted(count, percent):
    parsed = parse(deploymentStrategy="canary", instanceCount=count, canarySizePercent=percent, maxCapacity=4)
    assert (parsed.instance_count, parsed.canary_size_percent) == (count, percent)


def test_defaults_apply():
    parsed = parse()
    assert parsed.min_capacity == parsed.max_capacity == parsed.instance_count == 1
    assert (
        parsed.canary_size_percent == 10 and parsed.serverless is False and parsed.model_package_arn is None
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"deploymentStrategy": "blue-green"},
            "mlops-platform:deploymentStrategy: 'blue-green' is not one of all-at-once | canary | linear | shadow",
        ),
        ({"canarySizePercent": 150}, "mlops-platform:canarySizePercent: 150 is outside (0, 50]"),
        ({"canarySizePercent": 0}, "mlops-platform:canarySizePercent: 0 is outside (0, 50]"),
        ({"linearStepPercent": 100}, "mlops-platform:linearStepPercent: 100 is outside [10, 50]"),
        ({"canarySizePercent": 12.5}, "mlops-platform:canarySizePercent: 12.5 is not a whole number"),
        (
            {"minCapacity": 3, "maxCapacity": 2, "instanceCount": 2},
            "mlops-platform:minCapacity: 3 is above mlops-platform:maxCapacity 2",
        ),
        ({"instanceCount": 1.5}, "mlops-platform:instanceCount: 1.5 is not a whole number"),
        ({"serverless": "yes"}, "mlops-platform:serverless: 'yes' is not true or false"),
        (
            {"serverless": True, "deploymentStrategy": "canary"},
            "mlops-platform:serverless: true cannot be combined with mlops-platform:deploymentStrategy 'canary'",
        ),
        (
            {"serverless": True, "deploymentStrategy": "shadow"},
            "neither several production variants nor shadow",
        ),
        (
            {"serverless": True},
            "mlops-platform:serverless: true cannot be combined with mlops-platform:driftMonitoring",
        ),
        (
            {"modelPackageArn": "my-model"},
            "mlops-platform:modelPackageArn: 'my-model' is not a SageMaker model package",
        ),
        (
            {"monitoringSchedule": "hourly"},
            "mlops-platform:monitoringSchedule: 'hourly' is not a schedule expression",
        ),
        ({"logRetentionDays": 10}, "mlops-platform:logRetentionDays: 10 is not one of CloudWatch Logs"),
        ({"schemaPath": "nope.yaml"}, "mlops-platform:schemaPath: 'nope.yaml' is not a file"),
        (
            {"gitlabTriggerUrl": "https://gitlab.example.com/api/v4/projects/1/trigger/pipeline"},
            "mlops-platform:gitlabTriggerToken: missing",
        ),
        ({"deploymentStrategie": "canary"}, "mlops-platform:deploymentStrategie: unknown key"),
    ],
)
def test_bad_values_fail_naming_the_key_the_value_and_what_is_allowed(values, message):
    with pytest.raises(ConfigError) as err:
        parse(**values)
    assert message in str(err.value)


@pytest.mark.parametrize("key", ["owner", "deploymentStrategy"])
def test_missing_required_key_is_named(key):
    values = dict(BASE)
    del values[key]
    with pytest.raises(ConfigError, match=f"mlops-platform:{key}: missing"):
        config.parse(values, stack="test", region="eu-west-1")


def test_missing_region_is_named():
    with pytest.raises(ConfigError, match="aws:region: missing"):
        config.parse(BASE, stack="test", region=None)


def test_values_quoted_in_a_stack_file_still_parse():
    assert parse(canarySizePercent="25").canary_size_percent == 25
    assert parse(serverless="false", driftMonitoring="false").serverless is False


def test_serverless_all_at_once_without_drift_monitoring_is_allowed():
    parsed = parse(serverless=True, driftMonitoring=False)
    assert parsed.serverless and not parsed.drift_monitoring


def test_online_feature_lookup_is_off_by_default_and_read_as_a_boolean():
    assert parse().online_feature_lookup is False
    assert parse(onlineFeatureLookup="true").online_feature_lookup is True
    with pytest.raises(config.ConfigError, match="mlops-platform:onlineFeatureLookup"):
        parse(onlineFeatureLookup="sometimes")


def test_readme_documents_every_key_with_its_default():
    readme = (ROOT / "README.md").read_text()
    for key in config.KEYS:
        assert f"`{key.name}`" in readme, key.name


def test_model_search_takes_the_searches_training_knows_and_names_the_key_otherwise():
    from model_code.training.selection import SEARCHES

    assert config.MODEL_SEARCHES == SEARCHES
    assert parse(modelSearch="quick").model_search == "quick"
    with pytest.raises(
        ConfigError, match=re.escape("mlops-platform:modelSearch: 'fast' is not one of grid | quick")
    ):
        parse(modelSearch="fast")


def test_a_shadow_stack_serves_its_first_model_alone_until_a_challenger_is_given():
    champion = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn/3"
    parsed = parse(deploymentStrategy="shadow", modelPackageArn=champion)
    assert (parsed.model_package_arn, parsed.shadow_model_package_arn) == (champion, None)


# -- promotionOrder ------------------------------------------------------------------------------


def test_promotion_order_takes_names_and_accounts():
    from infra.promotion import Stage

    order = parse(
        promotionOrder=["dev", "test", {"stack": "prod", "account": "012345678901"}]
    ).promotion_order
    assert order == (Stage("dev"), Stage("test"), Stage("prod", "012345678901"))
    assert parse().promotion_order == ()


def test_promotion_order_as_the_engine_passes_it_json_encoded():
    assert [s.stack for s in parse(promotionOrder='["test", "prod"]').promotion_order] == ["test", "prod"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("dev", "mlops-platform:promotionOrder: 'dev' is not a list of stacks"),
        (["test", {"stack": "prod", "account": "1234"}], "mlops-platform:promotionOrder[1].account: '1234'"),
        (
            ["test", {"stack": "prod", "account": 12345678901}],
            "promotionOrder[1].account: 12345678901 is not",
        ),
        (["test", {"stack": "prod", "acount": "1"}], "mlops-platform:promotionOrder[1].acount: unknown key"),
        (["test", "Prod!"], "mlops-platform:promotionOrder[1].stack: 'Prod!' is not a stack name"),
        (["test", "dev", "dev"], "mlops-platform:promotionOrder[2].stack: 'dev' is listed twice"),
        (["dev", "prod"], "mlops-platform:promotionOrder: [dev, prod] does not list this stack 'test'"),
    ],
)
def test_a_bad_promotion_order_names_the_key_and_the_entry(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(promotionOrder=value)


def test_the_committed_stacks_agree_on_one_promotion_order():
    orders = {}
    for stack in ("dev", "staging", "prod"):
        values, region = config.stack_values(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()))
        orders[stack] = config.parse(values, stack=stack, region=region).promotion_order
    assert len(set(orders.values())) == 1
    assert [s.stack for s in orders["dev"]] == ["dev", "staging", "prod"]


@pytest.mark.parametrize(
    ("values", "keys"),
    [
        # 100 / 10 = 10 shifts of 600 s: 6,000 s.
        (
            {"deploymentStrategy": "linear", "linearStepPercent": 10, "waitIntervalSeconds": 600},
            ["deploymentStrategy", "linearStepPercent", "waitIntervalSeconds"],
        ),
        # A canary shifts twice: 2 x 1,800 s is the provider's whole hour, with no time to provision.
        (
            {
                "deploymentStrategy": "canary",
                "instanceCount": 2,
                "maxCapacity": 4,
                "waitIntervalSeconds": 1800,
            },
            ["deploymentStrategy", "waitIntervalSeconds"],
        ),
        ({"waitIntervalSeconds": 3600}, ["deploymentStrategy", "waitIntervalSeconds"]),
    ],
)
def test_a_rollout_that_cannot_finish_within_the_providers_hour_is_refused_naming_the_keys(values, keys):
    # terraform-provider-aws waits at most 60 minutes for InService after UpdateEndpoint.
    with pytest.raises(ConfigError) as err:
        parse(**values)
    message = str(err.value)
    assert message.startswith(", ".join(f"mlops-platform:{k}" for k in keys) + ":")
    assert "60 minutes" in message


def test_a_rollout_that_bakes_under_the_providers_hour_is_accepted():
    parsed = parse(deploymentStrategy="linear", linearStepPercent=20, waitIntervalSeconds=600)
    assert parsed.wait_interval_seconds == 600  # 5 shifts of 600 s: 3,000 s
