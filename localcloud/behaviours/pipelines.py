"""SageMaker pipeline executions that really run, in the background, with SageMaker's statuses and events.

``StartPipelineExecution`` (from a user, an EventBridge target or a schedule) checks the
parameters against the pipeline's stored definition (a 400 ``ValidationException`` naming the
parameter, as SageMaker answers), records the execution as ``Executing`` and runs the stored
definition with the pipelines' local executor (:mod:`pipelines.local`) in a thread, its AWS calls
and its containers' pointed at the emulator. While and after it runs:

* ``DescribePipelineExecution`` / ``ListPipelineExecutions`` report ``Executing``, ``Stopping``,
  ``Stopped``, ``Failed`` (with the failing step's reason) or ``Succeeded``; the list honours
  ``SortOrder`` (newest first by default, as SageMaker);
* ``ListPipelineExecutionSteps`` (added) lists the steps that started, with status, times,
  failure reason and SageMaker's step metadata (``ProcessingJob``/``TrainingJob`` ARN,
  ``Condition`` outcome, ``RegisterModel`` ARN, ``Fail`` message);
* ``StopPipelineExecution`` (added) moves the execution to ``Stopping``; no further step starts
  and it ends ``Stopped``; a repeat is accepted (the retrain guard relies on it);
* ``DescribeProcessingJob`` / ``DescribeTrainingJob`` answer for the jobs of completed steps;
* every status change emits "SageMaker Model Building Pipeline Execution Status Change";
* SageMaker's execution metrics are published under ``AWS/Sagemaker/ModelBuildingPipeline``
  by ``PipelineName``, as its developer guide lists them: ``ExecutionStarted`` at the start,
  ``ExecutionSucceeded``, ``ExecutionFailed`` or ``ExecutionStopped`` at the end (each 1, unit
  ``Count``) with ``ExecutionDuration`` (``Milliseconds``: how long the run really took, the
  virtual clock standing still while its jobs run), at the virtual time of the transition.

A step that waits (``EngineerFeatures``, for the offline store to show the records ingestion
reported) moves the virtual clock instead of sleeping: executions get ``MLOPS_VIRTUAL_CLOCK``,
the control route's address (``model_code.training.offline_store``).

Start times come from the virtual clock, kept strictly increasing (a millisecond apart) so two
executions started in the same instant are ordered as they started.

Not emulated: a running step is not interrupted by a stop (the stop takes effect before the next
step); jobs of failed steps are not visible; step times are wall-clock; parallelism limits; step
retries and caching; the step status-change events.
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from moto.cloudwatch.models import MetricDatum, cloudwatch_backends
from moto.sagemaker import models as sm_models
from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.utils import get_pipeline_execution_from_arn, get_pipeline_from_name

from localcloud.behaviours import events
from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher
from localcloud.emulator import authorisation
from localcloud.emulator.session import EmulatorSession
from pipelines.local import DefinitionError, Execution, LocalExecutor, ParameterError

# The executor's step loop: running it on an Execution we hold lets the API watch it live.
from pipelines.local.errors import StepFailure
from pipelines.local.executor import _Run

STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
TERMINAL = ("Succeeded", "Failed", "Stopped")
# Where SageMaker publishes execution metrics (its developer guide, "SageMaker pipelines metrics").
METRICS_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"


class _Stopped(Exception):
    """Raised at the next record write once a stop was asked: no further step starts."""


# Step kind: the job SageMaker creates for it, where its image and its log group are named.
_JOBS = {
    "Processing": (
        "CreateProcessingJob",
        "processing-job",
        ("AppSpecification", "ImageUri"),
        "ProcessingJobs",
    ),
    "Training": (
        "CreateTrainingJob",
        "training-job",
        ("AlgorithmSpecification", "TrainingImage"),
        "TrainingJobs",
    ),
}


class _JobAuthoriser:
    """What SageMaker does to start a step's job, authorised as AWS would before the step runs:
    the pipeline's role creates the job and passes the job's role to SageMaker; the job's role
    pulls the image and writes the job's logs. A refusal fails the step naming it."""

    def __init__(self, pipeline_role: str, pipeline_arn: str) -> None:
        self.pipeline = authorisation.role_principal(pipeline_role, "SageMaker")
        self.prefix = pipeline_arn.split(":pipeline/", 1)[0]
        self.region, self.account = pipeline_arn.split(":")[3:5]

    def __call__(self, kind: str, name: str, args: dict[str, Any]) -> None:
        if kind not in _JOBS:
            return
        create, resource_type, (section, field), logs = _JOBS[kind]
        role = args.get("RoleArn", "")
        job = authorisation.role_principal(role, "SageMaker")
        image = (args.get(section) or {}).get(field, "")
        repository = image.split("/", 1)[-1].split("@")[0].split(":")[0]
        group = f"arn:aws:logs:{self.region}:{self.account}:log-group:/aws/sagemaker/{logs}"
        checks = [
            (
                self.pipeline,
                f"sagemaker:{create}",
                f"{self.prefix}:{resource_type}/pipelines-{name.lower()}",
                {},
            ),
            (self.pipeline, "iam:PassRole", role, {"iam:passedtoservice": ["sagemaker.amazonaws.com"]}),
            (job, "ecr:GetAuthorizationToken", "*", {}),
            (
                job,
                "ecr:BatchGetImage",
                f"arn:aws:ecr:{self.region}:{self.account}:repository/{repository}",
                {},
            ),
            (job, "logs:CreateLogStream", f"{group}:log-stream:{name}", {}),
            (job, "logs:PutLogEvents", f"{group}:log-stream:{name}", {}),
        ]
        try:
            for principal, action, resource, context in checks:
                authorisation.authorise(principal, action, resource, context)
        except authorisation.AccessDenied as denial:
            raise StepFailure(f"AccessDenied: {denial}") from None


