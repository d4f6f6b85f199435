"""``LocalExecutor``, and one execution's run: the steps in order, each recorded as it goes.

A run is the expressions of ``values``, the container steps of ``containers`` (with the files
of ``staging``), and here the step loop, Condition and Fail, and the registry steps.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any

from pipelines.local.containers import _ContainerSteps
from pipelines.local.errors import ParameterError, StepFailure
from pipelines.local.graph import _coerce, _flatten, _order
from pipelines.local.records import Execution, StepRecord, _now, _text
from pipelines.local.values import _Resolving

# The package's one logger, named as when the executor was the module pipelines.local.
log = logging.getLogger("pipelines.local")


class LocalExecutor:
    """Runs one pipeline definition; each ``start()`` is a new execution."""

    def __init__(
        self,
        definition: str | dict[str, Any],
        *,
        pipeline_name: str,
        work_dir: str | Path | None = None,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        boto_session: Any = None,
    ):
        self.definition = json.loads(definition) if isinstance(definition, str) else definition
        self.pipeline_name = pipeline_name
        self.work_root = Path(work_dir) if work_dir else None
        self.python = python
        self.env = dict(env or {})
        self._boto_session = boto_session
        self._clients: dict[str, Any] = {}
        self.parameters = {p["Name"]: p for p in self.definition.get("Parameters") or []}
        self.nodes = _flatten(self.definition.get("Steps") or [])
        self.order = _order(self.nodes, set(self.parameters))

    # -- starting --------------------------------------------------------------------------

    def start(self, parameters: dict[str, Any] | None = None, execution_id: str | None = None) -> Execution:
        """Run the pipeline to the end (or its first failure) and return the execution."""
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

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self._boto_session is None:
                import boto3

                self._boto_session = boto3.Session()
            self._clients[service] = self._boto_session.client(service)
        return self._clients[service]

    @property
    def region(self) -> str:
        return self.client("s3").meta.region_name

    @property
    def account(self) -> str:
        # The account the steps' roles live in; asking STS would be a call the emulator may lack.
        found = re.search(r"arn:aws[\w-]*:iam::(\d{12}):", json.dumps(self.definition))
        return found.group(1) if found else "000000000000"

    def _pipeline_arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/{self.pipeline_name.lower()}"


class _Run(_Resolving, _ContainerSteps):
    """The state of one execution: resolved values, the steps' properties, where files go."""

    def __init__(self, executor: LocalExecutor, execution: Execution):
        self.executor = executor
        self.execution = execution
        self.properties: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, bool] = {}
        self._json_cache: dict[str, Any] = {}

    def run(self) -> Execution:
        execution = self.execution
        execution.write()
        done: set[str] = set()
        for name in self.executor.order:
            node = self.executor.nodes[name]
            if node.guard and self.outcomes.get(node.guard[0]) is not node.guard[1]:
                continue
            if not node.depends <= done:  # something it needs was on a branch not taken
                continue
            record = StepRecord(name, node.spec["Type"], start=_now())
            execution.steps.append(record)
            execution.write()
            log.info("%s: %s step started", name, record.type)
            try:
                self.run_step(node.spec, record)
                record.status = "Succeeded"
            except StepFailure as exc:
                record.status, record.failure_reason = "Failed", str(exc)
            except Exception as exc:  # an executor bug or an unexpected AWS error: keep the traceback
                trace = self.step_dir(name) / "executor-error.txt"
                trace.write_text(traceback.format_exc())
                record.logs.append(str(trace))
                record.status, record.failure_reason = "Failed", f"{type(exc).__name__}: {exc}"
            record.end = _now()
            log.info(
                "%s: %s%s", name, record.status, f": {record.failure_reason}" if record.failure_reason else ""
            )
            if record.status == "Failed":
                execution.status, execution.failure_reason = "Failed", record.failure_reason
                break
            done.add(name)
        else:
            execution.status = "Succeeded"
        execution.end = _now()
        execution.write()
        return execution

    def run_step(self, spec: dict[str, Any], record: StepRecord) -> None:
        kind = spec["Type"]
        if kind == "Condition":
            # IfSteps/ElseSteps are steps of their own, ordered after this one.
            conditions = spec["Arguments"].get("Conditions") or []
            outcome = all(self.holds(c) for c in conditions)
            self.outcomes[record.name] = outcome
            self.properties[record.name] = {"Outcome": outcome}
            record.metadata = {"Condition": {"Outcome": str(outcome)}}
            record.outputs = {"Outcome": outcome}
            return
        args = self.resolve(spec.get("Arguments") or {})
        if kind == "Fail":
            message = _text(args.get("ErrorMessage", ""))
            record.metadata = {"Fail": {"ErrorMessage": message}}
            raise StepFailure(message)
        {
            "Processing": self.processing,
            "Training": self.training,
            "RegisterModel": self.register_model,
            "Model": self.create_model,
        }[kind](record, args)

    # -- registry steps --------------------------------------------------------------------

    def register_model(self, record: StepRecord, args: dict[str, Any]) -> None:
        sagemaker = self.executor.client("sagemaker")
        arn = self.call(sagemaker.create_model_package, args)["ModelPackageArn"]
        described = sagemaker.describe_model_package(ModelPackageName=arn)
        described.pop("ResponseMetadata", None)
        self.properties[record.name] = {"ModelPackageArn": arn, **described}
        record.metadata = {"RegisterModel": {"Arn": arn}}
        record.outputs = {"ModelPackageArn": arn}

    def create_model(self, record: StepRecord, args: dict[str, Any]) -> None:
        sagemaker = self.executor.client("sagemaker")
        # The SDK leaves ModelName out: SageMaker names the model per execution.
        request = {"ModelName": self.job_name(record.name), **args}
        arn = self.call(sagemaker.create_model, request)["ModelArn"]
        self.properties[record.name] = {**request, "ModelArn": arn}
        record.metadata = {"Model": {"Arn": arn}}
        record.outputs = {"ModelName": request["ModelName"], "ModelArn": arn}

    @staticmethod
    def call(method: Any, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import ClientError, ParamValidationError

        try:
            return method(**request)
        except (ParamValidationError, ClientError) as exc:
            raise StepFailure(str(exc)) from exc


def _default_work_root(pipeline_name: str) -> Path:
    from model_code.training.tracking import state_dir

    return state_dir() / "pipelines" / pipeline_name
