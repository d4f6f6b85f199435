"""What one execution's steps share: its record, where its files go, and its checked AWS clients.

Every client the run makes is a strict client (``strict.install``): each S3 and SageMaker
call is checked against AWS's service model before it is sent, as AWS would check it. The
jobs the run models (CreateProcessingJob, CreateTrainingJob) are checked the same way with
:meth:`RunContext.check` before their containers start.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local import strict
from pipelines.local.errors import StepFailure
from pipelines.local.records import Execution, StepRecord


@dataclass
class RunContext:
    """One execution's shared state; safe to use from the threads that run its steps."""

    execution: Execution
    boto_session: Any  # a boto3.Session: where the run's own calls go, with whose credentials
    python: str  # the interpreter that stands in for the image's python
    account: str
    reach: dict[str, str]  # what a step's process needs to reach the emulator (or AWS)
    # Each finished step's properties, as DescribeProcessingJob (etc.) would show them.
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str) -> Any:
        # Sessions are not thread-safe, the clients they make are: make each one once, locked.
        with self._lock:
            if service not in self._clients:
                self._clients[service] = strict.install(self.boto_session.client(service))
            return self._clients[service]

    @property
    def region(self) -> str:
        return self.client("s3").meta.region_name

    def check(self, step: str, operation: str, request: dict[str, Any]) -> None:
        """Refuse a SageMaker request AWS would refuse, naming the step and every bad member."""
        problems = strict.check_request("sagemaker", operation, request)
        if problems:
            raise StepFailure(
                f"step {step}: {operation} would be refused by AWS:\n  " + "\n  ".join(problems)
            )

    def step_dir(self, step: str) -> Path:
        path = self.execution.work_dir / step
        path.mkdir(parents=True, exist_ok=True)
        return path

    def job_name(self, step: str) -> str:
        # SageMaker names a step's job pipelines-<execution id>-<step>-<suffix>, ≤ 63 characters.
        return re.sub(r"[^A-Za-z0-9-]", "-", f"pipelines-{self.execution.execution_id}-{step}")[:63]

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def add_step(self, record: StepRecord) -> None:
        """Record a step as started (steps are listed in the order they start)."""
        with self._write_lock:
            self.execution.steps.append(record)
            self.execution.write()

    def write(self) -> None:
        """Write execution.json; steps finishing at once take turns."""
        with self._write_lock:
            self.execution.write()
