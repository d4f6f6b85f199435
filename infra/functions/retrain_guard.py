"""The retraining guard: a training pipeline never runs twice at once.

EventBridge invokes ``handler`` when an execution of the training pipeline becomes
``Executing`` (the "SageMaker Model Building Pipeline Execution Status Change" event),
whatever started it: an alarm, the schedule or a person. The handler lists the pipeline's
executions and, if another one that started earlier is still ``Executing``, stops the new
one; the run already going keeps the compute and its result stands.

Why stop the newcomer and not the older run: the older one has done part of its work (and
may be minutes from registering a model), and both would train on much the same data.

Races: two executions that start together each get an event; both invocations see the same
list and order the runs the same way (start time, then ARN), so exactly one survives. Events
are delivered at least once and Lambda retries a failed invocation: stopping is idempotent
(the request token is derived from the execution ARN), so a repeat changes nothing.

Runs in the Lambda Python runtime: standard library and boto3 only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

# A named logger at INFO: its records reach the handler Lambda installs on the root logger.
log = logging.getLogger("retrain_guard")
log.setLevel(logging.INFO)

EXECUTING = "Executing"
# Set by the Pulumi program: the only pipeline this function acts on.
GUARDED_PIPELINE_ARN = "GUARDED_PIPELINE_ARN"


def _order(summary: Mapping[str, Any]) -> tuple[bool, float, str]:
    """Sort key: earlier start first; an unknown start counts as the newest; ties by ARN."""
    start = summary.get("StartTime")
    return (start is None, start.timestamp() if start is not None else 0.0, summary["PipelineExecutionArn"])


def executions_to_stop(executions: Iterable[Mapping[str, Any]], this_arn: str) -> list[str]:
    """``[this_arn]`` if another execution that started before it is still Executing, else ``[]``.

    ``executions`` are ``ListPipelineExecutions`` summaries (``PipelineExecutionArn``,
    ``StartTime``, ``PipelineExecutionStatus``). An execution the list does not show yet
    (the list can lag the event) has just started, so it is the newest; one the list shows
    as no longer Executing (already stopping or finished) needs nothing.
    """
    executions = list(executions)
    this = next((e for e in executions if e["PipelineExecutionArn"] == this_arn), None)
    if this is not None and this.get("PipelineExecutionStatus") != EXECUTING:
        return []
    this_key = _order(this or {"PipelineExecutionArn": this_arn})
    earlier = [
        e
        for e in executions
        if e["PipelineExecutionArn"] != this_arn
        and e.get("PipelineExecutionStatus") == EXECUTING
        and _order(e) < this_key
    ]
    return [this_arn] if earlier else []


def request_token(execution_arn: str) -> str:
    """A ``ClientRequestToken`` (32-128 characters) that is the same for every stop of one execution."""
    return hashlib.sha256(execution_arn.encode()).hexdigest()


def pipeline_name(pipeline_arn: str) -> str:
    """``arn:...:pipeline/<name>`` → ``<name>`` (ListPipelineExecutions takes either)."""
    return pipeline_arn.split(":pipeline/", 1)[-1].split("/", 1)[0]


def list_executions(client: Any, pipeline: str) -> list[dict[str, Any]]:
    """Every execution summary of ``pipeline``, oldest first."""
    pages = client.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline, SortBy="CreationTime", SortOrder="Ascending"
    )
    return [summary for page in pages for summary in page.get("PipelineExecutionSummaries", [])]


def handler(event: Mapping[str, Any], context: Any = None, client: Any = None) -> dict[str, Any]:
    """Stop this execution if an earlier one of the same pipeline is still running.

    Returns what it did: ``{"action": "stopped" | "allowed" | "ignored", "execution": ...,
    "running": [the other executions still Executing], "reason": ...}`` (also logged).
    """
    detail = event.get("detail") or {}
    this_arn = detail.get("pipelineExecutionArn")
    pipeline_arn = detail.get("pipelineArn") or (this_arn or "").split("/execution/", 1)[0]
    guarded = os.environ.get(GUARDED_PIPELINE_ARN)
    if not this_arn or detail.get("currentPipelineExecutionStatus") != EXECUTING:
        return _report("ignored", this_arn, reason="not an execution entering Executing")
    if guarded and pipeline_arn.lower() != guarded.lower():
        return _report("ignored", this_arn, reason=f"not the guarded pipeline {guarded}")

    if client is None:
        import boto3

        client = boto3.client("sagemaker")
    executions = list_executions(client, pipeline_name(pipeline_arn))
    running = [
        e["PipelineExecutionArn"]
        for e in executions
        if e.get("PipelineExecutionStatus") == EXECUTING and e["PipelineExecutionArn"] != this_arn
    ]
    to_stop = executions_to_stop(executions, this_arn)
    for arn in to_stop:
        client.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=request_token(arn))
    if to_stop:
        return _report("stopped", this_arn, running=running, reason="an earlier execution is still running")
    return _report("allowed", this_arn, running=running, reason="no earlier execution is running")


def _report(
    action: str, execution: str | None, *, reason: str, running: list[str] | None = None
) -> dict[str, Any]:
    result = {"action": action, "execution": execution, "running": running or [], "reason": reason}
    log.info("retrain guard: %s", result)
    return result
