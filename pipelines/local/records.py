"""What an execution records: its steps as ``ListPipelineExecutionSteps`` shows them, and execution.json.

Times are written as SageMaker writes them (ISO 8601 to the millisecond, ``Z``), and values as
Std:Join writes them, which is also how the execution's parameters appear in the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class StepRecord:
    """One step as ``ListPipelineExecutionSteps`` shows it, plus where its outputs and logs went."""

    name: str
    type: str
    status: str = "Executing"
    start: datetime | None = None
    end: datetime | None = None
    failure_reason: str | None = None
    # SageMaker's step metadata, e.g. {"ProcessingJob": {"Arn": ...}}, {"Condition": {"Outcome": "True"}}.
    metadata: dict[str, Any] = field(default_factory=dict)
    # What a user looks for: S3 URIs of outputs, the model artifact, the model package ARN.
    outputs: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "StepName": self.name,
            "StepType": self.type,
            "StepStatus": self.status,
            "StartTime": _iso(self.start),
            "EndTime": _iso(self.end),
            "FailureReason": self.failure_reason,
            "Metadata": self.metadata,
            "Outputs": self.outputs,
            "Logs": self.logs,
        }


@dataclass
class Execution:
    """A pipeline execution: status Executing | Succeeded | Failed, and the steps that ran, in order."""

    pipeline_name: str
    execution_id: str
    arn: str
    work_dir: Path
    parameters: dict[str, Any]
    status: str = "Executing"
    failure_reason: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    steps: list[StepRecord] = field(default_factory=list)

    def step(self, name: str) -> StepRecord:
        """The record of the step called ``name``; KeyError if it did not run."""
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(f"step {name} did not run; ran: {', '.join(r.name for r in self.steps) or 'none'}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "PipelineName": self.pipeline_name,
            "PipelineExecutionId": self.execution_id,
            "PipelineExecutionArn": self.arn,
            "PipelineExecutionStatus": self.status,
            "FailureReason": self.failure_reason,
            "StartTime": _iso(self.start),
            "EndTime": _iso(self.end),
            "PipelineParameters": [{"Name": k, "Value": _text(v)} for k, v in self.parameters.items()],
            "WorkDir": str(self.work_dir),
            "Steps": [record.to_dict() for record in self.steps],
        }

    def write(self) -> Path:
        path = self.work_dir / "execution.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def _text(value: Any) -> str:
    """A resolved value as Std:Join writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
