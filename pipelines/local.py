"""Run a SageMaker pipeline definition on this machine, step by step, with SageMaker's contracts.

The executor reads the definition JSON (schema version 2020-12-01, what ``Pipeline.definition()``
returns and what ``CreatePipeline`` stores), never the Python objects that built it, so the
tests and the local cloud run exactly the definition production runs::

    definition JSON ─► parameters checked ─► steps ordered by their references and DependsOn
        ─► each step's Arguments resolved ({"Get": ...}, Std:Join, Std:JsonGet)
        ─► Processing / Training: the project image's command as a subprocess, /opt/ml remapped
           Condition: IfSteps or ElseSteps     Fail: the execution fails with ErrorMessage
           RegisterModel / Model: CreateModelPackage / CreateModel through boto3
        ─► <work dir>/<execution id>/execution.json after every step

Containers: the image is this checkout (its root leads PYTHONPATH); an entrypoint of
``python ...`` runs with this machine's interpreter, ``train``/``serve``/``mlops`` as the
image's PATH commands do. Every ``/opt/ml`` path in the arguments, LocalPaths and Environment
becomes ``<work dir>/<execution id>/<step>/<host>/...``. Paths a container only knows as
defaults are not remapped, so builders pass them as arguments; training paths arrive as the
``SM_*`` variables model_code reads. Processing and training requests are checked against
botocore's model of CreateProcessingJob / CreateTrainingJob before they run, so a request
SageMaker would refuse fails here too.

S3 and SageMaker are reached through boto3 with its default configuration, so
``AWS_ENDPOINT_URL`` (the moto server of the tests and the local cloud) is honoured by the
executor and, through the inherited environment, by the steps' own boto3 calls.

Not emulated: Pipe input mode, manifest and compressed inputs, dataset definitions, feature
store outputs, multi-instance training, and step types other than the six above (a definition
using them is refused before anything runs). Steps run one at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import operator
import os
import re
import subprocess
import sys
import tarfile
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OPT_ML = "/opt/ml"
REPO_ROOT = Path(__file__).resolve().parents[1]
STEP_TYPES = ("Processing", "Training", "Condition", "Fail", "RegisterModel", "Model")
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
PIPELINES = ("ingestion", "training", "monitoring")  # the builders pipelines.cli knows
# The image's commands on PATH (docker/train, docker/serve, the `mlops` console script).
IMAGE_COMMANDS = {
    "train": ["-m", "model_code.entrypoints", "train"],
    "serve": ["-m", "model_code.entrypoints", "serve"],
    "mlops": ["-m", "model_code.cli"],
}
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
_STEP_REF = re.compile(r"Steps\.([A-Za-z0-9_-]+)(.*)")
_PROPERTY_TOKEN = re.compile(r"\.(\w+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_COMPARISONS = {
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}
_LOG_TAIL = 1500


class DefinitionError(ValueError):
    """A definition the executor cannot run; refused before any step starts."""


class ParameterError(ValueError):
    """A start request's parameter that is unknown or of the wrong type; the message names it."""


class StepFailure(RuntimeError):
    """A step's failure; the message is its FailureReason."""


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


@dataclass
class _Node:
    spec: dict[str, Any]
    index: int  # position in the definition: ties in the order go to the earlier step
    depends: set[str]
    guard: tuple[str, bool] | None  # (condition step, outcome that runs this step)


@dataclass(frozen=True)
class _PropertyFileRef:
    step: str
    name: str


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


