"""EventBridge rules and targets, connections and API destinations, and EventBridge Scheduler schedules."""

from __future__ import annotations

from typing import Any

from localcloud.translations import references
from localcloud.translations.base import Translation, register, retag, tag_list


def _pipeline_parameters(parameters: list[dict[str, str]] | None) -> dict[str, Any] | None:
    if parameters is None:
        return None
    return {"PipelineParameterList": [{"Name": p["name"], "Value": p["value"]} for p in parameters]}


def _input_transformer(transformer: dict[str, Any] | None) -> dict[str, Any] | None:
    # Terraform's input_paths is the API's InputPathsMap.
    if not transformer:
        return None
    out = {"InputTemplate": transformer["inputTemplate"]}
    if transformer.get("inputPaths"):
        out["InputPathsMap"] = dict(transformer["inputPaths"])
    return out


@register
class EventRule(Translation):
    type = "aws:cloudwatch/eventRule:EventRule"
    force_new = frozenset({"name", "namePrefix", "eventBusName"})
    name_input = "name"
    name_max_length = 64

    def create(self, call, inputs):
        references.role(call, inputs.get("roleArn"), "roleArn")
        self._put(call, inputs, tags=tag_list(inputs.get("tags")) or None)
        return inputs["name"], self._read(call, inputs)

    @staticmethod
    def _put(call, inputs, tags=None) -> None:
        params = {
            "Name": inputs["name"],
            "EventPattern": inputs.get("eventPattern"),
            "ScheduleExpression": inputs.get("scheduleExpression"),
            "State": inputs.get("state") or "ENABLED",
            "Description": inputs.get("description"),
            "RoleArn": inputs.get("roleArn"),
            "EventBusName": inputs.get("eventBusName"),
            "Tags": tags,
        }
        call("events", "PutRule", **{k: v for k, v in params.items() if v is not None})

    @staticmethod
    def _read(call, inputs) -> dict:
        params = {"Name": inputs["name"], "EventBusName": inputs.get("eventBusName")}
        return {"arn": call("events", "DescribeRule", **{k: v for k, v in params.items() if v})["Arn"]}

    def update(self, call, id_, olds, news, changed):
        self._put(call, news)
        outputs = self._read(call, news)
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("events", "TagResource", ResourceARN=outputs["arn"], Tags=tag_list(tags)),
                lambda keys: call("events", "UntagResource", ResourceARN=outputs["arn"], TagKeys=keys),
            )
        return outputs

    def read(self, call, id_, inputs):
        params = {"Name": id_, "EventBusName": inputs.get("eventBusName")}
        return {} if call.exists("events", "DescribeRule", **{k: v for k, v in params.items() if v}) else None

    def delete(self, call, id_, inputs):
        params = {"Name": id_, "EventBusName": inputs.get("eventBusName")}
        call("events", "DeleteRule", **{k: v for k, v in params.items() if v})


@register
class EventTarget(Translation):
    type = "aws:cloudwatch/eventTarget:EventTarget"
    force_new = frozenset({"rule", "targetId", "eventBusName"})
    name_input = "targetId"
    name_max_length = 64

    def create(self, call, inputs):
        references.role(call, inputs.get("roleArn"), "roleArn")
        references.target(call, inputs.get("arn"), "arn")
        self._put(call, inputs)
        return f"{inputs['rule']}-{inputs['targetId']}", {}

    @staticmethod
    def _put(call, inputs) -> None:
        unsupported = {
            "ecsTarget",
            "batchTarget",
            "kinesisTarget",
            "sqsTarget",
            "httpTarget",
            "redshiftTarget",
        }
        present = sorted(k for k in unsupported if inputs.get(k))
        if present:
            raise call.fail(f"target kinds {present} have no translation yet")
        target = {
            "Id": inputs["targetId"],
            "Arn": inputs["arn"],
            "RoleArn": inputs.get("roleArn"),
            "Input": inputs.get("input"),
            "InputPath": inputs.get("inputPath"),
            "InputTransformer": _input_transformer(inputs.get("inputTransformer")),
            "RetryPolicy": inputs.get("retryPolicy"),
            "DeadLetterConfig": inputs.get("deadLetterConfig"),
            "SageMakerPipelineParameters": _pipeline_parameters(
                (inputs.get("sagemakerPipelineTarget") or {}).get("pipelineParameterLists")
            ),
        }
        params = {
            "Rule": inputs["rule"],
            "EventBusName": inputs.get("eventBusName"),
            "Targets": [{k: v for k, v in target.items() if v is not None}],
        }
        answer = call("events", "PutTargets", **{k: v for k, v in params.items() if v is not None})
        if answer.get("FailedEntryCount"):
            raise call.fail(f"PutTargets refused the target: {answer['FailedEntries']}")

    def update(self, call, id_, olds, news, changed):
        references.role(call, news.get("roleArn"), "roleArn")
        references.target(call, news.get("arn"), "arn")
        self._put(call, news)
        return {}

    def delete(self, call, id_, inputs):
        params = {
            "Rule": inputs["rule"],
            "EventBusName": inputs.get("eventBusName"),
            "Ids": [inputs["targetId"]],
        }
        call("events", "RemoveTargets", **{k: v for k, v in params.items() if v is not None})


