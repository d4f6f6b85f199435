"""Retraining: every trigger starts the training pipeline with its reason and strategy; one run at a time."""

from __future__ import annotations

import json

import pytest

from infra.functions import retrain_guard
from infra.retraining import (
    DEFAULT_STRATEGIES,
    Retraining,
    RetrainingArgs,
    alarm_pattern,
    executing_pattern,
    guard_role_policy,
    start_parameters,
)
from tests.infra.harness import ACCOUNT, run

REGION = "eu-west-1"
PIPELINE = "customer-churn-training"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/stack-key"
TAGS = {"project": "mlops-platform", "stack": "test", "owner": "ml-team"}
TRIGGERS = {
    "drift": ["customer-churn-test-drift-tenure_months", "customer-churn-test-prediction-drift"],
    "quality": ["customer-churn-test-auc"],
    "data-volume": ["customer-churn-test-new-records"],
}
ETR = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


def args(**overrides) -> RetrainingArgs:
    return RetrainingArgs(
        **{
            "training_pipeline_name": PIPELINE,
            "training_pipeline_arn": PIPELINE_ARN,
            "triggers": TRIGGERS,
            "kms_key_arn": KEY_ARN,
            "tags": TAGS,
            "name_prefix": "customer-churn-test",
            **overrides,
        }
    )


def deploy(**overrides):
    return run(lambda: Retraining("retraining", args(**overrides)), region=REGION)


@pytest.fixture(scope="module")
def deployed():
    return deploy()


def rule_named(rec, logical):
    return next(r for r in rec.of_type(ETR) if r.name == logical)


def target_of(rec, rule):
    return next(t for t in rec.of_type(TARGET) if t.inputs["rule"] == rule.outputs["name"])


def parameters(target) -> dict[str, str]:
    return {p["name"]: p["value"] for p in target.inputs["sagemakerPipelineTarget"]["pipelineParameterLists"]}


# -- plain functions --------------------------------------------------------------------------


def test_the_alarm_pattern_matches_only_these_alarms_entering_alarm():
    assert alarm_pattern(["b", "a"]) == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": ["a", "b"], "state": {"value": ["ALARM"]}},
    }


def test_an_alarm_rule_without_alarms_is_refused():
    with pytest.raises(ValueError, match="at least one alarm"):
        alarm_pattern([])


def test_the_guard_pattern_matches_executions_of_the_training_pipeline_entering_executing():
    assert executing_pattern(PIPELINE_ARN)["detail"] == {
        "pipelineArn": [PIPELINE_ARN],
        "currentPipelineExecutionStatus": ["Executing"],
    }


def test_default_strategies_train_on_new_data_only_for_a_data_volume_trigger():
    assert DEFAULT_STRATEGIES == {
        "drift": "combined",
        "quality": "combined",
        "data-volume": "new-data-only",
        "schedule": "combined",
    }


def test_start_parameters_are_checked_against_the_training_pipeline():
    assert start_parameters("drift", "combined") == {"TriggerReason": "drift", "TrainingStrategy": "combined"}
    with pytest.raises(ValueError, match="TrainingStrategy"):
        start_parameters("drift", "everything")


def test_the_guard_may_only_list_and_stop_training_executions():
    policy = guard_role_policy(
        log_group_arn="arn:aws:logs:x:1:log-group:g", pipeline_arn=PIPELINE_ARN, kms_key_arn=KEY_ARN
    )
    actions = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["Statement"]}
    assert actions["ListTrainingExecutions"] == (["sagemaker:ListPipelineExecutions"], [PIPELINE_ARN])
    assert actions["StopTrainingExecutions"] == (
        ["sagemaker:StopPipelineExecution"],
        [f"{PIPELINE_ARN}/execution/*"],
    )
    assert all("*" not in s["Resource"] for s in policy["Statement"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"triggers": {"latency": ["a"]}}, "triggers: 'latency' is not an alarm reason"),
        ({"strategies": {"drift": "all"}}, r"strategies\['drift'\]: 'all' is not one of"),
        ({"strategies": {"manual": "combined"}}, "strategies: 'manual' is not a reason"),
        ({"schedule_expression": "weekly"}, "schedule_expression"),
        ({"log_retention_days": 10}, "log_retention_days: 10"),
    ],
)
def test_bad_arguments_fail_before_any_resource_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        args(**overrides)


# -- the component ----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["drift", "quality", "data-volume"])
def test_each_alarm_rule_starts_the_training_pipeline_with_its_reason_and_strategy(deployed, reason):
    rule = rule_named(deployed, f"retraining-{reason}-rule")
    assert json.loads(rule.inputs["eventPattern"]) == alarm_pattern(TRIGGERS[reason])
    target = target_of(deployed, rule)
    assert target.inputs["arn"] == PIPELINE_ARN
    assert parameters(target) == {"TriggerReason": reason, "TrainingStrategy": DEFAULT_STRATEGIES[reason]}


