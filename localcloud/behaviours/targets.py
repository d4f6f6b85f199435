"""What EventBridge does with a matched event for each kind of target the program uses.

* SageMaker pipeline: ``StartPipelineExecution`` with the target's parameter list (the pipeline
  named by the ARN, as stored in the emulator);
* Lambda: the deployed handler runs in-process with the event (:mod:`.lambdas`);
* SNS topic: the event JSON is published to the topic (its subscriptions receive it);
* API destination: recorded in :data:`API_DESTINATION_CALLS` (method, endpoint, parameters,
  body), never sent: the emulator has no network.

A target's constant ``Input`` replaces the event, as EventBridge does; ``InputPath`` and input
transformers are not emulated for these targets.
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


def _payload(target: dict[str, Any], event: dict[str, Any]) -> Any:
    return json.loads(target["Input"]) if target.get("Input") else event


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
    API_DESTINATION_CALLS.append(
        {
            "destination": target["Arn"],
            "method": destination.http_method,
            "endpoint": destination.invocation_endpoint,
            "headers": parameters.get("HeaderParameters", {}),
            "query": parameters.get("QueryStringParameters", {}),
            "body": _payload(target, event),
        }
    )


def install(runner: LambdaRunner) -> None:
    events.register_target("sagemaker", start_pipeline)
    events.register_target("sns", publish_to_topic)
    events.register_target("events:api-destination", record_api_call)
    events.register_target(
        "lambda", lambda target, event: runner.invoke(target["Arn"], _payload(target, event))
    )


def reset() -> None:
    API_DESTINATION_CALLS.clear()
