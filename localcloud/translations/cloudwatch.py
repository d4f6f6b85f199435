"""CloudWatch: metric alarms (plain and metric math), dashboards, log groups."""

from __future__ import annotations

from typing import Any, ClassVar

from localcloud.translations import references
from localcloud.translations.base import PutTranslation, Translation, Unknown, register, retag, tag_list


def _dimensions(dimensions: dict[str, str] | None) -> list[dict[str, str]] | None:
    return [{"Name": k, "Value": v} for k, v in sorted(dimensions.items())] if dimensions else None


def _query(query: dict[str, Any]) -> dict[str, Any]:
    """A provider ``metricQuery`` as the API's ``MetricDataQuery``."""
    out = {k: query.get(k) for k in ("id", "expression", "label", "returnData", "period", "accountId")}
    metric = query.get("metric")
    if metric:
        out["MetricStat"] = {
            "Metric": {
                "Namespace": metric.get("namespace"),
                "MetricName": metric.get("metricName"),
                "Dimensions": _dimensions(metric.get("dimensions")),
            },
            "Period": metric.get("period"),
            "Stat": metric.get("stat"),
            "Unit": metric.get("unit"),
        }
    return {k: v for k, v in out.items() if v is not None}


@register
class MetricAlarm(Translation):
    type = "aws:cloudwatch/metricAlarm:MetricAlarm"
    force_new = frozenset({"name"})
    name_input = "name"
    name_max_length = 255
    _PLAIN: ClassVar[dict[str, str]] = {
        "alarmDescription": "AlarmDescription",
        "actionsEnabled": "ActionsEnabled",
        "okActions": "OKActions",
        "alarmActions": "AlarmActions",
        "insufficientDataActions": "InsufficientDataActions",
        "metricName": "MetricName",
        "namespace": "Namespace",
        "statistic": "Statistic",
        "extendedStatistic": "ExtendedStatistic",
        "period": "Period",
        "unit": "Unit",
        "evaluationPeriods": "EvaluationPeriods",
        "datapointsToAlarm": "DatapointsToAlarm",
        "threshold": "Threshold",
        "comparisonOperator": "ComparisonOperator",
        "treatMissingData": "TreatMissingData",
        "evaluateLowSampleCountPercentiles": "EvaluateLowSampleCountPercentile",
        "thresholdMetricId": "ThresholdMetricId",
    }

    def create(self, call, inputs):
        # The provider's create is one PutMetricAlarm (terraform-provider-aws
        # resourceMetricAlarmCreate): an alarm of the same name is taken over, as AWS overwrites it.
        return self._put(call, inputs)

    def _put(self, call, inputs):
        params = {api: inputs.get(tf) for tf, api in self._PLAIN.items()}
        params["AlarmName"] = inputs["name"]
        params["Dimensions"] = _dimensions(inputs.get("dimensions"))
        if inputs.get("metricQueries"):
            params["Metrics"] = [_query(q) for q in inputs["metricQueries"]]
        params["Tags"] = tag_list(inputs.get("tags")) or None
        call("cloudwatch", "PutMetricAlarm", **{k: v for k, v in params.items() if v is not None})
        return inputs["name"], self._read(call, inputs["name"])

    @staticmethod
    def _read(call, name: str) -> dict:
        alarms = call("cloudwatch", "DescribeAlarms", AlarmNames=[name])["MetricAlarms"]
        return {"arn": alarms[0]["AlarmArn"]}

    def update(self, call, id_, olds, news, changed):
        outputs = self._put(call, news)[1]
        # PutMetricAlarm ignores tags on an existing alarm: they change through TagResource.
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call(
                    "cloudwatch", "TagResource", ResourceARN=outputs["arn"], Tags=tag_list(tags)
                ),
                lambda keys: call("cloudwatch", "UntagResource", ResourceARN=outputs["arn"], TagKeys=keys),
            )
        return outputs

    def read(self, call, id_, inputs):
        return {} if call("cloudwatch", "DescribeAlarms", AlarmNames=[id_])["MetricAlarms"] else None

    def delete(self, call, id_, inputs):
        call("cloudwatch", "DeleteAlarms", AlarmNames=[id_])


