"""What EventBridge does with a matched event for each kind of target the program uses.

* SageMaker pipeline: ``StartPipelineExecution`` with the target's parameter list (the pipeline
  named by the ARN, as stored in the emulator);
* Lambda: the deployed handler runs in-process with the event (:mod:`.lambdas`);
* SNS topic: the event JSON is published to the topic (its subscriptions receive it);
* API destination: recorded in :data:`API_DESTINATION_CALLS` (method, endpoint, parameters,
  body, the status it answered), never sent: the emulator has no network. It answers what
  :data:`API_DESTINATION_ANSWERS` holds for its endpoint (``POST /_mlops/api-destinations``),
  200 by default; a 4xx or 5xx fails the delivery, which EventBridge then dead-letters.

A target's constant ``Input`` replaces the event, as EventBridge does; so does an input
transformer's template, with each ``<name>`` replaced by the value its path reads from the
event (a quoted ``"<name>"`` by the value as text, an unquoted one by the JSON value).
``InputPath`` is not emulated.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from moto.events.models import events_backends
from moto.sagemaker.models import sagemaker_backends
from moto.sns.models import sns_backends
from moto.utilities.arns import parse_arn

from localcloud.behaviours import events
from localcloud.behaviours.lambdas import LambdaRunner

API_DESTINATION_CALLS: list[dict[str, Any]] = []
# invocation endpoint -> (HTTP status, body) the emulated server answers; unset: 200.
API_DESTINATION_ANSWERS: dict[str, tuple[int, str]] = {}


class ApiDestinationFailed(RuntimeError):
    """The API destination answered an error; EventBridge counts a failed invocation."""

    def __init__(self, endpoint: str, status: int, body: str):
        super().__init__(f"{endpoint} answered {status}: {body}")
        self.status = status
        # EventBridge retries 429 and 5xx; any other 4xx is final.
        self.retryable = status == 429 or status >= 500


def _path(event: dict[str, Any], path: str) -> Any:
    found: Any = event
    for part in path.removeprefix("$.").split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return found


def transform(transformer: dict[str, Any], event: dict[str, Any]) -> Any:
    """An input transformer's output for ``event``: the template with its placeholders filled."""
    text = transformer["InputTemplate"]
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        value = _path(event, path)
        as_text = value if isinstance(value, str) else json.dumps(value)
        text = text.replace(f'"<{name}>"', json.dumps(as_text)).replace(f"<{name}>", json.dumps(value))
    try:
        return json.loads(text)
    except ValueError:
        return text


def _payload(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if target.get("Input"):
        return json.loads(target["Input"])
    if target.get("InputTransformer"):
        return transform(target["InputTransformer"], event)
    return event


def _dynamic(value: str, event: dict[str, Any]) -> str:
    """EventBridge's dynamic path parameters: a value ``$.a.b`` is taken from the event."""
    if not value.startswith("$."):
        return value
    found: Any = event
    for part in value[2:].split("."):
        if not isinstance(found, dict) or part not in found:
            raise ValueError(f"pipeline parameter path {value}: not found in the event")
        found = found[part]
    return found if isinstance(found, str) else json.dumps(found)


def start_pipeline(target: dict[str, Any], event: dict[str, Any]) -> None:
    arn = parse_arn(target["Arn"])
    if arn.resource_type != "pipeline":
        raise ValueError(f"Arn: {target['Arn']} is not a SageMaker pipeline")
    parameters = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
    # Positional, as moto's response class calls it (and the running-executions wrapper expects).
    sagemaker_backends[arn.account][arn.region].start_pipeline_execution(
        arn.resource_id,
        None,
        [{"Name": p["Name"], "Value": _dynamic(p["Value"], event)} for p in parameters],
        None,
        None,
        str(uuid.uuid4()),
    )


def publish_to_topic(target: dict[str, Any], event: dict[str, Any]) -> None:
    arn = parse_arn(target["Arn"])
    sns_backends[arn.account][arn.region].publish(json.dumps(_payload(target, event)), arn=target["Arn"])


def record_api_call(target: dict[str, Any], event: dict[str, Any]) -> None:
    arn = parse_arn(target["Arn"])
    name = arn.resource_id.split("/")[0]
    destination = events_backends[arn.account][arn.region].destinations[name]
    parameters = target.get("HttpParameters", {})
    status, answer = API_DESTINATION_ANSWERS.get(destination.invocation_endpoint, (200, ""))
    API_DESTINATION_CALLS.append(
        {
            "destination": target["Arn"],
            "method": destination.http_method,
            "endpoint": destination.invocation_endpoint,
            "headers": parameters.get("HeaderParameters", {}),
            "query": parameters.get("QueryStringParameters", {}),
            "body": _payload(target, event),
            "event_id": event["id"],
            "status": status,
        }
    )
    if status >= 400:
        raise ApiDestinationFailed(destination.invocation_endpoint, status, answer)


def install(runner: LambdaRunner) -> None:
    events.register_target("sagemaker", start_pipeline)
    events.register_target("sns", publish_to_topic)
    events.register_target("events:api-destination", record_api_call)
    events.register_target(
        "lambda", lambda target, event: runner.invoke(target["Arn"], _payload(target, event))
    )


def reset() -> None:
    API_DESTINATION_CALLS.clear()
    API_DESTINATION_ANSWERS.clear()
