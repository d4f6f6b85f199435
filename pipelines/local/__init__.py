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

The package, one concern a module::

    graph.py       the steps, their dependencies and order; parameters checked
    values.py      Get, Std:Join, Std:JsonGet, conditions
    containers.py  processing and training steps as subprocesses
    staging.py     /opt/ml remapped, S3 inputs (sharded) and outputs
    records.py     Execution, StepRecord, execution.json
    strict.py      requests checked against AWS's service models (enums, patterns, lengths, ranges)
    executor.py    LocalExecutor and the step loop; registry steps
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
