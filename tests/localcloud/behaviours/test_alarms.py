"""Alarm evaluation on the virtual clock, through boto3: states, history, SNS actions, EventBridge events."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from infra.alarms import AlarmThresholds, endpoint_alarms


def put_plain_alarm(cw, name="latency", **overrides: Any) -> None:
    args = {
        "AlarmName": name,
        "Namespace": "Test",
        "MetricName": "Latency",
        "Dimensions": [{"Name": "Service", "Value": "api"}],
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 5,
        "DatapointsToAlarm": 3,
        "Threshold": 10.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    cw.put_metric_alarm(**(args | overrides))


def publish(cw, value: float, metric="Latency", dims=(("Service", "api"),), namespace="Test") -> None:
    """One datapoint stamped by the emulator's clock (no Timestamp), as a service publishing now."""
    cw.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": metric, "Value": value, "Dimensions": [{"Name": k, "Value": v} for k, v in dims]}
        ],
    )


def state(cw, name="latency") -> str:
    return cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def test_three_of_five_goes_to_alarm_exactly_on_the_third_breaching_point_and_back(emulator, client):
    cw = client("cloudwatch")
    put_plain_alarm(cw)
    assert state(cw) == "INSUFFICIENT_DATA"  # as AWS: a new alarm is unchecked
    states = []
    reasons = []
    for value in [20, 1, 20, 1, 20, 1, 1]:
        publish(cw, value)
        emulator.advance(60)
        alarm = cw.describe_alarms(AlarmNames=["latency"])["MetricAlarms"][0]
        states.append(alarm["StateValue"])
        reasons.append(alarm["StateReason"])
    # Breaches in minutes 1, 3 and 5: ALARM once the 5th minute is complete; in minute 6 the
    # window (minutes 2-6) holds two breaches again.
    assert states == ["OK", "OK", "OK", "OK", "ALARM", "OK", "OK"]
    assert reasons[4].startswith("Threshold Crossed: 3 out of the last 5 datapoints")
    updates = cw.describe_alarm_history(
        AlarmName="latency", HistoryItemType="StateUpdate", ScanBy="TimestampAscending"
    )
    assert [i["HistorySummary"] for i in updates["AlarmHistoryItems"]] == [
        "Alarm updated from INSUFFICIENT_DATA to OK",
        "Alarm updated from OK to ALARM",
        "Alarm updated from ALARM to OK",
    ]
    to_alarm = json.loads(updates["AlarmHistoryItems"][1]["HistoryData"])
    assert to_alarm["newState"]["stateReasonData"]["recentDatapoints"] == [20.0, 1.0, 20.0, 1.0, 20.0]


@pytest.mark.parametrize(
    ("treatment", "expected"),
    [("missing", "INSUFFICIENT_DATA"), ("ignore", "ALARM"), ("breaching", "ALARM"), ("notBreaching", "OK")],
)
def test_missing_data_is_treated_as_the_alarm_says(emulator, client, treatment, expected):
    cw = client("cloudwatch")
    put_plain_alarm(cw, EvaluationPeriods=1, DatapointsToAlarm=1, TreatMissingData=treatment)
    publish(cw, 50)
    emulator.advance(60)
    assert state(cw) == "ALARM"
    emulator.advance(120)  # two quiet minutes
    assert state(cw) == expected


def test_extended_statistic_p99_of_raw_values(emulator, client):
    cw = client("cloudwatch")
    args = {
        "AlarmName": "p99",
        "Namespace": "Test",
        "MetricName": "Latency",
        "Dimensions": [{"Name": "Service", "Value": "api"}],
        "ExtendedStatistic": "p99",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 100.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    cw.put_metric_alarm(**args)
    cw.put_metric_data(
        Namespace="Test",
        MetricData=[
            {
                "MetricName": "Latency",
                "Values": [5.0, 500.0],
                "Counts": [98, 2],
                "Dimensions": [{"Name": "Service", "Value": "api"}],
            }
        ],
    )
    emulator.advance(60)
    assert state(cw, "p99") == "ALARM"  # 2% of requests at 500: the p99 is 500, the average is 14.9


def alarm_request(spec) -> dict[str, Any]:
    """The program's AlarmSpec as the PutMetricAlarm request the provider makes."""
    queries = []
    for q in spec.metric_queries:
        query: dict[str, Any] = {"Id": q["id"], "ReturnData": q["return_data"]}
        if "expression" in q:
            query |= {"Expression": q["expression"], "Label": q["label"]}
        else:
            m = q["metric"]
            query["MetricStat"] = {
                "Metric": {
                    "Namespace": m["namespace"],
                    "MetricName": m["metric_name"],
                    "Dimensions": [{"Name": k, "Value": v} for k, v in m["dimensions"].items()],
                },
                "Period": m["period"],
                "Stat": m["stat"],
            }
        queries.append(query)
    request = {
        "AlarmName": spec.name,
        "ComparisonOperator": spec.comparison_operator,
        "Threshold": spec.threshold,
        "EvaluationPeriods": spec.evaluation_periods,
        "TreatMissingData": spec.treat_missing_data,
    }
    if spec.datapoints_to_alarm:
        request["DatapointsToAlarm"] = spec.datapoints_to_alarm
    if queries:
        return {**request, "Metrics": queries}
    request |= {
        "Namespace": spec.namespace,
        "MetricName": spec.metric_name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in (spec.dimensions or {}).items()],
        "Period": spec.period,
    }
    if spec.extended_statistic:
        return {**request, "ExtendedStatistic": spec.extended_statistic}
    return {**request, "Statistic": spec.statistic}


