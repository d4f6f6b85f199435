"""EventBridge delivery: every event matching an enabled rule reaches each of the rule's targets once.

AWS services (CloudWatch alarms, S3, SageMaker) and ``PutEvents`` callers all go through
:func:`emit`, which matches the default (or named) bus's rules with moto's own pattern matcher
and hands the event to a delivery function per target service. Other behaviours register
deliveries for their services (:func:`register_target`); targets moto already delivers
(SQS, CloudWatch Logs, archives, other buses) are passed to moto's code, one target at a time.

``PutRule`` refuses a pattern longer than EventBridge's default "Event pattern size" quota, 2,048
characters (the EventBridge quotas page; the API model allows 4,096, the most a quota increase
gives), with the exception PutRule's API reference documents for going beyond a default quota,
``LimitExceededException``, so a deploy fails here where it would fail on AWS (moto stored any
length).

``PutEvents`` is replaced so that a failing target never fails the call: moto answered 500 and
botocore's retries delivered the same event again to the targets before it. A delivery that fails
is recorded in :data:`FAILED_DELIVERIES`, counted in the rule's ``AWS/Events``
``FailedInvocations`` metric, and sent to the target's dead-letter queue if it has one (the
event as the body; ``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``, ``ERROR_MESSAGE``,
``EXHAUSTED_RETRY_CONDITION`` and ``RETRY_ATTEMPTS`` as message attributes, as EventBridge
sends them).

Not emulated: retries (a retryable failure is dead-lettered at once, as if its retry policy were
spent), ``InputPath`` for targets this module delivers itself, event archives' replay, rules with only
a schedule (they never match events; EventBridge Scheduler covers schedules), cross-account buses'
permissions.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.events import models as events_models
from moto.utilities.arns import parse_arn

from localcloud.behaviours.patching import Patcher
from localcloud.emulator import authorisation

log = logging.getLogger(__name__)
# EventBridge's default "Event pattern size" quota, in characters.
EVENT_PATTERN_MAX_CHARS = 2048

Delivery = Callable[[dict[str, Any], dict[str, Any]], None]
"""(target, event) -> None; raises on failure."""

_DELIVERIES: dict[str, Delivery] = {}
FAILED_DELIVERIES: list[dict[str, Any]] = []
DELIVERED: list[dict[str, Any]] = []
_journal_lock = threading.Lock()
_clock_now: Callable[[], datetime] | None = None


def register_target(service: str, delivery: Delivery) -> None:
    """Deliver events to targets whose ARN names ``service`` (``sagemaker``, ``lambda``, ``sns`` ...).

    ``service:resource-type`` (``events:api-destination``) is preferred over ``service`` alone.
    """
    _DELIVERIES[service] = delivery


def delivery_for(target_arn: str) -> Delivery | None:
    """The registered delivery for a target ARN (Scheduler starts targets the same way)."""
    arn = parse_arn(target_arn)
    return _DELIVERIES.get(f"{arn.service}:{arn.resource_type}") or _DELIVERIES.get(arn.service)


def _timestamp(when: datetime | None) -> str:
    when = when or (_clock_now() if _clock_now else datetime.now())
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def emit(
    account: str,
    region: str,
    *,
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    resources: list[str] | None = None,
    bus: str = "default",
    time: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Send one event as an AWS service (or a ``PutEvents`` caller) would; return the event."""
    event = {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": _timestamp(time),
        "region": region,
        "resources": list(resources or []),
        "detail": detail,
    }
    backend = events_models.events_backends[account][region]
    name = bus.rsplit("/", 1)[-1] if bus.startswith("arn:") else bus
    event_bus = backend.event_buses.get(name)
    if event_bus is None:
        return event
    for rule in list(event_bus.rules.values()):
        # A rule without a pattern is a schedule: it matches no event (moto matched them all).
        if rule.state != "ENABLED" or not rule.event_pattern.get_pattern():
            continue
        if not rule.event_pattern.matches_event(event):
            continue
        for target in list(rule.targets):
            _deliver(rule, target, event)
    return event


