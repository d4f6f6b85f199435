"""Monitoring: alarms per kind, the encrypted topic, the dashboard and the monitoring schedule."""

from __future__ import annotations

import json

import pulumi
import pytest

from infra.alarms import AlarmThresholds
from infra.endpoint import CHALLENGER, CHAMPION
from infra.monitoring import Monitoring, MonitoringArgs
from model_code.monitoring.drift import PREDICTION_COLUMN
from tests.infra.harness import ACCOUNT, run

REGION = "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/stack-key"
PIPELINE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/customer-churn-prod-monitoring"
ENDPOINT = "customer-churn-prod"
TAGS = {"project": "mlops-platform", "stack": "prod", "owner": "ml-team"}
ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_TYPE = "aws:sns/topic:Topic"
SCHEDULE_TYPE = "aws:scheduler/schedule:Schedule"
DASHBOARD_TYPE = "aws:cloudwatch/dashboard:Dashboard"


def monitor(schema, **overrides):
    """Run Monitoring alone; return the recorder and its public outputs, resolved."""
    args = MonitoringArgs(
        **{
            "schema": schema,
            "stack": "prod",
            "kms_key_arn": KEY,
            "monitoring_pipeline_name": "customer-churn-prod-monitoring",
            "monitoring_pipeline_arn": PIPELINE,
            "endpoint_name": ENDPOINT,
            "variant_names": (CHAMPION,),
            "tags": TAGS,
            **overrides,
        }
    )
    captured = {}

    def program():
        m = Monitoring("monitoring", args)
        return pulumi.Output.all(
            topic_arn=m.topic_arn,
            computational=m.computational_alarm_names,
            drift=m.drift_alarm_names,
            quality=m.quality_alarm_name,
            data_volume=m.data_volume_alarm_name,
            rollback=m.rollback_alarm_names,
            dashboard_name=m.dashboard_name,
            dashboard_url=m.dashboard_url,
            schedule_name=m.schedule_name,
        ).apply(captured.update)

    return run(program, region=REGION), captured


def alarms_by_name(recorder) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in recorder.of_type(ALARM_TYPE)}


@pytest.fixture(scope="module")
def shadow(churn_schema):
    """An endpoint with a shadow variant, mailing alarms to the team."""
    return monitor(churn_schema, variant_names=(CHAMPION, CHALLENGER), alarm_email="ml-team@example.com")


@pytest.fixture(scope="module")
def no_endpoint(churn_schema):
    """A fresh platform: no model deployed yet, schedule paused."""
    return monitor(churn_schema, endpoint_name=None, schedule_enabled=False)


def test_a_drift_alarm_per_schema_feature_and_the_predictions(shadow, churn_schema):
    recorder, outputs = shadow
    drift = [a for a in recorder.of_type(ALARM_TYPE) if a.inputs.get("metricName") == "FeatureDrifted"]
    # The mocks record resources in the order their inputs resolve, not declaration order.
    features = sorted(a.inputs["dimensions"]["Feature"] for a in drift)
    assert features == sorted([*churn_schema.feature_names, PREDICTION_COLUMN])
    for alarm in drift:
        assert alarm.inputs["namespace"] == "MLOps"
        assert alarm.inputs["dimensions"]["Model"] == churn_schema.name
        assert alarm.inputs["statistic"] == "Maximum"
        assert alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm.inputs["threshold"] == 1
    assert sorted(outputs["drift"]) == sorted(a.inputs["name"] for a in drift)


