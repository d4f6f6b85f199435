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

Containers: the image is this checkout (its root is PYTHONPATH); an entrypoint of
``python ...`` runs with this machine's interpreter, ``train``/``serve``/``mlops`` as the
image's PATH commands do. Every ``/opt/ml`` path in the arguments, LocalPaths and Environment
becomes ``<work dir>/<execution id>/<step>/<host>/...`` (``MLOPS_OPT_ML`` tells the image's
code where). Paths a container only knows as defaults are not remapped, so builders pass them
as arguments; training paths arrive as the ``SM_*`` variables model_code reads. A step's
environment is built from nothing: its ``Environment``, SageMaker's variables for the job
type, and the endpoint, region and credentials of the executor's session; nothing else of
the caller's reaches it. A failed job's reason is read from the one file SageMaker reads for
its type (``/opt/ml/output/message`` for processing, ``/opt/ml/output/failure`` for training).

Strict as AWS: every AWS call the executor makes goes through a ``strict`` client, and each
job request (CreateProcessingJob, CreateTrainingJob) is checked against AWS's service model
(required members, types, enums, patterns, lengths, ranges) before its containers start, so
a request SageMaker would refuse fails here too, naming the step and the member.

Steps whose dependencies have succeeded run concurrently (up to ``max_parallel``); a failed
step stops only the steps that depend on it, the other branches still run and are recorded,
and the execution fails at the end with the first failed step's reason.

Not emulated: Pipe input mode, manifest and compressed inputs, dataset definitions, feature
store outputs, multi-instance training, and step types other than the six above (a definition
using them is refused before anything runs).

The package, one concern a module, each importing only modules listed above it::

    errors.py      DefinitionError, ParameterError, StepFailure
    records.py     Execution, StepRecord, execution.json
    strict.py      requests checked against AWS's service models (enums, patterns, lengths, ranges)
    graph.py       the steps, their dependencies and order; parameters checked
    staging.py     /opt/ml remapped, S3 inputs (sharded) and outputs
    context.py     RunContext: one execution's state, strict clients, job requests checked
    values.py      Get, Std:Join, Std:JsonGet, conditions
    containers.py  processing and training steps as subprocesses, in a clean environment
    registry.py    RegisterModel and Model steps
    executor.py    LocalExecutor and the step loop (concurrent branches)
    cli.py         main(argv): ``mlops pipeline run``
"""

from pipelines.local.cli import PIPELINES, build_parser, main, named_definition
from pipelines.local.containers import IMAGE_COMMANDS, REPO_ROOT
from pipelines.local.errors import DefinitionError, ParameterError, StepFailure
from pipelines.local.executor import LocalExecutor, log
from pipelines.local.graph import PARAMETER_TYPES, STEP_TYPES
from pipelines.local.records import Execution, StepRecord
from pipelines.local.staging import OPT_ML

__all__ = [
    "IMAGE_COMMANDS",
    "OPT_ML",
    "PARAMETER_TYPES",
    "PIPELINES",
    "REPO_ROOT",
    "STEP_TYPES",
    "DefinitionError",
    "Execution",
    "LocalExecutor",
    "ParameterError",
    "StepFailure",
    "StepRecord",
    "build_parser",
    "log",
    "main",
    "named_definition",
]
