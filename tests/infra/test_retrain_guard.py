"""The retraining guard: of two training executions running at once, the newer one is stopped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from moto import mock_aws

from infra.functions import retrain_guard
from infra.functions.retrain_guard import executions_to_stop, handler, request_token

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PIPELINE = "customer-churn-training"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


def arn(execution_id: str) -> str:
    return f"{PIPELINE_ARN}/execution/{execution_id}"


def summary(execution_id: str, minutes: int, status: str = "Executing") -> dict:
    return {
        "PipelineExecutionArn": arn(execution_id),
        "StartTime": T0 + timedelta(minutes=minutes),
        "PipelineExecutionStatus": status,
    }


def executing_event(execution_arn: str, status: str = "Executing", pipeline_arn: str = PIPELINE_ARN) -> dict:
    return {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "resources": [pipeline_arn, execution_arn],
        "detail": {
            "pipelineArn": pipeline_arn,
            "pipelineExecutionArn": execution_arn,
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Starting",
        },
    }


# -- the decision -----------------------------------------------------------------------------


def test_the_newer_of_two_executing_runs_is_stopped():
    runs = [summary("older", 0), summary("newer", 5)]
    assert executions_to_stop(runs, arn("newer")) == [arn("newer")]


def test_the_older_of_two_executing_runs_keeps_running():
    runs = [summary("older", 0), summary("newer", 5)]
    assert executions_to_stop(runs, arn("older")) == []


def test_a_lone_run_is_left_alone():
    assert executions_to_stop([summary("only", 0)], arn("only")) == []


def test_finished_and_stopping_runs_do_not_block_a_new_one():
    runs = [
        summary("done", 0, "Succeeded"),
        summary("failed", 1, "Failed"),
        summary("halting", 2, "Stopping"),
    ]
    assert executions_to_stop([*runs, summary("new", 10)], arn("new")) == []


def test_a_run_already_stopping_needs_nothing():
    runs = [summary("older", 0), summary("newer", 5, "Stopping")]
    assert executions_to_stop(runs, arn("newer")) == []


def test_a_run_the_list_does_not_show_yet_counts_as_the_newest():
    assert executions_to_stop([summary("older", 0)], arn("just-started")) == [arn("just-started")]


def test_two_runs_started_together_leave_exactly_one_running():
    runs = [summary("aaa", 0), summary("bbb", 0)]
    stopped = executions_to_stop(runs, arn("aaa")) + executions_to_stop(runs, arn("bbb"))
    assert stopped == [arn("bbb")]


def test_the_request_token_is_stable_per_execution_and_within_aws_limits():
    token = request_token(arn("newer"))
    assert token == request_token(arn("newer")) != request_token(arn("older"))
    assert 32 <= len(token) <= 128


# -- the handler, against moto ----------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(retrain_guard.GUARDED_PIPELINE_ARN, PIPELINE_ARN)


@pytest.fixture
def sagemaker(aws_env):
    """A moto SageMaker with the training pipeline; StopPipelineExecution is recorded.

    moto has no StopPipelineExecution and finishes executions at once, so the test sets
    their status and start time in moto's state and answers the stop itself, after botocore
    has validated the request against SageMaker's API model.
    """
    with mock_aws():
        client = boto3.client("sagemaker", region_name=REGION)
        client.create_pipeline(
            PipelineName=PIPELINE,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/customer-churn-test-pipelines",
            ClientRequestToken="create-training-pipeline-token-0001",
        )
        client.stopped = []

        def record_stop(params, **_):
            # ``params`` is the serialized request: botocore has validated and encoded it.
            request = json.loads(params["body"])
            client.stopped.append(request)
            http = AWSResponse(params["url"], 200, {}, None)
            return http, {"PipelineExecutionArn": request["PipelineExecutionArn"]}

        client.meta.events.register("before-call.sagemaker.StopPipelineExecution", record_stop)
        yield client


def start(client, minutes: int, status: str = "Executing") -> str:
    from moto.sagemaker.models import sagemaker_backends

    execution_arn = client.start_pipeline_execution(
        PipelineName=PIPELINE, ClientRequestToken=f"start-{minutes:04d}-0000000000000000000000000"
    )["PipelineExecutionArn"]
    execution = sagemaker_backends[ACCOUNT][REGION].pipelines[PIPELINE].pipeline_executions[execution_arn]
    execution.pipeline_execution_status = status
    execution.start_time = (T0 + timedelta(minutes=minutes)).replace(tzinfo=None)
    return execution_arn


def test_the_guard_stops_the_newer_of_two_executing_runs(sagemaker):
    older, newer = start(sagemaker, 0), start(sagemaker, 5)
    result = handler(executing_event(newer), None, client=sagemaker)
    assert result["action"] == "stopped" and result["running"] == [older]
    assert sagemaker.stopped == [{"PipelineExecutionArn": newer, "ClientRequestToken": request_token(newer)}]


def test_the_guard_lets_the_older_run_go_on(sagemaker):
    older, _ = start(sagemaker, 0), start(sagemaker, 5)
    assert handler(executing_event(older), None, client=sagemaker)["action"] == "allowed"
    assert sagemaker.stopped == []


def test_the_guard_leaves_a_lone_run_alone(sagemaker):
    start(sagemaker, 0, "Succeeded")
    only = start(sagemaker, 10)
    assert handler(executing_event(only), None, client=sagemaker)["action"] == "allowed"
    assert sagemaker.stopped == []


# -- the handler's exact requests, and what it ignores -----------------------------------------


def test_the_guard_lists_oldest_first_and_stops_with_an_idempotency_token(aws_env):
    client = boto3.client("sagemaker", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response(
            "list_pipeline_executions",
            {"PipelineExecutionSummaries": [summary("older", 0), summary("newer", 5)]},
            {"PipelineName": PIPELINE, "SortBy": "CreationTime", "SortOrder": "Ascending"},
        )
        stub.add_response(
            "stop_pipeline_execution",
            {"PipelineExecutionArn": arn("newer")},
            {"PipelineExecutionArn": arn("newer"), "ClientRequestToken": request_token(arn("newer"))},
        )
        assert handler(executing_event(arn("newer")), None, client=client)["action"] == "stopped"
        stub.assert_no_pending_responses()


class NoCalls:
    def __getattr__(self, name):
        raise AssertionError(f"the guard called {name} for an event it should ignore")


@pytest.mark.parametrize(
    "event",
    [
        executing_event(arn("x"), status="Succeeded"),
        executing_event(
            "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/other/execution/x",
            pipeline_arn="arn:aws:sagemaker:eu-west-1:123456789012:pipeline/other",
        ),
        {"detail": {}},
    ],
    ids=["not-executing", "another-pipeline", "empty"],
)
def test_the_guard_ignores_events_it_does_not_guard(aws_env, event):
    assert handler(event, None, client=NoCalls())["action"] == "ignored"
