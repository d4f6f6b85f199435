"""What AWS would refuse fails the deploy, naming the resource, the request and the member.

Each case is a one-resource program in a scratch project, deployed by the same engine without
the security policy pack (as `pulumi up` without `--policy-pack`): these programs break the
platform's invariants on purpose, and what is tested here is what AWS itself refuses.
"""

from __future__ import annotations

import textwrap

import pytest

from localcloud.engine import Engine
from localcloud.state import State
from localcloud.translations.base import DeployError

PROGRAM = textwrap.dedent(
    """
    import json

    import pulumi
    import pulumi_aws as aws

    case = pulumi.Config("bad").require("case")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    if case == "enum":
        aws.cloudwatch.MetricAlarm("latency-alarm", comparison_operator="GreaterThanSomething",
            evaluation_periods=1, threshold=1, metric_name="ModelLatency", namespace="AWS/SageMaker",
            period=60, statistic="Average")
    if case == "long-name":
        aws.iam.Role("endpoint-role", name="r" * 70, assume_role_policy=trust)
    if case == "missing-member":
        role = aws.iam.Role("scheduler-role", name="scheduler-role", assume_role_policy=trust)
        aws.scheduler.Schedule("retrain-schedule", schedule_expression="rate(1 hour)", flexible_time_window={},
            target={"arn": "arn:aws:sqs:eu-west-1:123456789012:queue", "role_arn": role.arn})
    if case == "reference":
        role = aws.iam.Role("model-role", name="model-role", assume_role_policy=trust)
        aws.sagemaker.Model("champion-model", name="champion", execution_role_arn=role.arn,
            primary_container={"model_package_name":
                "arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn/9"})
    """
)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "__main__.py").write_text(PROGRAM)
    (tmp_path / "Pulumi.yaml").write_text("name: bad\nruntime: python\nmain: infra/\n")
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    return tmp_path


def _deploy(project, emulator, case: str) -> str:
    engine = Engine(
        "bad",
        emulator.endpoint_url,
        state_dir=project / ".state",
        root=project,
        overrides={"bad:case": case},
        policy_pack=False,
    )
    with pytest.raises(DeployError) as refused:
        engine.up()
    return str(refused.value)


@pytest.mark.parametrize(
    ("case", "names"),
    [
        (
            "enum",
            [
                "latency-alarm (aws:cloudwatch/metricAlarm:MetricAlarm)",
                "PutMetricAlarm",
                "ComparisonOperator",
            ],
        ),
        (
            "long-name",
            ["endpoint-role (aws:iam/role:Role)", "CreateRole", "RoleName", "more than the maximum 64"],
        ),
        ("missing-member", ["retrain-schedule (aws:scheduler/schedule:Schedule)", "CreateSchedule", "Mode"]),
    ],
)
def test_a_request_aws_would_refuse_fails_naming_resource_request_and_member(project, fresh, case, names):
    message = _deploy(project, fresh, case)
    for name in names:
        assert name in message


def test_a_missing_reference_fails_naming_resource_and_reference(project, fresh):
    message = _deploy(project, fresh, "reference")
    assert "champion-model (aws:sagemaker/model:Model)" in message
    assert "primaryContainer.modelPackageName refers to model package" in message
    assert "model-package/churn/9" in message
    assert fresh.client("sagemaker").list_models()["Models"] == []


def test_a_refused_request_fails_in_the_preview_before_anything_is_made(project, fresh):
    """`up` previews first (item 3): the schedule's refusal stops it before its role exists."""
    message = _deploy(project, fresh, "missing-member")
    assert "retrain-schedule (aws:scheduler/schedule:Schedule)" in message and "Mode" in message
    assert fresh.client("iam").list_roles()["Roles"] == []
    assert State.load(project / ".state" / "bad.json", "bad").resources == {}
    assert fresh.client("scheduler").list_schedules()["Schedules"] == []


def test_preview_runs_the_same_checks_and_names_resource_and_member(project, fresh):
    engine = Engine(
        "bad",
        fresh.endpoint_url,
        state_dir=project / ".state",
        root=project,
        overrides={"bad:case": "long-name"},
        policy_pack=False,
    )
    with pytest.raises(DeployError, match=r"(?s)endpoint-role \(aws:iam/role:Role\).*CreateRole.*RoleName"):
        engine.up(preview=True)


def test_a_missing_reference_fails_the_preview_naming_it(project, fresh):
    engine = Engine(
        "bad",
        fresh.endpoint_url,
        state_dir=project / ".state",
        root=project,
        policy_pack=False,
        overrides={"bad:case": "reference"},
    )
    with pytest.raises(DeployError, match=r"primaryContainer.modelPackageName refers to model package"):
        engine.up(preview=True)
    assert fresh.client("iam").list_roles()["Roles"] == []