def test_the_programs_5xx_rate_alarm_evaluates_its_metric_math(emulator, client):
    cw = client("cloudwatch")
    spec = next(
        s for s in endpoint_alarms("ep", ["champion"], AlarmThresholds()) if s.key == "champion-5xx-rate"
    )
    cw.put_metric_alarm(**alarm_request(spec))
    dims = (("EndpointName", "ep"), ("VariantName", "champion"))
    # Healthy minutes publish Invocations only: FILL(errors, 0) makes their rate 0, not missing.
    for errors in [None, None, 5, 5, 5]:
        publish(cw, 100, "Invocations", dims, "AWS/SageMaker")
        if errors is not None:
            publish(cw, errors, "Invocation5XXErrors", dims, "AWS/SageMaker")
        emulator.advance(60)
    alarm = cw.describe_alarms(AlarmNames=[spec.name])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [0.0, 0.0, 0.05, 0.05, 0.05]


def test_state_change_publishes_to_sns_and_emits_the_eventbridge_event(emulator, client):
    cw, sns, sqs, eb = client("cloudwatch"), client("sns"), client("sqs"), client("events")
    topic = sns.create_topic(Name="alarms")["TopicArn"]
    mail = sqs.create_queue(QueueName="mail")["QueueUrl"]
    events = sqs.create_queue(QueueName="events")["QueueUrl"]

    def arn(url):
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn(mail), Attributes={"RawMessageDelivery": "true"}
    )
    eb.put_rule(
        Name="alarm-changes",
        EventPattern=json.dumps(
            {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"]}
        ),
    )
    eb.put_targets(Rule="alarm-changes", Targets=[{"Id": "q", "Arn": arn(events)}])
    put_plain_alarm(cw, EvaluationPeriods=1, DatapointsToAlarm=1, AlarmActions=[topic], OKActions=[topic])
    publish(cw, 50)
    emulator.advance(60)

    mails = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=mail, MaxNumberOfMessages=10)["Messages"]
    ]
    assert [(m["OldStateValue"], m["NewStateValue"]) for m in mails] == [("INSUFFICIENT_DATA", "ALARM")]
    assert mails[0]["Trigger"]["MetricName"] == "Latency"
    received = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=events, MaxNumberOfMessages=10)["Messages"]
    ]
    assert len(received) == 1
    event = received[0]
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["resources"] == [cw.describe_alarms(AlarmNames=["latency"])["MetricAlarms"][0]["AlarmArn"]]
    assert (event["detail"]["previousState"]["value"], event["detail"]["state"]["value"]) == (
        "INSUFFICIENT_DATA",
        "ALARM",
    )
    actions = cw.describe_alarm_history(AlarmName="latency", HistoryItemType="Action")["AlarmHistoryItems"]
    assert [a["HistorySummary"] for a in actions] == [f"Successfully executed action {topic}"]


def test_putting_an_alarm_again_keeps_its_state_and_history(emulator, client):
    cw = client("cloudwatch")
    put_plain_alarm(cw, EvaluationPeriods=1, DatapointsToAlarm=1)
    publish(cw, 50)
    emulator.advance(60)
    put_plain_alarm(cw, EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=100.0)
    assert state(cw) == "ALARM"
    summaries = [
        i["HistorySummary"] for i in cw.describe_alarm_history(AlarmName="latency")["AlarmHistoryItems"]
    ]
    assert summaries == [
        'Alarm "latency" updated',
        "Alarm updated from INSUFFICIENT_DATA to ALARM",
        'Alarm "latency" created',
    ]
    emulator.advance(60)
    assert state(cw) == "OK"  # re-evaluated against the new threshold (no data since: notBreaching)


