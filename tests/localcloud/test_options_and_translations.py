"""Issue 20 item 8: the provider's takeover of an existing alarm, the GitLab trigger's and the
alarm email's resources rehearsed, and resource options the engine does not honour refused.

Each resource is read back from the emulator with boto3, never from the engine's answers.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from localcloud.engine import Engine
from localcloud.translations.base import DeployError

TRIGGER_URL = "https://gitlab.example.com/api/v4/projects/7/trigger/pipeline"
TOKEN = "glptt-3c1f0d9e8b7a6c5d4e3f"


def _project(tmp_path, program: str):
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "__main__.py").write_text(textwrap.dedent(program))
    (tmp_path / "Pulumi.yaml").write_text("name: opts\nruntime: python\nmain: infra/\n")
    (tmp_path / "Pulumi.opts.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    return tmp_path


def test_dev_with_gitlab_trigger_and_alarm_email_deploys_and_reads_back(fresh, tmp_path):
    overrides = {
        "mlops-platform:gitlabTriggerUrl": TRIGGER_URL,
        "mlops-platform:gitlabTriggerToken": TOKEN,
        "mlops-platform:alarmEmail": "ml-oncall@example.com",
    }
    Engine("dev", fresh.endpoint_url, state_dir=tmp_path, overrides=overrides).up()

    events = fresh.client("events")
    (connection,) = events.list_connections()["Connections"]
    described = events.describe_connection(Name=connection["Name"])
    assert described["AuthorizationType"] == "API_KEY"
    assert described["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"] == "X-Mlops-Trigger-Source"
    query = described["AuthParameters"]["InvocationHttpParameters"]["QueryStringParameters"]
    assert {q["Key"]: q.get("IsValueSecret") for q in query} == {"token": True, "ref": False}
    (destination,) = events.list_api_destinations()["ApiDestinations"]
    assert destination["InvocationEndpoint"] == TRIGGER_URL
    assert destination["HttpMethod"] == "POST"
    assert destination["ConnectionArn"] == connection["ConnectionArn"]
    rule = next(r for r in events.list_rules()["Rules"] if r["Name"].endswith("approved"))
    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    gitlab = next(t for t in targets if t["Id"] == "gitlab-promotion")
    assert gitlab["Arn"] == destination["ApiDestinationArn"]
    assert set(gitlab["InputTransformer"]["InputPathsMap"]) and gitlab["InputTransformer"]["InputTemplate"]

    (subscription,) = fresh.client("sns").list_subscriptions()["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ml-oncall@example.com")
    assert subscription["TopicArn"].endswith("-alarms")
    # The trigger token is a secret: it reaches EventBridge, never the state file in clear.
    assert TOKEN not in (tmp_path / "dev.json").read_text()


ALARM = """
    import pulumi_aws as aws

    aws.cloudwatch.MetricAlarm("latency-alarm", name="churn-latency", comparison_operator="GreaterThanThreshold",
        evaluation_periods=3, threshold=250, metric_name="ModelLatency", namespace="AWS/SageMaker",
        period=60, statistic="Average")
"""


def test_put_metric_alarm_takes_over_an_alarm_of_the_same_name(fresh, tmp_path):
    # terraform-provider-aws creates an alarm with one PutMetricAlarm, which overwrites.
    cloudwatch = fresh.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="churn-latency",
        ComparisonOperator="LessThanThreshold",
        EvaluationPeriods=1,
        Threshold=1.0,
        MetricName="Invocations",
        Namespace="AWS/SageMaker",
        Period=300,
        Statistic="Sum",
    )
    project = _project(tmp_path, ALARM)
    Engine("opts", fresh.endpoint_url, state_dir=project / ".state", root=project, policy_pack=False).up()
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=["churn-latency"])["MetricAlarms"]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["EvaluationPeriods"]) == ("ModelLatency", 250.0, 3)


OPTIONED = """
    import pulumi
    import pulumi_aws as aws

    option = pulumi.Config("opts").require("option")
    other = aws.sns.Topic("other", name="other-topic")
    provider = aws.Provider("eu", region="eu-west-1") if option == "provider" else None
    options = {
        "protect": pulumi.ResourceOptions(protect=True),
        "ignore_changes": pulumi.ResourceOptions(ignore_changes=["tags"]),
        "replace_on_changes": pulumi.ResourceOptions(replace_on_changes=["name"]),
        "aliases": pulumi.ResourceOptions(aliases=[pulumi.Alias(name="alarms-old")]),
        "custom_timeouts": pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create="5m")),
        "provider": pulumi.ResourceOptions(provider=provider),
        "deleted_with": pulumi.ResourceOptions(deleted_with=other),
    }[option]
    aws.sns.Topic("alarms", name="alarms-topic", opts=options)
"""


@pytest.mark.parametrize(
    "option",
    [
        "protect",
        "ignore_changes",
        "replace_on_changes",
        "aliases",
        "custom_timeouts",
        "provider",
        "deleted_with",
    ],
)
def test_an_option_the_engine_does_not_honour_is_refused_by_name(fresh, tmp_path, option):
    project = _project(tmp_path, OPTIONED)
    engine = Engine(
        "opts",
        fresh.endpoint_url,
        state_dir=project / ".state",
        root=project,
        overrides={"opts:option": option},
        policy_pack=False,
    )
    with pytest.raises(DeployError) as refused:
        engine.up(preview=True)
    assert "resource option" in str(refused.value) and option in str(refused.value)
    assert "alarms" in str(refused.value) or "eu (pulumi:providers:aws)" in str(refused.value)
    # A preview writes nothing, and the refusal is what it reports.
    assert fresh.client("sns").list_topics()["Topics"] == []


def test_a_type_alias_of_a_resource_the_state_holds_under_that_type_is_refused(fresh, tmp_path):
    # aws.s3.Bucket declares the alias aws:s3/bucketV2:BucketV2 (the provider's renamed type):
    # harmless on a fresh state, but a recorded BucketV2 would be replaced, not carried over.
    program = """
        import pulumi_aws as aws
        aws.s3.Bucket("data", bucket="alias-data")
    """
    project = _project(tmp_path, program)
    state = project / ".state"
    engine = Engine("opts", fresh.endpoint_url, state_dir=state, root=project, policy_pack=False)
    engine.up()
    recorded = json.loads((state / "opts.json").read_text())
    for resource in recorded["resources"]:
        resource["type"] = "aws:s3/bucketV2:BucketV2"
    (state / "opts.json").write_text(json.dumps(recorded))
    with pytest.raises(DeployError, match=r"resource option aliases \(of urn:pulumi:opts::opts::"):
        Engine("opts", fresh.endpoint_url, state_dir=state, root=project, policy_pack=False).up(preview=True)