def test_5xx_error_rate_divides_errors_by_invocations(shadow):
    alarm = alarms_by_name(shadow[0])[f"{ENDPOINT}-{CHAMPION}-5xx-rate"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["errors"]["metric"]["metricName"] == "Invocation5XXErrors"
    assert queries["invocations"]["metric"]["metricName"] == "Invocations"
    assert queries["errors"]["metric"]["dimensions"] == {"EndpointName": ENDPOINT, "VariantName": CHAMPION}
    assert queries["rate"]["expression"] == "FILL(errors, 0) / invocations"
    assert [q["id"] for q in alarm["metricQueries"] if q.get("returnData")] == ["rate"]
    assert alarm["threshold"] == pytest.approx(0.01)
    assert "metricName" not in alarm  # metric math alarms name no metric of their own


def test_4xx_error_rate_has_its_own_threshold(shadow):
    alarm = alarms_by_name(shadow[0])[f"{ENDPOINT}-{CHAMPION}-4xx-rate"]
    assert {q["id"]: q for q in alarm["metricQueries"]}["errors"]["metric"][
        "metricName"
    ] == "Invocation4XXErrors"
    assert alarm["threshold"] == pytest.approx(0.05)


def test_latency_alarm_is_on_p99_in_microseconds(shadow):
    alarm = alarms_by_name(shadow[0])[f"{ENDPOINT}-{CHAMPION}-latency-p99"]
    assert alarm["metricName"] == "ModelLatency"
    assert alarm["extendedStatistic"] == "p99"
    assert alarm["threshold"] == 500_000


def test_cpu_threshold_scales_with_the_instance_cores(churn_schema):
    recorder, _ = monitor(churn_schema, instance_type="ml.m5.xlarge")
    alarms = alarms_by_name(recorder)
    assert alarms[f"{ENDPOINT}-{CHAMPION}-cpu"]["threshold"] == 320  # 80% of each of 4 vCPUs
    assert alarms[f"{ENDPOINT}-{CHAMPION}-cpu"]["namespace"] == "/aws/sagemaker/Endpoints"
    assert alarms[f"{ENDPOINT}-{CHAMPION}-memory"]["threshold"] == 80


def test_every_variant_is_watched_but_only_the_champion_rolls_back(shadow):
    _, outputs = shadow
    for variant in (CHAMPION, CHALLENGER):
        for kind in ("5xx-rate", "4xx-rate", "latency-p99", "cpu", "memory"):
            assert f"{ENDPOINT}-{variant}-{kind}" in outputs["computational"]
    assert outputs["rollback"] == [f"{ENDPOINT}-{CHAMPION}-5xx-rate", f"{ENDPOINT}-{CHAMPION}-latency-p99"]


def test_quality_alarm_fires_below_the_minimum_auc(churn_schema):
    recorder, outputs = monitor(churn_schema, thresholds=AlarmThresholds(min_auc=0.8))
    alarm = alarms_by_name(recorder)[outputs["quality"]]
    assert (alarm["metricName"], alarm["comparisonOperator"], alarm["threshold"]) == (
        "AUC",
        "LessThanThreshold",
        0.8,
    )


def test_data_volume_alarm_counts_new_records(shadow):
    recorder, outputs = shadow
    alarm = alarms_by_name(recorder)[outputs["data_volume"]]
    assert alarm["metricName"] == "NewRecordCount"
    assert alarm["dimensions"] == {"Model": "customer-churn", "Stack": "prod"}
    assert alarm["threshold"] == 10_000


def test_serverless_has_no_cpu_or_memory_alarms(churn_schema):
    _, outputs = monitor(churn_schema, serverless=True)
    assert not [n for n in outputs["computational"] if n.endswith(("-cpu", "-memory"))]
    assert f"{ENDPOINT}-{CHAMPION}-latency-p99" in outputs["computational"]


def test_no_endpoint_means_no_endpoint_alarms(no_endpoint):
    recorder, outputs = no_endpoint
    assert outputs["computational"] == []
    assert outputs["rollback"] == []
    assert not [a for a in recorder.of_type(ALARM_TYPE) if a.inputs.get("namespace") != "MLOps"]
    assert outputs["drift"]  # the model-level alarms are there, waiting for data


def test_alarms_notify_the_topic_and_are_tagged(shadow):
    recorder, outputs = shadow
    for alarm in recorder.of_type(ALARM_TYPE):
        assert alarm.inputs["alarmActions"] == [outputs["topic_arn"]]
        assert alarm.inputs["okActions"] == [outputs["topic_arn"]]
        assert alarm.inputs["tags"] == TAGS


def test_topic_is_encrypted_with_the_stack_key(shadow):
    topic = shadow[0].one(TOPIC_TYPE).inputs
    assert topic["kmsMasterKeyId"] == KEY
    assert topic["tags"] == TAGS


def test_only_this_accounts_alarms_may_publish(shadow):
    recorder, outputs = shadow
    policy = recorder.one("aws:sns/topicPolicy:TopicPolicy").inputs
    (statement,) = json.loads(policy["policy"])["Statement"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Resource"] == outputs["topic_arn"]
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert statement["Condition"]["ArnLike"] == {
        "aws:SourceArn": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{ENDPOINT}-*"]
    }


def test_email_subscription_only_when_asked(shadow, no_endpoint):
    subscription = shadow[0].one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "ml-team@example.com")
    assert no_endpoint[0].of_type("aws:sns/topicSubscription:TopicSubscription") == []


def schedules(recorder) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in recorder.of_type(SCHEDULE_TYPE)}


def test_schedule_runs_the_monitoring_pipeline_hourly(shadow):
    recorder, outputs = shadow
    schedule = schedules(recorder)[outputs["schedule_name"]]
    assert schedule["state"] == "ENABLED"
    assert schedule["scheduleExpression"] == "rate(1 hour)"
    assert schedule["kmsKeyArn"] == KEY
    assert schedule["target"]["arn"] == PIPELINE
    assert schedule["name"] == outputs["schedule_name"]