def test_get_metric_data_leaves_out_periods_without_a_value(emulator, client):
    """A percentile of statistic-set data has no value: CloudWatch omits the period (moto sent a 500)."""
    cw = client("cloudwatch")
    dims = [{"Name": "Service", "Value": "api"}]
    cw.put_metric_data(
        Namespace="Test",
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "StatisticValues": {"SampleCount": 10, "Sum": 100, "Minimum": 5, "Maximum": 20},
            }
        ],
    )
    now = emulator.clock.now()
    queries = [
        {
            "Id": stat.lower(),
            "MetricStat": {
                "Metric": {"Namespace": "Test", "MetricName": "Latency", "Dimensions": dims},
                "Period": 60,
                "Stat": stat,
            },
        }
        for stat in ("p99", "Maximum")
    ]
    answer = cw.get_metric_data(
        MetricDataQueries=queries, StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5)
    )
    values = {r["Id"]: r["Values"] for r in answer["MetricDataResults"]}
    assert values == {"p99": [], "maximum": [20.0]}
    # One timestamp per value: the period left out goes with its timestamp.
    assert {r["Id"]: len(r["Timestamps"]) for r in answer["MetricDataResults"]} == {"p99": 0, "maximum": 1}


def test_get_metric_data_finds_a_metric_whatever_the_order_of_its_dimensions(emulator, client):
    cw = client("cloudwatch")
    stored = [
        {"Name": n, "Value": v}
        for n, v in (("Model", "m"), ("Feature", "f"), ("Variant", "v"), ("Stack", "s"))
    ]
    cw.put_metric_data(
        Namespace="Test", MetricData=[{"MetricName": "PSI", "Dimensions": stored, "Value": 0.5}]
    )
    now = emulator.clock.now()
    for dims in (stored, sorted(stored, key=lambda d: d["Value"]), stored[::-1]):
        answer = cw.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "psi",
                    "MetricStat": {
                        "Metric": {"Namespace": "Test", "MetricName": "PSI", "Dimensions": dims},
                        "Period": 3600,
                        "Stat": "Maximum",
                    },
                }
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
        )
        assert answer["MetricDataResults"][0]["Values"] == [0.5], dims


# -- composite alarms ----------------------------------------------------------------------------


def _model_limit(client, service: str, shape: str) -> Any:
    """A limit or error code from AWS's own service model (botocore's copy)."""
    return client(service).meta.service_model.shape_for(shape)


def composite_state(cw, name: str) -> dict:
    (alarm,) = cw.describe_alarms(AlarmNames=[name], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"]
    return alarm


def test_a_composite_alarm_is_in_alarm_while_its_rule_holds_and_emits_one_event_per_change(emulator, client):
    cw, eb, sqs = client("cloudwatch"), client("events"), client("sqs")
    for name in ("a", "b", "c"):
        put_plain_alarm(
            cw, name, EvaluationPeriods=1, DatapointsToAlarm=1, Dimensions=[{"Name": "F", "Value": name}]
        )
    cw.put_composite_alarm(AlarmName="any", AlarmRule='ALARM("a") OR ALARM(b) OR ALARM("c")')
    # Composites of composites: the parent follows its child in the same minute.
    cw.put_composite_alarm(AlarmName="parent", AlarmRule='ALARM("any") AND NOT ALARM("missing")')
    url = sqs.create_queue(QueueName="changes")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["aws.cloudwatch"], "detail": {"alarmName": ["any"], "state": {"value": ["ALARM"]}}}
    eb.put_rule(Name="to-alarm", EventPattern=json.dumps(pattern))
    eb.put_targets(Rule="to-alarm", Targets=[{"Id": "q", "Arn": queue}])
    assert composite_state(cw, "any")["StateValue"] == "OK"  # evaluated when put: no child in ALARM

    seen = []
    for breaching in (["a", "b"], ["a", "b", "c"], ["c"], []):  # one episode, then over
        for name in ("a", "b", "c"):
            publish(cw, 50 if name in breaching else 1, dims=(("F", name),))
        emulator.advance(60)
        seen.append((composite_state(cw, "any")["StateValue"], composite_state(cw, "parent")["StateValue"]))
    assert seen == [("ALARM", "ALARM"), ("ALARM", "ALARM"), ("ALARM", "ALARM"), ("OK", "OK")]
    reason = json.loads(
        cw.describe_alarm_history(
            AlarmName="any", HistoryItemType="StateUpdate", ScanBy="TimestampAscending"
        )["AlarmHistoryItems"][-2]["HistoryData"]
    )["newState"]["stateReasonData"]
    assert [t["arn"].rsplit(":", 1)[-1] for t in reason["triggeringAlarms"]] == ["a", "b"]
    events = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    (event,) = [json.loads(m["Body"]) for m in events]
    assert event["detail"]["configuration"]["alarmRule"] == 'ALARM("a") OR ALARM(b) OR ALARM("c")'