@register
class Schedule(Translation):
    type = "aws:scheduler/schedule:Schedule"
    force_new = frozenset({"name", "namePrefix", "groupName"})
    name_input = "name"
    name_max_length = 64

    def create(self, call, inputs):
        self._check(call, inputs)
        call("scheduler", "CreateSchedule", **self._params(inputs))
        return f"{inputs.get('groupName') or 'default'}/{inputs['name']}", self._read(call, inputs)

    @staticmethod
    def _check(call, inputs) -> None:
        target = inputs.get("target") or {}
        references.kms_key(call, inputs.get("kmsKeyArn"), "kmsKeyArn")
        references.role(call, target.get("roleArn"), "target.roleArn")
        references.target(call, target.get("arn"), "target.arn")

    @staticmethod
    def _params(inputs) -> dict[str, Any]:
        target = dict(inputs["target"])
        pipeline = target.pop("sagemakerPipelineParameters", None)
        if pipeline is not None:
            target["SageMakerPipelineParameters"] = _pipeline_parameters(pipeline.get("pipelineParameters"))
        params = {
            "Name": inputs["name"],
            "GroupName": inputs.get("groupName"),
            "ScheduleExpression": inputs["scheduleExpression"],
            "ScheduleExpressionTimezone": inputs.get("scheduleExpressionTimezone"),
            "FlexibleTimeWindow": inputs["flexibleTimeWindow"],
            "State": inputs.get("state"),
            "Description": inputs.get("description"),
            "KmsKeyArn": inputs.get("kmsKeyArn"),
            "StartDate": inputs.get("startDate"),
            "EndDate": inputs.get("endDate"),
            "Target": target,
        }
        return {k: v for k, v in params.items() if v is not None}

    @staticmethod
    def _read(call, inputs) -> dict:
        params = {"Name": inputs["name"], "GroupName": inputs.get("groupName")}
        return {"arn": call("scheduler", "GetSchedule", **{k: v for k, v in params.items() if v})["Arn"]}

    def update(self, call, id_, olds, news, changed):
        self._check(call, news)
        # UpdateSchedule replaces the whole schedule: every member is sent again.
        call("scheduler", "UpdateSchedule", **self._params(news))
        return self._read(call, news)

    def read(self, call, id_, inputs):
        params = {"Name": inputs["name"], "GroupName": inputs.get("groupName")}
        found = call.exists("scheduler", "GetSchedule", **{k: v for k, v in params.items() if v})
        return {} if found else None

    def delete(self, call, id_, inputs):
        params = {"Name": inputs["name"], "GroupName": inputs.get("groupName")}
        call("scheduler", "DeleteSchedule", **{k: v for k, v in params.items() if v})