def test_schedule_can_be_paused(no_endpoint):
    assert no_endpoint[0].one(SCHEDULE_TYPE).inputs["state"] == "DISABLED"


def test_schedule_passes_pipeline_parameters(churn_schema):
    recorder, _ = monitor(churn_schema, pipeline_parameters={"WindowHours": "1"})
    target = recorder.one(SCHEDULE_TYPE).inputs["target"]
    assert target["sagemakerPipelineParameters"] == {
        "pipelineParameters": [{"name": "WindowHours", "value": "1"}]
    }


def test_without_a_model_the_schedule_is_paused_even_where_the_stack_enables_it(churn_schema):
    # Every run would fail at the champion lookup, and be billed.
    recorder, _ = monitor(churn_schema, endpoint_name=None, schedule_enabled=True)
    assert [s["state"] for s in schedules(recorder).values()] == ["DISABLED"]


def test_a_shadow_challenger_is_monitored_by_its_own_run(shadow):
    recorder, outputs = shadow
    runs = schedules(recorder)
    assert set(runs) == {"customer-churn-prod-monitoring", "customer-churn-prod-monitoring-challenger"}
    challenger = runs["customer-churn-prod-monitoring-challenger"]
    assert challenger["state"] == "ENABLED" and challenger["target"]["arn"] == PIPELINE
    assert challenger["target"]["sagemakerPipelineParameters"] == {
        "pipelineParameters": [{"name": "Variant", "value": CHALLENGER}]
    }
    # The production variant's run reads the pipeline's default variant, the champion.
    assert "sagemakerPipelineParameters" not in runs[outputs["schedule_name"]]["target"]


def test_scheduler_may_start_only_the_monitoring_pipeline(shadow):
    recorder, outputs = shadow
    schedule = schedules(recorder)[outputs["schedule_name"]]
    role = recorder.one("aws:iam/role:Role")
    assert schedule["target"]["roleArn"].endswith(f"role/{role.inputs['name']}")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    # EventBridge Scheduler's documented confused-deputy guard: the account and the schedule
    # group the schedules belong to (they name none: "default").
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/default"},
    }
    assert "groupName" not in schedule
    statements = json.loads(recorder.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])["Statement"]
    start = [s for s in statements if s["Action"] == "sagemaker:StartPipelineExecution"]
    assert [s["Resource"] for s in start] == [PIPELINE]
    assert all(s["Resource"] != "*" for s in statements)


def test_dashboard_has_a_widget_per_feature(shadow, churn_schema):
    recorder, outputs = shadow
    dashboard = recorder.one(DASHBOARD_TYPE).inputs
    body = json.loads(dashboard["dashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"]]
    for feature in churn_schema.feature_names:
        assert f"Drift: {feature}" in titles
    assert "Prediction drift" in titles
    assert f"Invocations and errors: {CHALLENGER}" in titles
    assert outputs["dashboard_name"] == dashboard["dashboardName"] == ENDPOINT
    assert outputs["dashboard_url"] == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards:name={ENDPOINT}"
    )


def test_dashboard_without_endpoint_shows_no_endpoint_metrics(no_endpoint):
    body = json.loads(no_endpoint[0].one(DASHBOARD_TYPE).inputs["dashboardBody"])
    namespaces = {m[0] for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]}
    # The platform's own metrics (retraining runs among them) and the pipelines' (no endpoint's).
    assert namespaces == {"MLOps", "AWS/Sagemaker/ModelBuildingPipeline"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedule_expression": "hourly"}, "^schedule_expression: 'hourly' is not a schedule"),
        ({"variant_names": ()}, "^variant_names: "),
        ({"alarm_email": "ml-team"}, "^alarm_email: 'ml-team' is not an email address"),
    ],
)
def test_bad_arguments_are_named(churn_schema, overrides, message):
    with pytest.raises(ValueError, match=message):
        MonitoringArgs(
            schema=churn_schema,
            stack="prod",
            kms_key_arn=KEY,
            monitoring_pipeline_name="m",
            monitoring_pipeline_arn=PIPELINE,
            endpoint_name=ENDPOINT,
            **overrides,
        )


def test_without_drift_monitoring_there_are_no_drift_alarms_or_widgets(churn_schema):
    recorder, outputs = monitor(churn_schema, serverless=True, drift_monitoring=False)
    assert outputs["drift"] == []
    assert not [a for a in recorder.of_type(ALARM_TYPE) if a.inputs.get("metricName") == "FeatureDrifted"]
    body = json.loads(recorder.one(DASHBOARD_TYPE).inputs["dashboardBody"])
    assert not [w for w in body["widgets"] if "Drift" in w["properties"].get("title", "")]
    assert outputs["quality"] and outputs["data_volume"]