@register
class Dashboard(PutTranslation):
    type = "aws:cloudwatch/dashboard:Dashboard"
    force_new = frozenset({"dashboardName"})

    def create(self, call, inputs):
        name = inputs["dashboardName"]
        call("cloudwatch", "PutDashboard", DashboardName=name, DashboardBody=inputs["dashboardBody"])
        return name, {"dashboardArn": call("cloudwatch", "GetDashboard", DashboardName=name)["DashboardArn"]}

    def read(self, call, id_, inputs):
        return {} if call.exists("cloudwatch", "GetDashboard", DashboardName=id_) else None

    def delete(self, call, id_, inputs):
        call("cloudwatch", "DeleteDashboards", DashboardNames=[id_])


@register
class LogGroup(Translation):
    type = "aws:cloudwatch/logGroup:LogGroup"
    force_new = frozenset({"name", "namePrefix", "logGroupClass"})
    name_input = "name"
    name_max_length = 512
    # The provider reads the retention back: one changed in the console is drift a refresh
    # reports and the next deploy sets again. None when the group keeps its events forever.
    read_back = frozenset({"retentionInDays"})

    def create(self, call, inputs):
        references.kms_key(call, inputs.get("kmsKeyId"), "kmsKeyId")
        name = inputs["name"]
        params = {
            "logGroupName": name,
            "kmsKeyId": inputs.get("kmsKeyId"),
            "tags": inputs.get("tags") or None,
            "logGroupClass": inputs.get("logGroupClass"),
        }
        call("logs", "CreateLogGroup", **{k: v for k, v in params.items() if v is not None})
        call.created(name)
        if inputs.get("retentionInDays"):
            call("logs", "PutRetentionPolicy", logGroupName=name, retentionInDays=inputs["retentionInDays"])
        return name, self._read(call, name)

    @staticmethod
    def _group(call, name: str) -> dict | None:
        groups = call("logs", "DescribeLogGroups", logGroupNamePrefix=name)["logGroups"]
        return next((g for g in groups if g["logGroupName"] == name), None)

    def _read(self, call, name: str) -> dict:
        group = self._group(call, name)
        if group is None:
            return {"arn": Unknown()}  # a preview: nothing was made to read
        # The provider reports the group's ARN without the ":*" that DescribeLogGroups appends.
        return {"arn": group["arn"].removesuffix(":*"), **self._retention(group)}

    @staticmethod
    def _retention(group: dict) -> dict:
        # A number as the program's is (Pulumi's numbers are floats), so the diff compares like with like.
        days = group.get("retentionInDays")
        return {"retentionInDays": None if days is None else float(days)}

    def update(self, call, id_, olds, news, changed):
        if changed - {"retentionInDays", "kmsKeyId", "tags", "skipDestroy"}:
            return super().update(call, id_, olds, news, changed)
        if "retentionInDays" in changed:
            if news.get("retentionInDays"):
                call("logs", "PutRetentionPolicy", logGroupName=id_, retentionInDays=news["retentionInDays"])
            else:
                call("logs", "DeleteRetentionPolicy", logGroupName=id_)
        if "kmsKeyId" in changed:
            if news.get("kmsKeyId"):
                references.kms_key(call, news["kmsKeyId"], "kmsKeyId")
                call("logs", "AssociateKmsKey", logGroupName=id_, kmsKeyId=news["kmsKeyId"])
            else:
                call("logs", "DisassociateKmsKey", logGroupName=id_)
        outputs = self._read(call, id_)
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("logs", "TagResource", resourceArn=outputs["arn"], tags=tags),
                lambda keys: call("logs", "UntagResource", resourceArn=outputs["arn"], tagKeys=keys),
            )
        return outputs

    def read(self, call, id_, inputs):
        group = self._group(call, id_)
        return None if group is None else self._retention(group)

    def delete(self, call, id_, inputs):
        call("logs", "DeleteLogGroup", logGroupName=id_)