class _WatchedExecution(Execution):
    """An Execution that tells the emulator about each write, and stops when asked."""

    def __init__(self, *args: Any, on_write: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_write = on_write
        self.stop_requested = False
        self.run: _Run | None = None

    def write(self) -> Path:
        if self.stop_requested and self.status == "Executing":
            raise _Stopped
        path = super().write()
        self.on_write(self)
        return path


def _with_local_tracking(backend: Any, definition: str) -> str:
    """The definition a run executes: a step's MLflow tracking server ARN becomes its local URL.

    On AWS the sagemaker-mlflow plugin resolves the ARN (with SigV4 and artifacts written
    straight to S3); here the emulator's tracking server is a plain MLflow server, which its
    clients must be given as an http URL, as a user of the local cloud would be. The stored
    definition (DescribePipeline) keeps the ARN.
    """
    servers = backend.__dict__.get("mlops_mlflow_servers", {})
    for server in servers.values():
        definition = definition.replace(server["TrackingServerArn"], server["TrackingServerUrl"])
    return definition


class PipelineBehaviour:
    def __init__(self, clock: Clock, patcher: Patcher, endpoint_url: str | None) -> None:
        self.clock = clock
        self.endpoint_url = endpoint_url
        self._workdir = tempfile.TemporaryDirectory(prefix="mlops-executions-")
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()
        self._last_start = clock.naive_now() - timedelta(seconds=1)
        backend = sm_models.SageMakerModelBackend
        behaviour = self
        patcher.wrap(
            backend,
            "start_pipeline_execution",
            lambda original: lambda be, *args, **kwargs: behaviour.start(original, be, *args, **kwargs),
        )
        patcher.set(backend, "describe_pipeline_execution", _describe_execution)
        for job in ("processing", "training"):
            patcher.wrap(backend, f"describe_{job}_job", _describe_job(job))
        patcher.set(sm_responses.SageMakerResponse, "list_pipeline_executions", _list_executions)
        patcher.set(sm_responses.SageMakerResponse, "list_pipeline_execution_steps", _list_steps)
        patcher.set(sm_responses.SageMakerResponse, "stop_pipeline_execution", _stop)
        patcher.on_restore(self.close)

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=60)
        self._workdir.cleanup()

    def wait(self, timeout: float = 60) -> None:
        """Block until every execution started so far has ended (for tests and scripted runs)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def start(
        self,
        original: Any,
        backend: Any,
        pipeline_name: str,
        display_name: str | None,
        parameters: list[dict[str, str]] | None,
        description: str | None,
        parallelism: Any,
        token: str | None,
    ) -> dict[str, str]:
        if self.endpoint_url is None:
            raise ValidationError(
                "endpoint_url: install(endpoint_url=...) is needed to run pipeline executions"
            )
        pipeline = get_pipeline_from_name(backend.pipelines, pipeline_name)
        # SageMaker runs the pipeline's steps as the pipeline's role, assumed as the service.
        try:
            credentials = authorisation.service_credentials(
                pipeline.role_arn, "sagemaker.amazonaws.com", pipeline.arn
            )
        except authorisation.AccessDenied as denial:
            raise ValidationError(f"RoleArn: SageMaker cannot assume {pipeline.role_arn}: {denial}") from None
        session = EmulatorSession(self.endpoint_url, backend.region_name, credentials)
        try:
            executor = LocalExecutor(
                _with_local_tracking(backend, pipeline.pipeline_definition),
                pipeline_name=pipeline.pipeline_name,
                work_dir=self._workdir.name,
                boto_session=session,
                before_step=_JobAuthoriser(pipeline.role_arn, pipeline.arn),
                env={
                    "AWS_ENDPOINT_URL": self.endpoint_url,
                    "AWS_DEFAULT_REGION": backend.region_name,
                    "AWS_REGION": backend.region_name,
                    "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
                    "AWS_SESSION_TOKEN": credentials["aws_session_token"],
                    # A step that waits (EngineerFeatures, for the offline store) moves the
                    # virtual clock instead of sleeping (model_code.training.offline_store).
                    "MLOPS_VIRTUAL_CLOCK": f"{self.endpoint_url}/_mlops/clock",
                },
            )
            # The executor's own check, made before answering, as SageMaker refuses bad parameters.
            values = executor._resolve_parameters({p["Name"]: p["Value"] for p in parameters or []})
        except (DefinitionError, ParameterError) as error:
            raise ValidationError(str(error)) from error
        answer = original(
            backend, pipeline_name, display_name, parameters or [], description, parallelism, token
        )
        fake = pipeline.pipeline_executions[answer["PipelineExecutionArn"]]
        with self._lock:
            start = max(self.clock.naive_now(), self._last_start + timedelta(milliseconds=1))
            self._last_start = start
        fake.creation_time = fake.start_time = fake.last_modified_time = start
        fake.pipeline_execution_status = "Executing"
        fake.pipeline_execution_display_name = display_name or fake.arn.rsplit("/", 1)[-1]
        execution_id = fake.arn.rsplit("/", 1)[-1]
        work_dir = Path(self._workdir.name) / pipeline.pipeline_name / execution_id
        work_dir.mkdir(parents=True)
        execution = _WatchedExecution(
            pipeline.pipeline_name,
            execution_id,
            fake.arn,
            work_dir,
            values,
            # Execution.StartDateTime (ingestion stamps rows with it) is on the virtual clock.
            start=self.clock.now(),
            on_write=lambda e: self._sync(backend, pipeline, fake, e),
        )
        fake.mlops_execution = execution
        fake.mlops_wall_start = time.monotonic()
        # SageMaker reports the first transition as from Starting.
        self._emit(backend, pipeline, fake, previous="Starting")
        self._publish(backend, pipeline.pipeline_name, {"ExecutionStarted": (1.0, "Count")})
        thread = threading.Thread(
            target=self._run, args=(executor, execution, backend, pipeline, fake), daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return answer

    def _run(
        self, executor: LocalExecutor, execution: _WatchedExecution, backend: Any, pipeline: Any, fake: Any
    ) -> None:
        run = _Run(executor, execution)
        execution.run = run
        try:
            run.run()
        except _Stopped:
            if execution.steps and execution.steps[-1].status == "Executing":
                execution.steps.pop()  # recorded, but stopped before it started
            execution.status = "Stopped"
        except Exception as error:  # the executor failed outside a step: the execution fails
            execution.status, execution.failure_reason = "Failed", f"{type(error).__name__}: {error}"
        self._sync(backend, pipeline, fake, execution)

    def _sync(self, backend: Any, pipeline: Any, fake: Any, execution: _WatchedExecution) -> None:
        with self._lock:
            if execution.run is not None:
                _record_jobs(backend, execution)
            status = execution.status
            if status == "Executing" and execution.stop_requested:
                status = "Stopping"
            previous = fake.pipeline_execution_status
            if status == previous or previous in TERMINAL:
                return
            fake.pipeline_execution_status = status
            fake.pipeline_execution_failure_reason = execution.failure_reason
            fake.last_modified_time = max(self.clock.naive_now(), fake.start_time)
            fake.end_time = fake.last_modified_time if status in TERMINAL else None
        self._emit(backend, pipeline, fake, previous)
        if status in TERMINAL:
            milliseconds = (time.monotonic() - getattr(fake, "mlops_wall_start", time.monotonic())) * 1000
            self._publish(
                backend,
                pipeline.pipeline_name,
                {f"Execution{status}": (1.0, "Count"), "ExecutionDuration": (milliseconds, "Milliseconds")},
            )

    def _publish(self, backend: Any, pipeline_name: str, values: dict[str, tuple[float, str]]) -> None:
        """SageMaker's execution metrics, as PutMetricData would store them, at the clock's time."""
        data = cloudwatch_backends[backend.account_id][backend.region_name].metric_data
        dims = [{"Name": "PipelineName", "Value": pipeline_name}]
        stamp = self.clock.naive_now()
        for metric, (value, unit) in values.items():
            data.append(MetricDatum(METRICS_NAMESPACE, metric, value, dims, stamp, unit))

    def _emit(self, backend: Any, pipeline: Any, fake: Any, previous: str) -> None:
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        detail = {
            "pipelineExecutionDisplayName": fake.pipeline_execution_display_name,
            "currentPipelineExecutionStatus": fake.pipeline_execution_status,
            "executionStartTime": fake.start_time.strftime(stamp),
            "pipelineArn": pipeline.arn,
            "pipelineExecutionArn": fake.arn,
        }
        if fake.pipeline_execution_description:
            detail["pipelineExecutionDescription"] = fake.pipeline_execution_description
        if previous:
            detail["previousPipelineExecutionStatus"] = previous
        if getattr(fake, "end_time", None):
            detail["executionEndTime"] = fake.end_time.strftime(stamp)
        events.emit(
            backend.account_id,
            backend.region_name,
            source="aws.sagemaker",
            detail_type=STATUS_CHANGE,
            detail=detail,
            resources=[pipeline.arn, fake.arn],
        )


def _record_jobs(backend: Any, execution: _WatchedExecution) -> None:
    jobs = backend.__dict__.setdefault("mlops_jobs", {})
    for record in execution.steps:
        for kind in ("ProcessingJob", "TrainingJob"):
            if kind in record.metadata and record.name in execution.run.context.properties:
                described = dict(execution.run.context.properties[record.name])
                # SageMaker names are unique ignoring case; step metadata ARNs carry them lowercased.
                name = described[f"{kind}Name"].lower()
                if name in jobs:
                    continue
                described |= {
                    "CreationTime": record.start,
                    "LastModifiedTime": record.end,
                    f"{kind.removesuffix('Job')}StartTime"
                    if kind == "ProcessingJob"
                    else "TrainingStartTime": record.start,
                    f"{kind.removesuffix('Job')}EndTime"
                    if kind == "ProcessingJob"
                    else "TrainingEndTime": record.end,
                }
                jobs[name] = described


def _describe_job(kind: str) -> Any:
    def wrap(original: Any) -> Any:
        def describe(backend: Any, name: str) -> Any:
            found = backend.__dict__.get("mlops_jobs", {}).get(name.lower())
            return dict(found) if found else original(backend, name)

        return describe

    return wrap


def _describe_execution(backend: Any, arn: str) -> dict[str, Any]:
    fake = get_pipeline_execution_from_arn(backend.pipelines, arn)
    pipeline = get_pipeline_from_name(backend.pipelines, arn.split(":pipeline/", 1)[1].split("/", 1)[0])
    answer = {
        "PipelineArn": pipeline.arn,
        "PipelineExecutionArn": fake.arn,
        "PipelineExecutionDisplayName": fake.pipeline_execution_display_name,
        "PipelineExecutionStatus": fake.pipeline_execution_status,
        "PipelineExperimentConfig": {},
        "CreationTime": fake.creation_time,
        "LastModifiedTime": fake.last_modified_time,
        "CreatedBy": fake.created_by,
        "LastModifiedBy": fake.last_modified_by,
    }
    if fake.pipeline_execution_description:
        answer["PipelineExecutionDescription"] = fake.pipeline_execution_description
    if fake.pipeline_execution_failure_reason:
        answer["FailureReason"] = fake.pipeline_execution_failure_reason
    if fake.parallelism_configuration:
        answer["ParallelismConfiguration"] = fake.parallelism_configuration
    return answer


def _list_executions(self: Any) -> Any:
    pipeline = get_pipeline_from_name(self.sagemaker_backend.pipelines, self._get_param("PipelineName"))
    summaries = []
    for fake in pipeline.pipeline_executions.values():
        summary = {
            "PipelineExecutionArn": fake.arn,
            "StartTime": fake.start_time,
            "PipelineExecutionStatus": fake.pipeline_execution_status,
            "PipelineExecutionDisplayName": fake.pipeline_execution_display_name,
        }
        if fake.pipeline_execution_description:
            summary["PipelineExecutionDescription"] = fake.pipeline_execution_description
        if fake.pipeline_execution_failure_reason:
            summary["PipelineExecutionFailureReason"] = fake.pipeline_execution_failure_reason
        summaries.append(summary)
    summaries.sort(key=lambda s: (s["StartTime"], s["PipelineExecutionArn"]))
    if self._get_param("SortOrder", "Descending") == "Descending":
        summaries.reverse()
    return sm_responses.ActionResult({"PipelineExecutionSummaries": summaries})


def _list_steps(self: Any) -> Any:
    fake = get_pipeline_execution_from_arn(
        self.sagemaker_backend.pipelines, self._get_param("PipelineExecutionArn")
    )
    execution = getattr(fake, "mlops_execution", None)
    steps = []
    for record in list(execution.steps if execution else []):
        step: dict[str, Any] = {
            "StepName": record.name,
            "StepStatus": record.status,
            "Metadata": record.metadata,
            "AttemptCount": 1,
        }
        if record.start:
            step["StartTime"] = record.start
        if record.end:
            step["EndTime"] = record.end
        if record.failure_reason:
            step["FailureReason"] = record.failure_reason
        steps.append(step)
    if self._get_param("SortOrder", "Descending") == "Descending":
        steps.reverse()
    return sm_responses.ActionResult({"PipelineExecutionSteps": steps})


def _stop(self: Any) -> Any:
    arn = self._get_param("PipelineExecutionArn")
    fake = get_pipeline_execution_from_arn(self.sagemaker_backend.pipelines, arn)
    status = fake.pipeline_execution_status
    if status in ("Succeeded", "Failed"):
        raise ValidationError(
            f"Pipeline execution {arn} is in a terminal status {status} and cannot be stopped."
        )
    execution = getattr(fake, "mlops_execution", None)
    if execution is not None and not execution.stop_requested:
        execution.stop_requested = True
        execution.on_write(execution)  # reports Stopping now
    return sm_responses.ActionResult({"PipelineExecutionArn": arn})