def test_the_schedule_rule_starts_a_combined_run(deployed):
    rule = rule_named(deployed, "retraining-schedule-rule")
    assert rule.inputs["scheduleExpression"] == "rate(7 days)" and rule.inputs["state"] == "ENABLED"
    target = target_of(deployed, rule)
    assert target.inputs["arn"] == PIPELINE_ARN
    assert parameters(target) == {"TriggerReason": "schedule", "TrainingStrategy": "combined"}


def test_a_disabled_schedule_keeps_its_rule_but_disables_it():
    rec = deploy(schedule_enabled=False, schedule_expression="cron(0 3 ? * MON *)")
    rule = rule_named(rec, "retraining-schedule-rule")
    assert rule.inputs["state"] == "DISABLED" and rule.inputs["scheduleExpression"] == "cron(0 3 ? * MON *)"


def test_strategies_override_the_defaults_per_reason():
    rec = deploy(strategies={"drift": "new-data-only"})
    assert (
        parameters(target_of(rec, rule_named(rec, "retraining-drift-rule")))["TrainingStrategy"]
        == "new-data-only"
    )
    assert (
        parameters(target_of(rec, rule_named(rec, "retraining-quality-rule")))["TrainingStrategy"]
        == "combined"
    )


def test_a_reason_without_alarms_gets_no_rule():
    rec = deploy(triggers={"quality": ["customer-churn-test-auc"], "drift": []})
    assert {r.name for r in rec.of_type(ETR)} == {
        "retraining-quality-rule",
        "retraining-schedule-rule",
        "retraining-guard-rule",
    }


def test_eventbridge_may_only_start_the_training_pipeline_for_these_rules(deployed):
    role = next(r for r in deployed.of_type("aws:iam/role:Role") if r.name == "retraining-events-role")
    targets = [t for t in deployed.of_type(TARGET) if t.inputs.get("roleArn")]
    assert len(targets) == 4 and {t.inputs["roleArn"] for t in targets} == {role.outputs["arn"]}
    policy = next(
        p
        for p in deployed.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name == "retraining-events-role-policy"
    )
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Action"] == "sagemaker:StartPipelineExecution" and statement["Resource"] == [
        PIPELINE_ARN
    ]
    trusted = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["ArnEquals"][
        "aws:SourceArn"
    ]
    assert set(trusted) == {
        r.outputs["arn"] for r in deployed.of_type(ETR) if r.name != "retraining-guard-rule"
    }


def test_the_guard_runs_on_training_executions_entering_executing(deployed):
    rule = rule_named(deployed, "retraining-guard-rule")
    assert json.loads(rule.inputs["eventPattern"]) == executing_pattern(PIPELINE_ARN)
    function = deployed.one("aws:lambda/function:Function")
    assert target_of(deployed, rule).inputs["arn"] == function.outputs["arn"]
    permission = deployed.one("aws:lambda/permission:Permission")
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]
    # Lambda's confused-deputy guard on a service principal: the rule, of this account.
    assert permission.inputs["sourceAccount"] == ACCOUNT
    assert permission.inputs["function"] == function.outputs["name"]


def test_the_guard_function_is_packaged_with_its_module_and_guards_the_training_pipeline(deployed):
    function = deployed.one("aws:lambda/function:Function").inputs
    assert function["handler"] == "retrain_guard.handler" and function["runtime"].startswith("python3.1")
    assert set(function["code"].assets) == {"retrain_guard.py"}
    assert function["environment"]["variables"] == {retrain_guard.GUARDED_PIPELINE_ARN: PIPELINE_ARN}
    assert function["kmsKeyArn"] == KEY_ARN


def test_the_guard_logs_to_its_own_encrypted_group_with_retention(deployed):
    group = deployed.one("aws:cloudwatch/logGroup:LogGroup").inputs
    function = deployed.one("aws:lambda/function:Function").inputs
    assert group["name"] == f"/aws/lambda/{function['name']}" == function["loggingConfig"]["logGroup"]
    assert group["kmsKeyId"] == KEY_ARN and group["retentionInDays"] == 30


def test_every_taggable_resource_carries_the_stack_tags(deployed):
    untaggable = {"aws:iam/rolePolicy:RolePolicy", TARGET, "aws:lambda/permission:Permission"}
    for r in deployed.resources:
        if r.type.startswith("aws:") and r.type not in untaggable:
            assert r.inputs.get("tags") == TAGS, r.name


def test_names_default_to_the_training_pipelines():
    rec = deploy(name_prefix=None)
    assert rule_named(rec, "retraining-drift-rule").inputs["name"] == f"{PIPELINE}-retrain-drift"
    assert rec.one("aws:lambda/function:Function").inputs["name"] == f"{PIPELINE}-retrain-guard"


def test_a_pattern_longer_than_eventbridge_allows_is_refused_naming_the_rule():
    from infra.retraining import pattern_json

    names = [f"customer-churn-prod-drift-feature_{n:03d}" for n in range(60)]
    with pytest.raises(
        ValueError, match=r"retrain-drift rule: the event pattern has \d+ characters; .* 2048"
    ):
        pattern_json("retrain-drift rule", alarm_pattern(names))
    assert json.loads(pattern_json("retrain-drift rule", alarm_pattern(names[:1])))["detail"]["alarmName"]