def _http_parameters(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The provider's ``invocationHttpParameters`` as the API's ``ConnectionHttpParameters``."""
    if not params:
        return None
    kinds = {
        "headers": "HeaderParameters",
        "queryStrings": "QueryStringParameters",
        "bodies": "BodyParameters",
    }
    return {
        api: [
            {"Key": p["key"], "Value": p["value"], "IsValueSecret": bool(p.get("isValueSecret"))}
            for p in params[tf]
        ]
        for tf, api in kinds.items()
        if params.get(tf)
    }


def _auth_parameters(auth: dict[str, Any]) -> dict[str, Any]:
    """The provider's ``authParameters`` as the API's ``CreateConnectionAuthRequestParameters``."""
    out: dict[str, Any] = {}
    if auth.get("apiKey"):
        out["ApiKeyAuthParameters"] = {
            "ApiKeyName": auth["apiKey"]["key"],
            "ApiKeyValue": auth["apiKey"]["value"],
        }
    if auth.get("basic"):
        out["BasicAuthParameters"] = {
            "Username": auth["basic"]["username"],
            "Password": auth["basic"]["password"],
        }
    if auth.get("oauth"):
        raise ValueError("authParameters.oauth has no translation in the local cloud yet")
    http = _http_parameters(auth.get("invocationHttpParameters"))
    if http:
        out["InvocationHttpParameters"] = http
    return out


@register
class EventConnection(Translation):
    """An API destination's connection; EventBridge keeps its credentials in a Secrets Manager
    secret of its own (under ``kmsKeyIdentifier``), whose ARN the provider reports."""

    type = "aws:cloudwatch/eventConnection:EventConnection"
    force_new = frozenset({"name"})

    def create(self, call, inputs):
        self._put(call, "CreateConnection", inputs)
        return inputs["name"], self._read(call, inputs["name"])

    @staticmethod
    def _put(call, operation: str, inputs) -> None:
        references.kms_key(call, inputs.get("kmsKeyIdentifier"), "kmsKeyIdentifier")
        try:
            auth = _auth_parameters(inputs["authParameters"])
        except ValueError as exc:
            raise call.fail(str(exc)) from None
        params = {
            "Name": inputs["name"],
            "Description": inputs.get("description"),
            "AuthorizationType": inputs["authorizationType"],
            "AuthParameters": auth,
            "KmsKeyIdentifier": inputs.get("kmsKeyIdentifier"),
        }
        call("events", operation, **{k: v for k, v in params.items() if v is not None})

    @staticmethod
    def _read(call, name: str) -> dict:
        described = call("events", "DescribeConnection", Name=name)
        return {"arn": described["ConnectionArn"], "secretArn": described.get("SecretArn", "")}

    def update(self, call, id_, olds, news, changed):
        self._put(call, "UpdateConnection", news)
        return self._read(call, id_)

    def delete(self, call, id_, inputs):
        call("events", "DeleteConnection", Name=id_)


@register
class EventApiDestination(Translation):
    type = "aws:cloudwatch/eventApiDestination:EventApiDestination"
    force_new = frozenset({"name"})

    def create(self, call, inputs):
        self._put(call, "CreateApiDestination", inputs)
        return inputs["name"], self._read(call, inputs["name"])

    @staticmethod
    def _put(call, operation: str, inputs) -> None:
        connection = inputs["connectionArn"]
        # arn:aws:events:<region>:<account>:connection/<name>/<uuid>
        name = connection.split(":connection/", 1)[-1].split("/", 1)[0]
        found = call.exists("events", "DescribeConnection", Name=name)
        if not found:
            raise call.fail(
                f"connectionArn refers to EventBridge connection {connection!r}, which does not exist"
            )
        params = {
            "Name": inputs["name"],
            "Description": inputs.get("description"),
            "ConnectionArn": connection,
            "InvocationEndpoint": inputs["invocationEndpoint"],
            "HttpMethod": inputs["httpMethod"],
            "InvocationRateLimitPerSecond": inputs.get("invocationRateLimitPerSecond"),
        }
        call("events", operation, **{k: v for k, v in params.items() if v is not None})

    @staticmethod
    def _read(call, name: str) -> dict:
        return {"arn": call("events", "DescribeApiDestination", Name=name)["ApiDestinationArn"]}

    def update(self, call, id_, olds, news, changed):
        self._put(call, "UpdateApiDestination", news)
        return self._read(call, id_)

    def delete(self, call, id_, inputs):
        call("events", "DeleteApiDestination", Name=id_)
