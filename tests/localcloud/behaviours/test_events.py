"""EventBridge delivery, through boto3: each matching event reaches each target of an enabled rule once."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests

from infra.ml_pipelines import object_created_pattern

PIPELINE_DEFINITION = json.dumps(
    {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "TriggerReason", "Type": "String", "DefaultValue": "manual"}],
        "Steps": [],
    }
)
ROLE = "arn:aws:iam::123456789012:role/pipeline"


def make_pipeline(sm, name="training") -> str:
    return sm.create_pipeline(
        PipelineName=name, PipelineDefinition=PIPELINE_DEFINITION, RoleArn=ROLE, ClientRequestToken="t" * 32
    )["PipelineArn"]


def make_queue(sqs, name="seen") -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def drain(sqs, url) -> list[dict]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def executions(sm, pipeline="training") -> list[dict]:
    return sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]


def parameters(sm, execution_arn) -> dict[str, str]:
    listed = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn)[
        "PipelineParameters"
    ]
    return {p["Name"]: p["Value"] for p in listed}


def test_put_events_reaches_a_pipeline_and_a_queue_once_each(emulator, client):
    eb, sm, sqs = client("events"), client("sagemaker"), client("sqs")
    pipeline = make_pipeline(sm)
    url, queue = make_queue(sqs)
    eb.put_rule(Name="retrain", EventPattern=json.dumps({"source": ["custom.monitor"]}))
    eb.put_targets(
        Rule="retrain",
        Targets=[
            {
                "Id": "pipeline",
                "Arn": pipeline,
                "RoleArn": "arn:aws:iam::123456789012:role/events",
                "SageMakerPipelineParameters": {
                    "PipelineParameterList": [{"Name": "TriggerReason", "Value": "drift"}]
                },
            },
            {"Id": "queue", "Arn": queue},
        ],
    )
    answer = eb.put_events(Entries=[{"Source": "custom.monitor", "DetailType": "Drift", "Detail": "{}"}])
    # moto answered 500 here (no pipeline targets) and botocore's retries delivered duplicates.
    assert answer["FailedEntryCount"] == 0
    assert answer["ResponseMetadata"]["RetryAttempts"] == 0
    assert len(drain(sqs, url)) == 1
    (execution,) = executions(sm)
    assert parameters(sm, execution["PipelineExecutionArn"]) == {"TriggerReason": "drift"}


def test_disabled_and_schedule_only_rules_match_nothing(emulator, client):
    eb, sqs = client("events"), client("sqs")
    url, queue = make_queue(sqs)
    eb.put_rule(Name="off", EventPattern=json.dumps({"source": ["custom.a"]}), State="DISABLED")
    eb.put_rule(Name="hourly", ScheduleExpression="rate(1 hour)")
    for rule in ("off", "hourly"):
        eb.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue}])
    eb.put_events(Entries=[{"Source": "custom.a", "DetailType": "X", "Detail": "{}"}])
    assert drain(sqs, url) == []


def test_an_upload_to_a_bucket_with_eventbridge_on_starts_the_pipeline(emulator, client):
    s3, eb, sm = client("s3"), client("events"), client("sagemaker")
    pipeline = make_pipeline(sm, "ingestion")
    for bucket in ("data", "quiet"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_notification_configuration(
        Bucket="data", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    eb.put_rule(Name="raw-data", EventPattern=json.dumps(object_created_pattern("data", "raw/")))
    eb.put_targets(Rule="raw-data", Targets=[{"Id": "p", "Arn": pipeline}])
    s3.put_object(Bucket="data", Key="other/x.csv", Body=b"a")  # outside the prefix
    s3.put_object(Bucket="quiet", Key="raw/x.csv", Body=b"a")  # no EventBridge notifications
    assert executions(sm, "ingestion") == []
    body = b"id,churn\n1,0\n"
    s3.put_object(Bucket="data", Key="raw/2026/churn.csv", Body=body)
    assert len(executions(sm, "ingestion")) == 1
    (delivered,) = requests.get(f"{emulator_url(client)}/_mlops/deliveries", timeout=10).json()["delivered"]
    detail = delivered["event"]["detail"]
    assert delivered["event"]["detail-type"] == "Object Created"
    assert detail["object"]["key"] == "raw/2026/churn.csv" and detail["object"]["size"] == len(body)
    assert detail["reason"] == "PutObject"


def emulator_url(client) -> str:
    return client("s3").meta.endpoint_url


def _function_on_rule(
    client, name: str, source: str, *, source_name: str, role: str, variables: dict | None = None
) -> None:
    """Function ``name`` running ``source`` (``app.handler``) as a role Lambda may assume, the
    target of a rule matching events from ``source_name``."""
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", source)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role_arn = client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    arn = client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role_arn,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": variables or {}},
    )["FunctionArn"]
    client("events").put_rule(Name=f"to-{name}", EventPattern=json.dumps({"source": [source_name]}))
    client("events").put_targets(Rule=f"to-{name}", Targets=[{"Id": name, "Arn": arn}])


def test_a_lambda_target_runs_its_deployed_handler_against_the_emulator(emulator, client):
    s3, eb = client("s3"), client("events")
    s3.create_bucket(Bucket="out", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    source = (
        "import json, os, boto3\n"
        "def handler(event, context):\n"
        "    boto3.client('s3').put_object(Bucket=os.environ['OUT'], Key=context.function_name,"
        " Body=json.dumps(event))\n"
        "    return 'ok'\n"
    )
    _function_on_rule(client, "recorder", source, source_name="custom.b", role="fn", variables={"OUT": "out"})
    eb.put_events(Entries=[{"Source": "custom.b", "DetailType": "Ping", "Detail": json.dumps({"n": 1})}])
    written = json.loads(s3.get_object(Bucket="out", Key="recorder")["Body"].read())
    assert (written["detail-type"], written["detail"]) == ("Ping", {"n": 1})


def test_sns_targets_publish_and_api_destinations_are_recorded_not_sent(emulator, client):
    eb, sns, sqs = client("events"), client("sns"), client("sqs")
    topic = sns.create_topic(Name="ops")["TopicArn"]
    url, queue = make_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    connection = eb.create_connection(
        Name="hook",
        AuthorizationType="API_KEY",
        AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}},
    )["ConnectionArn"]
    destination = eb.create_api_destination(
        Name="hook",
        ConnectionArn=connection,
        InvocationEndpoint="https://hooks.example.invalid/ml",
        HttpMethod="POST",
    )["ApiDestinationArn"]
    eb.put_rule(Name="notify", EventPattern=json.dumps({"source": ["custom.c"]}))
    eb.put_targets(
        Rule="notify",
        Targets=[
            {"Id": "topic", "Arn": topic},
            {"Id": "hook", "Arn": destination, "RoleArn": "arn:aws:iam::123456789012:role/events"},
        ],
    )
    eb.put_events(Entries=[{"Source": "custom.c", "DetailType": "Note", "Detail": "{}"}])
    (published,) = drain(sqs, url)
    assert published["detail-type"] == "Note"
    journal = requests.get(f"{emulator_url(client)}/_mlops/deliveries", timeout=10).json()
    (call,) = journal["api_destinations"]
    assert (call["method"], call["endpoint"]) == ("POST", "https://hooks.example.invalid/ml")
    assert call["body"]["detail-type"] == "Note"
    assert journal["failed"] == []


def test_put_rule_refuses_a_pattern_longer_than_eventbridge_allows(emulator, client):
    eb = client("events")
    # EventBridge quotas page: "Event pattern size ... 2,048 ... Maximum size of an event pattern,
    # in characters" (the API model's 4,096 is what a quota increase allows at most).
    limit = 2048
    padding = "x" * (limit - len(json.dumps({"source": [""]})))
    eb.put_rule(Name="fits", EventPattern=json.dumps({"source": [padding]}))
    assert len(eb.describe_rule(Name="fits")["EventPattern"]) == limit
    with pytest.raises(eb.exceptions.ClientError) as refused:
        eb.put_rule(Name="too-long", EventPattern=json.dumps({"source": [padding + "x"]}))
    # PutRule's API reference: LimitExceededException, for going beyond what is allowed by default.
    assert refused.value.response["Error"]["Code"] == "LimitExceededException"
    assert "2049 characters" in refused.value.response["Error"]["Message"]
    assert [r["Name"] for r in eb.list_rules()["Rules"]] == ["fits"]


def test_an_upload_event_carries_the_key_as_stored_neither_encoded_nor_decoded(emulator, client):
    s3, eb, sqs = client("s3"), client("events"), client("sqs")
    s3.create_bucket(Bucket="data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_notification_configuration(
        Bucket="data", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    url, queue = make_queue(sqs)
    eb.put_rule(Name="raw-data", EventPattern=json.dumps(object_created_pattern("data", "raw/")))
    eb.put_targets(Rule="raw-data", Targets=[{"Id": "q", "Arn": queue}])
    # S3's EventBridge event structure ("ev-events") gives detail.object.key with no encoding,
    # unlike its SNS/SQS/Lambda notifications ("red flower.jpg" becomes "red+flower.jpg").
    keys = ["raw/red flower.csv", "raw/a+b.csv", "raw/c%2Bd.csv"]
    for key in keys:
        s3.put_object(Bucket="data", Key=key, Body=b"id\n1\n")
    assert sorted(event["detail"]["object"]["key"] for event in drain(sqs, url)) == sorted(keys)


def test_each_function_calls_aws_as_its_own_role_one_after_the_other(emulator, client):
    """Two functions with their own roles, invoked one after the other: each handler's
    ``boto3.client()`` signs with its own role's credentials, not with the first one's (boto3's
    default session would otherwise keep the credentials it read first)."""
    s3 = client("s3")
    s3.create_bucket(Bucket="who", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    source = (
        "import boto3\n"
        "def handler(event, context):\n"
        "    arn = boto3.client('sts').get_caller_identity()['Arn']\n"
        "    boto3.client('s3').put_object(Bucket='who', Key=context.function_name, Body=arn)\n"
    )
    for name in ("first-fn", "second-fn"):
        _function_on_rule(client, name, source, source_name=f"custom.{name}", role=f"{name}-role")
        client("events").put_events(
            Entries=[{"Source": f"custom.{name}", "DetailType": "Who", "Detail": "{}"}]
        )
    seen = {
        name: s3.get_object(Bucket="who", Key=name)["Body"].read().decode()
        for name in ("first-fn", "second-fn")
    }
    assert seen == {
        "first-fn": "arn:aws:sts::123456789012:assumed-role/first-fn-role/lambda",
        "second-fn": "arn:aws:sts::123456789012:assumed-role/second-fn-role/lambda",
    }
