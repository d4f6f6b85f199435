"""EventBridge Scheduler schedules fire on the virtual clock, through boto3."""

from __future__ import annotations

import json

import pytest

from localcloud.behaviours.scheduler import cron_matches
from tests.localcloud.behaviours.support import START

ROLE = "arn:aws:iam::123456789012:role/scheduler"
DEFINITION = json.dumps(
    {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "TriggerReason", "Type": "String", "DefaultValue": "manual"}],
        "Steps": [],
    }
)


def executions(sm) -> list[dict]:
    return sm.list_pipeline_executions(PipelineName="monitoring")["PipelineExecutionSummaries"]


def test_an_hourly_schedule_starts_the_pipeline_each_hour_with_its_parameters(emulator, client):
    sm, scheduler = client("sagemaker"), client("scheduler")
    pipeline = sm.create_pipeline(PipelineName="monitoring", PipelineDefinition=DEFINITION, RoleArn=ROLE)[
        "PipelineArn"
    ]
    target = {
        "Arn": pipeline,
        "RoleArn": ROLE,
        "SageMakerPipelineParameters": {
            "PipelineParameterList": [{"Name": "TriggerReason", "Value": "schedule"}]
        },
        "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3},
    }
    for name, state in (("hourly", "ENABLED"), ("paused", "DISABLED")):
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression="rate(1 hour)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target,
            State=state,
        )
    emulator.advance(59 * 60)
    assert executions(sm) == []
    emulator.advance(60)
    assert len(executions(sm)) == 1  # the paused schedule started nothing
    emulator.advance(2 * 3600)
    emulator.wait_for_executions()
    runs = executions(sm)
    assert len(runs) == 3
    parameters = sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=runs[0]["PipelineExecutionArn"]
    )
    assert parameters["PipelineParameters"] == [{"Name": "TriggerReason", "Value": "schedule"}]


def test_cron_and_one_time_schedules_send_their_input(emulator, client):
    sqs, scheduler = client("sqs"), client("scheduler")
    url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # START is Monday 12:00 UTC: weekdays at 09:00 fire on Tuesday; the one-time at 13:30 today.
    schedules = {"weekday-mornings": "cron(0 9 ? * MON-FRI *)", "once": "at(2026-01-05T13:30:00)"}
    for name, expression in schedules.items():
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression=expression,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": queue, "RoleArn": ROLE, "Input": json.dumps({"from": name})},
        )
    emulator.advance(24 * 3600)
    bodies = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(b["from"] for b in bodies) == ["once", "weekday-mornings"]


@pytest.mark.parametrize(
    ("expression", "minutes_after_start", "fires"),
    [
        ("0 12 * * ? *", 0, True),  # Monday 12:00
        ("*/15 * * * ? *", 45, True),
        ("*/15 * * * ? *", 44, False),
        ("0 12 ? * SAT-SUN *", 0, False),
        ("0 12 ? * 2 *", 0, True),  # 2 is Monday in AWS's numbering (1 is Sunday)
        ("30 13 5 JAN ? 2026", 90, True),
    ],
)
def test_cron_fields_as_aws_reads_them(expression, minutes_after_start, fires):
    from datetime import timedelta

    assert cron_matches(expression, START + timedelta(minutes=minutes_after_start)) is fires


def test_cron_features_not_emulated_are_named():
    with pytest.raises(ValueError, match="uses L, W or #"):
        cron_matches("0 12 L * ? *", START)