def _deliver(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
    record = {"rule": rule.arn, "target": target["Arn"], "event": event}
    try:
        _authorise(rule, target)
        delivery = delivery_for(target["Arn"])
        if delivery is not None:
            delivery(target, copy.deepcopy(event))
        else:
            _deliver_with_moto(rule, target, event)
    except Exception as error:  # a target's failure is recorded, as AWS counts FailedInvocations
        log.warning("EventBridge delivery of %s to %s failed: %s", event["detail-type"], target["Arn"], error)
        with _journal_lock:
            FAILED_DELIVERIES.append({**record, "error": f"{type(error).__name__}: {error}"})
        _count_failed_invocation(rule, event)
        _dead_letter(rule, target, event, error)
        return
    with _journal_lock:
        DELIVERED.append(record)


# What EventBridge must be allowed for each kind of target it delivers to.
_TARGET_ACTIONS = {
    "sagemaker": "sagemaker:StartPipelineExecution",
    "events": "events:InvokeApiDestination",
    "sns": "sns:Publish",
    "sqs": "sqs:SendMessage",
}


def _authorise(rule: Any, target: dict[str, Any]) -> None:
    """EventBridge delivers as the target's role when it has one, else as itself (the target's
    resource policy must allow it); refused deliveries fail as on AWS (FailedInvocations, DLQ)."""
    arn = parse_arn(target["Arn"])
    action = _TARGET_ACTIONS.get(arn.service)
    if action is None or (arn.service == "events" and arn.resource_type != "api-destination"):
        return
    if target.get("RoleArn"):
        authorisation.act_as_role(target["RoleArn"], "events.amazonaws.com", rule.arn, action, target["Arn"])
    else:
        authorisation.act_as_service("events.amazonaws.com", rule.arn, action, target["Arn"])


def _count_failed_invocation(rule: Any, event: dict[str, Any]) -> None:
    from moto.cloudwatch.models import MetricDatum, cloudwatch_backends

    stamp = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")
    data = cloudwatch_backends[rule.account_id][rule.region_name].metric_data
    data.append(
        MetricDatum("AWS/Events", "FailedInvocations", 1.0, [{"Name": "RuleName", "Value": rule.name}], stamp)
    )


def _dead_letter(rule: Any, target: dict[str, Any], event: dict[str, Any], error: Exception) -> None:
    """What EventBridge does with an event it gave up on: the target's dead-letter queue gets it."""
    queue_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not queue_arn:
        return
    from moto.sqs.models import sqs_backends

    status = getattr(error, "status", None)
    retryable = getattr(error, "retryable", True)
    retry = target.get("RetryPolicy") or {}
    attributes = {
        "RULE_ARN": rule.arn,
        "TARGET_ARN": target["Arn"],
        "ERROR_CODE": "SDK_CLIENT_ERROR" if status is None else f"{status}",
        "ERROR_MESSAGE": str(error)[:256],
        "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts" if retryable else "NonRetryable",
        "RETRY_ATTEMPTS": str(retry.get("MaximumRetryAttempts", 185) if retryable else 0),
    }
    arn = parse_arn(queue_arn)
    try:
        # The queue's policy must let EventBridge send for this rule (aws:SourceArn).
        authorisation.act_as_service("events.amazonaws.com", rule.arn, "sqs:SendMessage", queue_arn)
        sqs_backends[arn.account][arn.region].send_message(
            arn.resource_id,
            json.dumps(event),
            message_attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
    except Exception as dead:  # a missing queue loses the event, as on AWS (which counts it)
        log.warning("EventBridge could not dead-letter to %s: %s", queue_arn, dead)


def _deliver_with_moto(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
    # moto's own targets expect the event time as epoch seconds and loop over rule.targets:
    # hand them a one-target copy of the rule so nothing is delivered twice.
    single = copy.copy(rule)
    single.targets = [target]
    moto_event = copy.deepcopy(event)
    moto_event["time"] = (
        datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    )
    moto_event["ingestion-time"] = moto_event["time"]
    events_models.Rule.send_to_targets(single, moto_event)


def _put_events(self: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(entries) > 10:
        raise events_models.ValidationException(
            "1 validation error detected: Value '[PutEventsRequestEntry]' at 'entries' failed to "
            "satisfy constraint: Member must have length less than or equal to 10"
        )
    results = []
    for entry in entries:
        missing = next((key for key in ("Source", "DetailType", "Detail") if not entry.get(key)), None)
        if missing:
            results.append(
                {
                    "ErrorCode": "InvalidArgument",
                    "ErrorMessage": f"Parameter {missing} is not valid. Reason: {missing} is a required argument.",
                }
            )
            continue
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            results.append({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
            continue
        event_id = str(uuid.uuid4())
        when = entry.get("Time")
        emit(
            self.account_id,
            self.region_name,
            source=entry["Source"],
            detail_type=entry["DetailType"],
            detail=detail,
            resources=entry.get("Resources", []),
            bus=entry.get("EventBusName") or "default",
            time=when if isinstance(when, datetime) else None,
            event_id=event_id,
        )
        results.append({"EventId": event_id})
    return results


def _refusing_long_patterns(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_rule(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        pattern = kwargs.get("event_pattern")
        if pattern is not None and len(pattern) > EVENT_PATTERN_MAX_CHARS:
            raise JsonRESTError(
                "LimitExceededException",
                f"The requested resource exceeds the maximum number allowed: the event pattern has "
                f"{len(pattern)} characters, and the Event pattern size quota is {EVENT_PATTERN_MAX_CHARS}.",
            )
        return original(self, name, *args, **kwargs)

    return put_rule


def install(patcher: Patcher, clock_now: Callable[[], datetime]) -> None:
    global _clock_now
    _clock_now = clock_now
    patcher.set(events_models.EventsBackend, "put_events", _put_events)
    patcher.wrap(events_models.EventsBackend, "put_rule", _refusing_long_patterns)


def reset() -> None:
    """Forget the delivery journal and the registered deliveries (on uninstall)."""
    global _clock_now
    _clock_now = None
    _DELIVERIES.clear()
    with _journal_lock:
        FAILED_DELIVERIES.clear()
        DELIVERED.clear()
