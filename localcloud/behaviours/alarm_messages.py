"""What an alarm's state change looks like to the outside, in AWS's shapes.

The SNS notification body CloudWatch publishes to an alarm's topics, the "CloudWatch Alarm State
Change" event's detail, and the actions moto lacks: ``DescribeAlarmHistory`` (answered from the
history :mod:`localcloud.behaviours.alarms` keeps on each alarm) and ``PutCompositeAlarm``
(stored as moto stores a composite alarm: an alarm with a ``rule``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch import responses as cw_responses

STAMP = "%Y-%m-%dT%H:%M:%S.000+0000"


def truthy(value: Any) -> bool:
    """moto keeps ``ReturnData`` as the request gave it (bool or string)."""
    return value is True or str(value).lower() == "true"


def _epoch(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def sns_message(alarm: Any, old_state: str, arn: Any) -> dict[str, Any]:
    common = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": arn.account,
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": alarm.state_updated_timestamp.strftime(STAMP),
        "Region": arn.region,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old_state,
    }
    if alarm.rule is not None:  # a composite alarm has a rule, no metric
        return {**common, "AlarmRule": alarm.rule}
    trigger: dict[str, Any] = {
        "Period": alarm.period,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "ComparisonOperator": alarm.comparison_operator,
        "Threshold": alarm.threshold,
        "TreatMissingData": alarm.treat_missing_data or "missing",
    }
    if alarm.metric_data_queries:
        trigger["Metrics"] = [
            {"Id": q.id, "Expression": q.expression, "ReturnData": truthy(q.return_data)}
            for q in alarm.metric_data_queries
        ]
    else:
        trigger |= {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
            "Statistic": alarm.extended_statistic or (alarm.statistic or "").upper(),
            "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
        }
    return {**common, "Trigger": trigger}


def event_detail(alarm: Any, old: dict[str, str], old_timestamp: datetime) -> dict[str, Any]:
    if alarm.rule is not None:
        configuration: dict[str, Any] = {"description": alarm.description, "alarmRule": alarm.rule}
    else:
        configuration = {"description": alarm.description, "metrics": _metrics(alarm)}
    return {
        "alarmName": alarm.name,
        "state": {
            "value": alarm.state_value,
            "reason": alarm.state_reason,
            "reasonData": alarm.state_reason_data,
            "timestamp": alarm.state_updated_timestamp.strftime(STAMP),
        },
        "previousState": {
            "value": old["stateValue"],
            "reason": old["stateReason"],
            "timestamp": old_timestamp.strftime(STAMP),
        },
        "configuration": configuration,
    }


def _metrics(alarm: Any) -> list[dict[str, Any]]:
    if alarm.metric_data_queries:
        return [
            {
                "id": q.id,
                **({"expression": q.expression, "label": q.label} if q.expression else {}),
                **(
                    {
                        "metricStat": {
                            "metric": {
                                "namespace": q.metric_stat.metric.namespace,
                                "name": q.metric_stat.metric.metric_name,
                                "dimensions": {d.name: d.value for d in q.metric_stat.metric.dimensions},
                            },
                            "period": int(q.metric_stat.period),
                            "stat": q.metric_stat.stat,
                        }
                    }
                    if q.metric_stat
                    else {}
                ),
                "returnData": truthy(q.return_data),
            }
            for q in alarm.metric_data_queries
        ]
    return [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn)),
            "metricStat": {
                "metric": {
                    "namespace": alarm.namespace,
                    "name": alarm.metric_name,
                    "dimensions": {d.name: d.value for d in alarm.dimensions},
                },
                "period": alarm.period,
                "stat": alarm.extended_statistic or alarm.statistic,
            },
            "returnData": True,
        }
    ]


def describe_alarm_history(self: Any) -> Any:
    name = self._get_param("AlarmName")
    kind = self._get_param("HistoryItemType")
    types = self._get_param("AlarmTypes") or ["MetricAlarm", "CompositeAlarm"]
    start, end = self._get_param("StartDate"), self._get_param("EndDate")
    items = [
        item
        for alarm in self.cloudwatch_backend.alarms.values()
        if name in (None, alarm.name)
        for item in getattr(alarm, "mlops_history", [])
        if (kind is None or item["HistoryItemType"] == kind)
        and item["AlarmType"] in types
        and (start is None or _epoch(item["Timestamp"]) >= _epoch(start))
        and (end is None or _epoch(item["Timestamp"]) <= _epoch(end))
    ]
    # Items of one instant keep the order they happened in (reversed when scanning newest first).
    order = {id(item): n for n, item in enumerate(items)}
    items.sort(
        key=lambda i: (i["Timestamp"], order[id(i)]),
        reverse=self._get_param("ScanBy") != "TimestampAscending",
    )
    limit = int(self._get_param("MaxRecords") or 100)
    return cw_responses.ActionResult({"AlarmHistoryItems": items[:limit]})


def put_composite_alarm(self: Any) -> Any:
    """``PutCompositeAlarm``: the alarm stored with its rule (the behaviour checks the rule first)."""
    self.cloudwatch_backend.put_metric_alarm(
        name=self._get_param("AlarmName"),
        namespace=None,
        metric_name=None,
        comparison_operator=None,
        evaluation_periods=None,
        period=None,
        threshold=None,
        statistic=None,
        description=self._get_param("AlarmDescription"),
        dimensions=[],
        alarm_actions=self._get_param("AlarmActions", []),
        ok_actions=self._get_param("OKActions", []),
        insufficient_data_actions=self._get_param("InsufficientDataActions", []),
        actions_enabled=self._get_bool_param("ActionsEnabled"),
        rule=self._get_param("AlarmRule"),
        tags=self._get_param("Tags", []),
    )
    return cw_responses.EmptyResult()
