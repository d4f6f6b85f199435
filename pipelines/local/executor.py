"""``LocalExecutor``, and one execution's run: the step loop on top of the package's pieces.

The loop starts every step whose dependencies have succeeded (and whose condition branch was
taken), up to ``max_parallel`` at once, as SageMaker runs independent steps concurrently. A
failed step stops only what depends on it: the other branches still run and are recorded,
and the execution fails once nothing is left to run. Each step is one of ``containers``
(Processing, Training), ``registry`` (RegisterModel, Model) or, here, Condition and Fail;
its arguments are resolved by ``values``. Nothing below imports this module.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pipelines.local import containers, registry
from pipelines.local.context import RunContext
from pipelines.local.errors import ParameterError, StepFailure
from pipelines.local.graph import _coerce, _flatten, _order
from pipelines.local.records import Execution, StepRecord, _now, _text
from pipelines.local.values import Resolver

# The package's one logger, named as when the executor was the module pipelines.local.
log = logging.getLogger("pipelines.local")
_STEPS = {
    "Processing": containers.processing,
    "Training": containers.training,
    "RegisterModel": registry.register_model,
    "Model": registry.create_model,
}


class LocalExecutor:
    """Runs one pipeline definition; each ``start()`` is a new execution.

    ``env`` adds variables to every step's otherwise clean environment (what a local cloud
    needs its steps to see); ``max_parallel`` bounds the steps running at once (default: the
    CPU count, at least 2). ``before_step(kind, name, arguments)`` is called with each step's
    resolved arguments before it runs; a :class:`StepFailure` it raises fails the step (the
    local cloud authorises there what SageMaker does to start the step's job).
    """

    def __init__(
        self,
        definition: str | dict[str, Any],
        *,
        pipeline_name: str,
        work_dir: str | Path | None = None,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        boto_session: Any = None,
        max_parallel: int | None = None,
        before_step: Callable[[str, str, dict[str, Any]], None] | None = None,
    ):
        self.definition = json.loads(definition) if isinstance(definition, str) else definition
        self.pipeline_name = pipeline_name
        self.work_root = Path(work_dir) if work_dir else None
        self.python = python
        self.env = dict(env or {})
        self._boto_session = boto_session
        self.max_parallel = max_parallel or max(2, os.cpu_count() or 2)
        self.before_step = before_step
        self.parameters = {p["Name"]: p for p in self.definition.get("Parameters") or []}
        self.nodes = _flatten(self.definition.get("Steps") or [])
        self.order = _order(self.nodes, set(self.parameters))

    # -- starting --------------------------------------------------------------------------

    def start(self, parameters: dict[str, Any] | None = None, execution_id: str | None = None) -> Execution:
        """Run the pipeline until no step is left to run and return the execution."""
        values = self._resolve_parameters(parameters or {})
        execution_id = execution_id or uuid.uuid4().hex[:12]
        root = self.work_root or _default_work_root(self.pipeline_name)
        work_dir = (root / execution_id).resolve()
        if (work_dir / "execution.json").exists():
            raise FileExistsError(f"execution {execution_id} already ran in {work_dir}")
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "definition.json").write_text(json.dumps(self.definition, indent=2) + "\n")
        arn = f"{self._pipeline_arn()}/execution/{execution_id}"
        execution = Execution(self.pipeline_name, execution_id, arn, work_dir, values, start=_now())
        return _Run(self, execution).run()

    def _resolve_parameters(self, given: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            known = ", ".join(self.parameters) or "none"
            raise ParameterError(f"unknown parameter {unknown[0]}; the pipeline's parameters are: {known}")
        values = {}
        for name, spec in self.parameters.items():
            if name in given:
                value = given[name]
            elif "DefaultValue" in spec:
                value = spec["DefaultValue"]
            else:
                raise ParameterError(f"parameter {name}: no value given and no DefaultValue")
            values[name] = _coerce(name, spec.get("Type", "String"), value)
            allowed = spec.get("EnumValues")
            if allowed and values[name] not in allowed:
                raise ParameterError(f"parameter {name}: {value!r} is not one of {' | '.join(allowed)}")
        return values

    # -- AWS -------------------------------------------------------------------------------

    @property
    def boto_session(self) -> Any:
        if self._boto_session is None:
            import boto3

            self._boto_session = boto3.Session()
        return self._boto_session

    @property
    def region(self) -> str:
        # As the run's S3 client resolves it: without a configured region, us-east-1.
        return self.boto_session.region_name or "us-east-1"

    @property
    def account(self) -> str:
        # The account the steps' roles live in; asking STS would be a call the emulator may lack.
        found = re.search(r"arn:aws[\w-]*:iam::(\d{12}):", json.dumps(self.definition))
        return found.group(1) if found else "000000000000"

    def reach(self) -> dict[str, str]:
        """What a step's process needs to make the calls this executor makes, and nothing else:
        the endpoint (``AWS_ENDPOINT_URL``, per-service ones too), the region, and the
        credentials of the session (the role the steps run as)."""
        env = {k: v for k, v in os.environ.items() if re.fullmatch(r"AWS_ENDPOINT_URL(_\w+)?", k)}
        if self.region:
            env.update(AWS_DEFAULT_REGION=self.region, AWS_REGION=self.region)
        credentials = self.boto_session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            env.update(AWS_ACCESS_KEY_ID=frozen.access_key, AWS_SECRET_ACCESS_KEY=frozen.secret_key)
            if frozen.token:
                env["AWS_SESSION_TOKEN"] = frozen.token
        return {**env, **self.env}

    def _pipeline_arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/{self.pipeline_name.lower()}"


class _Run:
    """One execution: the step loop over the definition's graph."""

    def __init__(self, executor: LocalExecutor, execution: Execution):
        self.executor = executor
        self.nodes = executor.nodes
        self.context = RunContext(
            execution=execution,
            boto_session=executor.boto_session,
            python=executor.python,
            account=executor.account,
            reach=executor.reach(),
        )
        self.resolver = Resolver(self.context, {name: node.spec for name, node in self.nodes.items()})
        self.outcomes: dict[str, bool] = {}  # each condition step's outcome

    def run(self) -> Execution:
        execution = self.context.execution
        self.context.write()
        status: dict[str, str] = {}  # Succeeded | Failed | Skipped, per step that will not run again
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(max_workers=self.executor.max_parallel) as pool:
            while True:
                for name in self.executor.order:  # dependency order: a skip reaches its dependents
                    if name in status or name in running.values():
                        continue
                    state = self._state(name, status)
                    if state == "skip":
                        status[name] = "Skipped"
                    elif state == "ready":
                        running[pool.submit(self._step, name)] = name
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    status[running.pop(future)] = future.result().status
        failed = sorted((r for r in execution.steps if r.status == "Failed"), key=self._position)
        if failed:  # the first failed step in the definition's order explains the execution
            execution.status, execution.failure_reason = "Failed", failed[0].failure_reason
        else:
            execution.status = "Succeeded"
        execution.end = _now()
        self.context.write()
        return execution

    def _position(self, record: StepRecord) -> int:
        return self.nodes[record.name].index

    def _state(self, name: str, status: dict[str, str]) -> str:
        """ready, skip (a dependency failed or was skipped, or its branch was not taken) or wait."""
        node = self.nodes[name]
        if any(status.get(dep) in ("Failed", "Skipped") for dep in node.depends):
            return "skip"
        condition, taken_on = node.guard or (None, None)
        if status.get(condition) == "Succeeded" and self.outcomes[condition] is not taken_on:
            return "skip"
        return "ready" if all(status.get(dep) == "Succeeded" for dep in node.depends) else "wait"

    def _step(self, name: str) -> StepRecord:
        """Run one step on a worker thread, recorded from the moment it starts."""
        record = StepRecord(name, self.nodes[name].spec["Type"], start=_now())
        self.context.add_step(record)
        log.info("%s: %s step started", name, record.type)
        try:
            self.run_step(self.nodes[record.name].spec, record)
            record.status = "Succeeded"
        except StepFailure as exc:
            record.status, record.failure_reason = "Failed", str(exc)
        except Exception as exc:  # an executor bug or an unexpected AWS error: keep the traceback
            trace = self.context.step_dir(record.name) / "executor-error.txt"
            trace.write_text(traceback.format_exc())
            record.logs.append(str(trace))
            record.status, record.failure_reason = "Failed", f"{type(exc).__name__}: {exc}"
        record.end = _now()
        reason = f": {record.failure_reason}" if record.failure_reason else ""
        log.info("%s: %s%s", record.name, record.status, reason)
        self.context.write()
        return record

    def run_step(self, spec: dict[str, Any], record: StepRecord) -> None:
        kind = spec["Type"]
        if kind == "Condition":
            # IfSteps/ElseSteps are steps of their own, ordered after this one.
            conditions = spec["Arguments"].get("Conditions") or []
            outcome = all(self.resolver.holds(c) for c in conditions)
            self.outcomes[record.name] = outcome
            self.context.properties[record.name] = {"Outcome": outcome}
            record.metadata = {"Condition": {"Outcome": str(outcome)}}
            record.outputs = {"Outcome": outcome}
            return
        args = self.resolver.resolve(spec.get("Arguments") or {})
        if kind == "Fail":
            message = _text(args.get("ErrorMessage", ""))
            record.metadata = {"Fail": {"ErrorMessage": message}}
            raise StepFailure(message)
        if self.executor.before_step is not None:
            self.executor.before_step(kind, record.name, args)
        _STEPS[kind](self.context, record, args)


def _default_work_root(pipeline_name: str) -> Path:
    from model_code.training.tracking import state_dir

    return state_dir() / "pipelines" / pipeline_name