class _Run:
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

    # -- resolving expressions -------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Get":
                    return self.get(arg)
                if key == "Std:Join":
                    return _text(arg.get("On", "")).join(
                        _text(v) for v in self.resolve(arg.get("Values", []))
                    )
                if key == "Std:JsonGet":
                    return self.json_get(arg)
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def get(self, path: str) -> Any:
        kind, _, name = path.partition(".")
        if kind == "Parameters":
            return self.execution.parameters[name]
        if kind == "Execution":
            variables = {
                "PipelineExecutionId": self.execution.execution_id,
                "PipelineExecutionArn": self.execution.arn,
                "PipelineName": self.execution.pipeline_name,
                "PipelineArn": self.execution.arn.rsplit("/execution/", 1)[0],
                "StartDateTime": _iso(self.execution.start),
                "CurrentDateTime": _iso(_now()),
            }
            if name not in variables:
                raise StepFailure(f"{{'Get': '{path}'}}: unknown execution variable")
            return variables[name]
        if kind == "PipelineExperimentConfig":
            return {"ExperimentName": self.execution.pipeline_name, "TrialName": self.execution.execution_id}[
                name
            ]
        match = _STEP_REF.fullmatch(path) if kind == "Steps" else None
        if match is None:
            raise StepFailure(f"{{'Get': '{path}'}}: not a parameter, execution variable or step property")
        step, rest = match.groups()
        if rest.startswith(".PropertyFiles."):
            return _PropertyFileRef(step, rest[len(".PropertyFiles.") :])
        if step not in self.properties:
            raise StepFailure(f"{{'Get': '{path}'}}: step {step} has no properties")
        value: Any = self.properties[step]
        for token in _property_tokens(path, rest):
            value = _descend(value, token)
            if value is None:
                raise StepFailure(f"{{'Get': '{path}'}}: step {step} has no such property")
        return value

    def json_get(self, arg: dict[str, Any]) -> Any:
        if "PropertyFile" in arg:
            ref = self.resolve(arg["PropertyFile"])
            if not isinstance(ref, _PropertyFileRef):
                raise StepFailure(f"Std:JsonGet: {arg['PropertyFile']} is not a property file")
            uri = self.property_file_uri(ref)
        else:
            uri = _text(self.resolve(arg["S3Uri"]))
        if uri not in self._json_cache:
            bucket, key = _split_s3(uri)
            try:
                body = self.executor.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
                self._json_cache[uri] = json.loads(body)
            except Exception as exc:
                raise StepFailure(f"Std:JsonGet: cannot read {uri}: {exc}") from exc
        value = self._json_cache[uri]
        for token in re.findall(r"\[(\d+)\]|\['([^']*)'\]|([^.\[\]]+)", arg["Path"].removeprefix("$.")):
            index, quoted, plain = token
            value = _descend(value, int(index) if index else quoted or plain)
            if value is None:
                raise StepFailure(f"Std:JsonGet: {uri} has no value at {arg['Path']}")
        return value

    def property_file_uri(self, ref: _PropertyFileRef) -> str:
        spec = self.executor.nodes[ref.step].spec
        for pf in spec.get("PropertyFiles") or []:
            if pf["PropertyFileName"] == ref.name:
                outputs = self.properties[ref.step]["ProcessingOutputConfig"]["Outputs"]
                output = next(o for o in outputs if o["OutputName"] == pf["OutputName"])
                return f"{output['S3Output']['S3Uri'].rstrip('/')}/{pf['FilePath']}"
        raise StepFailure(f"step {ref.step} declares no property file {ref.name}")

    def holds(self, condition: dict[str, Any]) -> bool:
        kind = condition["Type"]
        if kind == "Not":
            return not self.holds(condition.get("Condition") or condition["Expression"])
        if kind == "Or":
            return any(self.holds(c) for c in condition["Conditions"])
        if kind == "In":
            query = self.resolve(condition["QueryValue"])
            return any(_equal(query, self.resolve(v)) for v in condition["Values"])
        left, right = self.resolve(condition["LeftValue"]), self.resolve(condition["RightValue"])
        if kind == "Equals":
            return _equal(left, right)
        if kind not in _COMPARISONS:
            raise StepFailure(
                f"condition type {kind} is not one of Equals, In, Not, Or, {', '.join(_COMPARISONS)}"
            )
        try:
            return _COMPARISONS[kind](*_comparable(left, right))
        except TypeError as exc:
            raise StepFailure(f"{kind}: cannot compare {left!r} with {right!r}") from exc

    # -- container steps -------------------------------------------------------------------

    def processing(self, record: StepRecord, args: dict[str, Any]) -> None:
        job = self.job_name(record.name)
        request = {**args, "ProcessingJobName": job}
        self.validate("CreateProcessingJob", request)
        count = args["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
        hosts = [f"algo-{i + 1}" for i in range(count)]
        roots = {h: self.step_dir(record.name) / h for h in hosts}
        outputs = args.get("ProcessingOutputConfig", {}).get("Outputs") or []
        for inp in args.get("ProcessingInputs") or []:
            self.download_input(inp, roots)
        for out in outputs:
            if "S3Output" not in out:
                raise StepFailure(f"output {out.get('OutputName')}: only S3 outputs run locally")
            for root in roots.values():
                _remap_path(out["S3Output"]["LocalPath"], root).mkdir(parents=True, exist_ok=True)
        app = args["AppSpecification"]
        if not app.get("ContainerEntrypoint"):
            raise StepFailure("AppSpecification has no ContainerEntrypoint and the project image has none")
        runs = {}
        for host, root in roots.items():
            config = root / "config"
            config.mkdir(parents=True, exist_ok=True)
            (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
            (config / "processingjobconfig.json").write_text(json.dumps(request, default=str))
            argv = self.command(app["ContainerEntrypoint"], app.get("ContainerArguments"), root)
            runs[host] = (argv, self.container_env(root, host, hosts, args.get("Environment")))
        self.run_containers(record, runs, args.get("StoppingCondition"))
        for out in outputs:
            for root in roots.values():
                self.upload_tree(_remap_path(out["S3Output"]["LocalPath"], root), out["S3Output"]["S3Uri"])
        arn = f"arn:aws:sagemaker:{self.executor.region}:{self.executor.account}:processing-job/{job.lower()}"
        self.properties[record.name] = {
            **request,
            "ProcessingJobArn": arn,
            "ProcessingJobStatus": "Completed",
        }
        record.metadata = {"ProcessingJob": {"Arn": arn}}
        record.outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs}

    def training(self, record: StepRecord, args: dict[str, Any]) -> None:
        job = self.job_name(record.name)
        request = {**args, "TrainingJobName": job}
        self.validate("CreateTrainingJob", request)
        if args["ResourceConfig"].get("InstanceCount", 1) != 1:
            raise StepFailure("ResourceConfig.InstanceCount: the local executor trains on one instance")
        root = self.step_dir(record.name) / "algo-1"
        env = self.container_env(root, "algo-1", ["algo-1"], args.get("Environment"))
        channels = []
        for channel in args.get("InputDataConfig") or []:
            name, source = channel["ChannelName"], channel["DataSource"].get("S3DataSource")
            if source is None:
                raise StepFailure(f"channel {name}: only S3 data sources run locally")
            local = root / "input" / "data" / name
            self.download(source["S3Uri"], source.get("S3DataType", "S3Prefix"), {local: (0, 1)}, name)
            env[f"SM_CHANNEL_{name.upper()}"] = str(local)
            channels.append(name)
        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(args.get("HyperParameters") or {}))
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
        )
        (config / "inputdataconfig.json").write_text(
            json.dumps(
                {c["ChannelName"]: {"TrainingInputMode": "File"} for c in args.get("InputDataConfig") or []}
            )
        )
        for folder in ("model", "output/data"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        env.update(
            SM_MODEL_DIR=str(root / "model"),
            SM_CHANNELS=json.dumps(channels),
            SM_INPUT_DIR=str(root / "input"),
            SM_INPUT_CONFIG_DIR=str(config),
            SM_OUTPUT_DIR=str(root / "output"),
            SM_OUTPUT_DATA_DIR=str(root / "output" / "data"),
        )
        algorithm = args["AlgorithmSpecification"]
        argv = self.command(
            algorithm.get("ContainerEntrypoint") or ["train"], algorithm.get("ContainerArguments"), root
        )
        self.run_containers(record, {"algo-1": (argv, env)}, args.get("StoppingCondition"))
        prefix = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output"
        model_uri = f"{prefix}/model.tar.gz"
        self.upload_file(_pack(root / "model", self.step_dir(record.name) / "model.tar.gz"), model_uri)
        if any((root / "output" / "data").iterdir()):
            self.upload_file(
                _pack(root / "output" / "data", self.step_dir(record.name) / "output.tar.gz"),
                f"{prefix}/output.tar.gz",
            )
        arn = f"arn:aws:sagemaker:{self.executor.region}:{self.executor.account}:training-job/{job.lower()}"
        self.properties[record.name] = {
            **request,
            "TrainingJobArn": arn,
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        }
        record.metadata = {"TrainingJob": {"Arn": arn}}
        record.outputs = {"TrainingJobName": job, "ModelArtifacts": model_uri}

    def command(self, entrypoint: list[str], arguments: list[str] | None, root: Path) -> list[str]:
        argv = [_remap(str(a), root) for a in [*entrypoint, *(arguments or [])]]
        head = os.path.basename(argv[0])
        if _PYTHON.fullmatch(head):
            return [self.executor.python, *argv[1:]]
        if head in IMAGE_COMMANDS:
            return [self.executor.python, *IMAGE_COMMANDS[head], *argv[1:]]
        return argv

    def container_env(
        self, root: Path, host: str, hosts: list[str], environment: dict | None
    ) -> dict[str, str]:
        # A step sees what a container would: credentials and endpoint of the caller (its role),
        # the step's Environment, and SageMaker's variables, none leaked from the caller's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
        env.update(self.executor.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        if self.executor.region:
            env.setdefault("AWS_DEFAULT_REGION", self.executor.region)
        env.update({k: _remap(str(v), root) for k, v in (environment or {}).items()})
        env.update(
            SM_CURRENT_HOST=host,
            SM_HOSTS=",".join(hosts),
            SM_RESOURCE_CONFIG=str(root / "config" / "resourceconfig.json"),
            SM_FAILURE_FILE=str(root / "output" / "failure"),
        )
        (root / "output").mkdir(parents=True, exist_ok=True)
        return env

    def run_containers(self, record: StepRecord, runs: dict[str, tuple], stopping: dict | None) -> None:
        """Run each host's process at once; the first failing host's reason fails the step."""
        timeout = (stopping or {}).get("MaxRuntimeInSeconds")
        step_dir = self.step_dir(record.name)
        record.logs = [str(step_dir / f"{host}.log") for host in runs]

        def run(host: str) -> str | None:
            argv, env = runs[host]
            log_path = step_dir / f"{host}.log"
            with log_path.open("wb") as out:
                try:
                    proc = subprocess.Popen(
                        argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                    )
                except OSError as exc:
                    return f"cannot start {argv[0]}: {exc}"
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    return f"MaxRuntimeExceeded: stopped after {timeout} s (StoppingCondition.MaxRuntimeInSeconds)"
            if code == 0:
                return None
            failure = Path(env["SM_FAILURE_FILE"])
            if failure.is_file() and failure.read_text().strip():
                return failure.read_text().strip()
            tail = log_path.read_text(errors="replace")[-_LOG_TAIL:].strip()
            return f"AlgorithmError: exit status {code}; log tail: {tail}"

        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            reasons = dict(zip(runs, pool.map(run, runs), strict=True))
        failed = [(host, reason) for host, reason in reasons.items() if reason]
        if failed:
            host, reason = failed[0]
            raise StepFailure(reason if len(runs) == 1 else f"{host}: {reason}")

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

    def validate(self, operation: str, request: dict[str, Any]) -> None:
        """Refuse what SageMaker's API would (wrong types, missing fields), in botocore's words."""
        from botocore.exceptions import ParamValidationError
        from botocore.validate import ParamValidator

        shape = self.executor.client("sagemaker").meta.service_model.operation_model(operation).input_shape
        report = ParamValidator().validate(request, shape)
        if report.has_errors():
            raise StepFailure(str(ParamValidationError(report=report.generate_report())))

    # -- files -----------------------------------------------------------------------------

    def download_input(self, inp: dict[str, Any], roots: dict[str, Path]) -> None:
        name, s3 = inp.get("InputName"), inp.get("S3Input")
        if s3 is None:
            raise StepFailure(f"input {name}: only S3 inputs run locally")
        for key, allowed in (("S3InputMode", ("File", "FastFile")), ("S3CompressionType", ("None",))):
            if s3.get(key, allowed[0]) not in allowed:
                raise StepFailure(
                    f"input {name}: {key} {s3[key]} does not run locally ({' | '.join(allowed)} do)"
                )
        sharded = s3.get("S3DataDistributionType") == "ShardedByS3Key"
        targets = {
            _remap_path(s3["LocalPath"], root): (i, len(roots)) if sharded else (0, 1)
            for i, root in enumerate(roots.values())
        }
        self.download(s3["S3Uri"], s3.get("S3DataType", "S3Prefix"), targets, name)

    def download(
        self, uri: str, data_type: str, targets: dict[Path, tuple[int, int]], name: str | None
    ) -> None:
        """Copy the objects under ``uri`` to each target folder; (i, n) takes every n-th from the i-th."""
        if data_type != "S3Prefix":
            raise StepFailure(f"input {name}: S3DataType {data_type} does not run locally (S3Prefix does)")
        bucket, prefix = _split_s3(uri)
        s3 = self.executor.client("s3")
        keys = sorted(
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")
        )
        if not keys:
            raise StepFailure(f"input {name}: no S3 objects found under {uri}")
        for folder, (index, count) in targets.items():
            folder.mkdir(parents=True, exist_ok=True)
            for key in keys[index::count]:
                relative = os.path.basename(key) if key == prefix else key[len(prefix) :].lstrip("/")
                dest = folder / relative
                dest.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, key, str(dest))

    def upload_tree(self, folder: Path, uri: str) -> None:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            self.upload_file(path, f"{uri.rstrip('/')}/{path.relative_to(folder).as_posix()}")

    def upload_file(self, path: Path, uri: str) -> None:
        bucket, key = _split_s3(uri)
        self.executor.client("s3").upload_file(str(path), bucket, key)

    def step_dir(self, step: str) -> Path:
        path = self.execution.work_dir / step
        path.mkdir(parents=True, exist_ok=True)
        return path

    def job_name(self, step: str) -> str:
        # SageMaker names a step's job pipelines-<execution id>-<step>-<suffix>, ≤ 63 characters.
        return re.sub(r"[^A-Za-z0-9-]", "-", f"pipelines-{self.execution.execution_id}-{step}")[:63]


# -- the definition's graph ----------------------------------------------------------------


def _flatten(
    steps: list[dict[str, Any]], guard: tuple[str, bool] | None = None, nodes: dict | None = None
) -> dict[str, _Node]:
    """Every step, condition branches included, with what it depends on."""
    nodes = {} if nodes is None else nodes
    for spec in steps:
        name, kind = spec.get("Name"), spec.get("Type")
        if not name or name in nodes:
            raise DefinitionError(f"step {name!r}: every step needs a unique Name")
        if kind not in STEP_TYPES:
            raise DefinitionError(
                f"step {name}: type {kind} does not run locally; these do: {', '.join(STEP_TYPES)}"
            )
        args = spec.get("Arguments") or {}
        scanned = {"Conditions": args.get("Conditions")} if kind == "Condition" else args
        depends = set(spec.get("DependsOn") or [])
        for ref in _gets(scanned):
            if ref.startswith("Steps."):
                match = _STEP_REF.fullmatch(ref)
                if match is None:
                    raise DefinitionError(f"step {name}: {ref} does not name a step")
                depends.add(match.group(1))
        if guard:
            depends.add(guard[0])
        nodes[name] = _Node(spec, len(nodes), depends, guard)
        if kind == "Condition":
            _flatten(args.get("IfSteps") or [], (name, True), nodes)
            _flatten(args.get("ElseSteps") or [], (name, False), nodes)
    return nodes


def _order(nodes: dict[str, _Node], parameters: set[str]) -> list[str]:
    """The steps in dependency order, earlier-defined first among those ready together."""
    for name, node in nodes.items():
        for ref in _gets(node.spec.get("Arguments") or {}):
            if ref.startswith("Parameters.") and ref.split(".", 1)[1] not in parameters:
                raise DefinitionError(f"step {name}: refers to {ref}, which the definition does not declare")
        for dep in node.depends:
            if dep not in nodes or dep == name:
                raise DefinitionError(f"step {name}: depends on {dep}, which is not another step")
    order: list[str] = []
    pending = dict(nodes)
    while pending:
        ready = [n for n in pending.values() if not (n.depends & pending.keys())]
        if not ready:
            raise DefinitionError(f"steps depend on each other in a cycle: {', '.join(pending)}")
        first = min(ready, key=lambda n: n.index)
        order.append(first.spec["Name"])
        del pending[first.spec["Name"]]
    return order


def _gets(value: Any) -> list[str]:
    """Every {"Get": path} in a value, at any depth."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            return [value["Get"]]
        return [ref for v in value.values() for ref in _gets(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _gets(v)]
    return []


# -- values --------------------------------------------------------------------------------


def _coerce(name: str, kind: str, value: Any) -> Any:
    """A parameter's value as its declared type; StartPipelineExecution passes strings too."""
    text = value.strip() if isinstance(value, str) else None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "String" and isinstance(value, str):
        return value
    if kind == "Integer":
        if number and isinstance(value, int):
            return value
        if text is not None and re.fullmatch(r"[+-]?\d+", text):
            return int(text)
    if kind == "Float":
        if number and math.isfinite(value):
            return float(value)
        if text is not None and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            return float(text)
    if kind == "Boolean":
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
    if kind not in PARAMETER_TYPES:
        raise DefinitionError(f"parameter {name}: type {kind} is not one of {', '.join(PARAMETER_TYPES)}")
    article = "an" if kind[0] in "AEIOU" else "a"
    raise ParameterError(f"parameter {name}: expected {article} {kind}, got {value!r}")


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


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    # A JsonGet may return "0.81" where the other side is a Float parameter: compare as numbers.
    def is_number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    for a, b in ((left, right), (right, left)):
        if is_number(a) and isinstance(b, str):
            try:
                converted = float(b)
            except ValueError:
                break
            return (left, converted) if b is right else (converted, right)
    return left, right


def _equal(left: Any, right: Any) -> bool:
    return operator.eq(*_comparable(left, right))


def _property_tokens(path: str, rest: str) -> list[str | int]:
    tokens: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _PROPERTY_TOKEN.match(rest, position)
        if not match:
            raise StepFailure(f"{{'Get': '{path}'}}: cannot read the property path at {rest[position:]!r}")
        name, index, single, double = match.groups()
        tokens.append(int(index) if index else name or single or double)
        position = match.end()
    return tokens


def _descend(value: Any, token: str | int) -> Any:
    """value[token]; a list is also indexed by an element's name (Outputs['train'])."""
    if isinstance(value, dict):
        return value.get(token) if isinstance(token, str) else None
    if isinstance(value, list):
        if isinstance(token, int):
            return value[token] if -len(value) <= token < len(value) else None
        for item in value:
            if isinstance(item, dict) and any(k.endswith("Name") and v == token for k, v in item.items()):
                return item
    return None


# -- paths and files -----------------------------------------------------------------------


def _remap(arg: str, root: Path) -> str:
    """``/opt/ml/x`` → ``<root>/x``, also as the value of ``--option=/opt/ml/x``."""
    if arg == OPT_ML or arg.startswith(OPT_ML + "/"):
        return str(root) + arg[len(OPT_ML) :]
    option, sep, value = arg.partition("=")
    if sep and option.startswith("-") and (value == OPT_ML or value.startswith(OPT_ML + "/")):
        return f"{option}={root}{value[len(OPT_ML) :]}"
    return arg


def _remap_path(path: str, root: Path) -> Path:
    remapped = _remap(path, root)
    if remapped == path:
        raise StepFailure(f"{path}: a container path must be under {OPT_ML}")
    return Path(remapped)


def _split_s3(uri: Any) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise StepFailure(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _pack(folder: Path, archive: Path) -> Path:
    """folder's files as a .tar.gz with the files at its root, as SageMaker packs /opt/ml/model."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    return archive


def _default_work_root(pipeline_name: str) -> Path:
    from model_code.tracking import state_dir

    return state_dir() / "pipelines" / pipeline_name


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


# -- command line --------------------------------------------------------------------------


def named_definition(name: str, *, region: str | None, bucket: str | None, schema: str | None) -> str:
    """One of the project's pipelines, built as ``mlops pipeline definition`` builds it."""
    import warnings

    from pipelines import cli, common

    # Building logs what the SDK leaves out and warns that a PipelineSession starts no job.
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    try:
        return cli.build_definition(
            name,
            region=region or common.DEFAULT_REGION,
            bucket=bucket or common.PLACEHOLDER_BUCKET,
            schema_path=schema,
        )
    except (cli.BuilderMissing, ValueError) as exc:
        raise DefinitionError(f"--pipeline {name}: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops pipeline run",
        description="Run a SageMaker pipeline definition on this machine (S3 and SageMaker calls go "
        "wherever boto3 points, e.g. AWS_ENDPOINT_URL).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--definition", metavar="FILE", help="a definition JSON, as Pipeline.definition() returns"
    )
    source.add_argument("--pipeline", choices=PIPELINES, help="one of the project's pipelines")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter (repeatable)",
    )
    built = parser.add_argument_group("with --pipeline: what the definition is built for")
    built.add_argument("--region", help="default: the placeholder region of pipelines.common")
    built.add_argument("--bucket", help="the artifact bucket (default: the placeholder bucket)")
    built.add_argument("--schema", help="the data contract (default: the example schema)")
    parser.add_argument("--pipeline-name", help="default: the file's name without .json, or --pipeline")
    parser.add_argument(
        "--work-dir", help="where executions keep their files (default: .state/pipelines/<name>)"
    )
    parser.add_argument("--execution-id", help="default: 12 random characters, as SageMaker's")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``mlops pipeline run``: 0 when the execution succeeds, 1 when it fails, 2 when refused."""
    parser = build_parser()
    args = parser.parse_args(argv)
    parameters = {}
    for item in args.parameter:
        name, sep, value = item.partition("=")
        if not (sep and name):
            parser.error(f"--parameter {item!r}: expected NAME=VALUE")
        parameters[name] = value
    if not log.handlers:  # progress lines, one per step transition
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        if args.definition:
            definition = Path(args.definition).read_text()
            default_name = Path(args.definition).name.removesuffix(".json")
        else:
            built = {"region": args.region, "bucket": args.bucket, "schema": args.schema}
            definition, default_name = named_definition(args.pipeline, **built), args.pipeline
        executor = LocalExecutor(
            definition, pipeline_name=args.pipeline_name or default_name, work_dir=args.work_dir
        )
        execution = executor.start(parameters, execution_id=args.execution_id)
    except (DefinitionError, ParameterError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for record in execution.steps:
        seconds = (record.end - record.start).total_seconds() if record.end and record.start else 0.0
        detail = record.failure_reason or ", ".join(f"{k} {_text(v)}" for k, v in record.outputs.items())
        print(f"{record.status:<10} {record.name:<28} {record.type:<14} {seconds:7.1f} s  {detail}")
    print(f"execution {execution.execution_id}: {execution.status}", end="")
    print(f": {execution.failure_reason}" if execution.failure_reason else "")
    print(f"record: {execution.work_dir / 'execution.json'}")
    return 0 if execution.status == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