def test_a_composite_alarm_over_101_alarms_is_refused_with_awss_error(emulator, client):
    cw = client("cloudwatch")
    # PutCompositeAlarm's API reference: "can include as many as 100 underlying alarms"; its
    # one documented error is LimitExceededFault, whose code the service model gives.
    code = _model_limit(client, "cloudwatch", "LimitExceededFault").metadata["error"]["code"]
    rule = " OR ".join(f'ALARM("drift-{n}")' for n in range(101))
    with pytest.raises(cw.exceptions.LimitExceededFault) as refused:
        cw.put_composite_alarm(AlarmName="too-wide", AlarmRule=rule)
    assert refused.value.response["Error"]["Code"] == code == "LimitExceeded"
    assert "101 alarms" in refused.value.response["Error"]["Message"]
    assert cw.describe_alarms(AlarmNames=["too-wide"], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"] == []
    cw.put_composite_alarm(AlarmName="wide", AlarmRule=" OR ".join(f'ALARM("drift-{n}")' for n in range(100)))


def test_a_composite_rule_longer_than_the_model_allows_is_refused(emulator, client):
    cw = client("cloudwatch")
    limit = _model_limit(client, "cloudwatch", "AlarmRule").metadata["max"]  # 10,240
    name = "x" * (limit - len('ALARM("")') + 1)
    with pytest.raises(cw.exceptions.ClientError) as refused:
        cw.put_composite_alarm(AlarmName="long", AlarmRule=f'ALARM("{name}")')
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert (
        f"Member must have length less than or equal to {limit}" in refused.value.response["Error"]["Message"]
    )
    cw.put_composite_alarm(AlarmName="long", AlarmRule=f'ALARM("{name[:-1]}")')


def test_a_composite_rule_that_does_not_parse_is_refused_naming_what_is_wrong(emulator, client):
    cw = client("cloudwatch")
    with pytest.raises(cw.exceptions.ClientError, match="'MAYBE' is not a function"):
        cw.put_composite_alarm(AlarmName="bad", AlarmRule='ALARM("a") OR MAYBE("b")')


def test_the_history_records_each_configuration_state_and_action_as_cloudwatch_does(emulator, client):
    """DescribeAlarmHistory's items, each with its HistoryData JSON: the configuration update
    (created), the state update (old and new state, the new one with its reason data) and one
    action item per action, succeeded or failed, naming the notification resource."""
    cw, sns = client("cloudwatch"), client("sns")
    topic = sns.create_topic(Name="alarm-mail")["TopicArn"]
    missing = topic.replace("alarm-mail", "deleted-topic")
    put_plain_alarm(cw, EvaluationPeriods=1, DatapointsToAlarm=1, AlarmActions=[topic, missing])
    publish(cw, 50)
    emulator.advance(60)

    def items(kind: str) -> list[dict]:
        found = cw.describe_alarm_history(AlarmName="latency", HistoryItemType=kind)["AlarmHistoryItems"]
        return [{"summary": i["HistorySummary"], **json.loads(i["HistoryData"])} for i in found]

    (configured,) = items("ConfigurationUpdate")
    assert (configured["summary"], configured["version"]) == ('Alarm "latency" created', "1.0")
    assert configured["type"].startswith("Create")
    (update,) = items("StateUpdate")
    assert update["oldState"] == {
        "stateValue": "INSUFFICIENT_DATA",
        "stateReason": "Unchecked: Initial alarm creation",
    }
    new = update["newState"]
    assert new["stateValue"] == "ALARM" and new["stateReason"].startswith(
        "Threshold Crossed: 1 out of the last 1"
    )
    assert (new["stateReasonData"]["threshold"], new["stateReasonData"]["recentDatapoints"]) == (10.0, [50.0])
    assert new["stateReasonData"]["statistic"] == "Maximum" and new["stateReasonData"]["period"] == 60
    assert sorted(items("Action"), key=lambda a: a["actionState"]) == [
        {
            "summary": f"Failed to execute action {missing}",
            "actionState": "Failed",
            "notificationResource": missing,
        },
        {
            "summary": f"Successfully executed action {topic}",
            "actionState": "Succeeded",
            "notificationResource": topic,
        },
    ]
