"""The training pipeline: from the feature store to a registered model, or a failure that says why.

::

    FeatureGroupName (its offline store, as DescribeFeatureGroup locates it)
         │
         ▼
    EngineerFeatures ──► TrainModel ──► EvaluateModel ──► CheckQuality
    (waits for the        (project       (AUC vs MinAuc and  │ decision.passed
     records ingestion    image, model   the champion scored ├── true ─► RegisterModel
     reported, at most    chosen by CV,  on the same rows;   └── false ► FailPipeline
     OfflineStoreWait-    tracked run)   drift baseline)
     Seconds; point-in-time
     TrainingStrategy window;
     seeded stratified split)

Training reads the feature group's offline store, never the raw uploads: raw data is validated
and quarantined by the ingestion pipeline, which puts the accepted records into the group, so
every model learns from what the feature store holds (the same values online and offline).

Every step runs the project image: processing steps as ``python -m model_code.<module>``,
training as the image's ``train`` command. The builder only assembles the DAG: it makes no
AWS call, and the same arguments give byte-identical JSON. Anything learned at run time
(the champion's data end and evaluation, the newest event time) is looked up by the
container steps themselves, never by this module.

Conventions a local executor relies on:

* every processing step gets its container paths as ``ContainerArguments`` under
  ``/opt/ml/processing/{input,output}/<name>`` (one folder per ``ProcessingInput`` /
  ``ProcessingOutput``, named alike), so remapping ``/opt/ml`` runs it anywhere;
* outputs go to ``s3://<bucket>/pipelines/<name>/<execution id>/<step>/<output>``, models
  to ``s3://<bucket>/pipelines/<name>/models``;
* the data contract reaches the containers as the S3 object :func:`schema_object` names
  (content-addressed, so a schema change shows as a definition diff); whoever deploys the
  pipeline uploads it first.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from model_code.contract.schema import Schema
from model_code.training.prepare import TRAINING_STRATEGIES, WINDOW_FILE
from pipelines import common

# The parameters a start may set, and what each accepts. The executor and the Pulumi
# program (EventBridge targets, schedules) check starts against these before they run.
FEATURE_GROUP_NAME = "FeatureGroupName"
OFFLINE_STORE_WAIT_SECONDS = "OfflineStoreWaitSeconds"
TRAINING_STRATEGY = "TrainingStrategy"
WINDOW_DAYS = "WindowDays"
TEST_SHARE = "TestShare"
MIN_AUC = "MinAuc"
MAX_REGRESSION = "MaxRegression"
MODEL_APPROVAL_STATUS = "ModelApprovalStatus"
PROCESSING_INSTANCE_TYPE = "ProcessingInstanceType"
TRAINING_INSTANCE_TYPE = "TrainingInstanceType"
TRIGGER_REASON = "TriggerReason"
PARAMETER_NAMES = (
    FEATURE_GROUP_NAME,
    OFFLINE_STORE_WAIT_SECONDS,
    TRAINING_STRATEGY,
    WINDOW_DAYS,
    TEST_SHARE,
    MIN_AUC,
    MAX_REGRESSION,
    MODEL_APPROVAL_STATUS,
    PROCESSING_INSTANCE_TYPE,
    TRAINING_INSTANCE_TYPE,
    TRIGGER_REASON,
)
TRIGGER_REASONS = ("manual", "schedule", "drift", "quality", "data-volume")
# A pipeline may register for review or approve outright; rejecting is a person's decision.
APPROVAL_STATUSES = ("PendingManualApproval", "Approved")
ALLOWED_VALUES: dict[str, tuple[str, ...]] = {
    TRAINING_STRATEGY: TRAINING_STRATEGIES,
    TRIGGER_REASON: TRIGGER_REASONS,
    MODEL_APPROVAL_STATUS: APPROVAL_STATUSES,
}
DEFAULTS: dict[str, Any] = {
    # Longer than the 15 minutes AWS documents as the offline store's most lag behind PutRecord.
    OFFLINE_STORE_WAIT_SECONDS: 1200,
    TRAINING_STRATEGY: "new-data-only",
    WINDOW_DAYS: 90,
    TEST_SHARE: 0.2,
    MIN_AUC: 0.7,
    MAX_REGRESSION: 0.01,
    MODEL_APPROVAL_STATUS: "PendingManualApproval",
    PROCESSING_INSTANCE_TYPE: "ml.m5.large",
    TRAINING_INSTANCE_TYPE: "ml.m5.large",
    TRIGGER_REASON: "manual",
}
# Numeric parameters: their type, the test a value must pass and how to say it.
_NUMBERS: dict[str, tuple[type, Any, str]] = {
    OFFLINE_STORE_WAIT_SECONDS: (int, lambda x: x >= 0, "an integer >= 0 (seconds)"),
    WINDOW_DAYS: (int, lambda x: x >= 1, "an integer >= 1"),
    TEST_SHARE: (float, lambda x: 0 < x < 1, "a number between 0 and 1 (exclusive)"),
    MIN_AUC: (float, lambda x: 0 <= x <= 1, "a number between 0 and 1"),
    MAX_REGRESSION: (float, lambda x: 0 <= x <= 1, "a number between 0 and 1"),
}

# SageMaker's FeatureGroupName pattern (its API reference).
_FEATURE_GROUP = re.compile(r"[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}")

# What TrainModel is given unless the caller says otherwise (``mlops train`` options).
# Customer metadata of a registered package read from evaluation.json's ``registry`` section.
REGISTRY_METADATA = ("Auc", "ChampionAuc", "ChampionStoredAuc", "ModelType", "CvAuc")
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "selection": "none",
    "n-features": 10,
    "model-type": "auto",
    "random-state": 0,
}

STEP_NAMES = (
    "EngineerFeatures",
    "TrainModel",
    "EvaluateModel",
    "CheckQuality",
    "RegisterModel",
    "FailPipeline",
)
EVALUATION_PROPERTY_FILE = "Evaluation"
DATA_WINDOW_PROPERTY_FILE = "DataWindow"
EVALUATION_FILE = "evaluation.json"
BASELINE_FILE = "baseline.json"
# What the model server accepts and answers (model_code.serving.inference).
CONTENT_TYPES = ["application/json", "text/csv"]
RESPONSE_TYPES = ["application/json"]


def check_parameters(values: Mapping[str, Any]) -> None:
    """Reject a start's parameter overrides the pipeline cannot use, naming the key.

    Raises
    ------
    ValueError
        For an unknown name, a value outside ``ALLOWED_VALUES``, or a number out of range.
    """
    for name, value in values.items():
        if name not in PARAMETER_NAMES:
            raise ValueError(f"{name}: unknown parameter; expected one of {', '.join(PARAMETER_NAMES)}")
        if name in ALLOWED_VALUES and value not in ALLOWED_VALUES[name]:
            raise ValueError(f"{name}: {value!r} is not one of {' | '.join(ALLOWED_VALUES[name])}")
        if name in _NUMBERS:
            kind, ok, expected = _NUMBERS[name]
            try:
                # Starts pass text ("90"); an integer must not lose a fraction on the way.
                number = float(value)
                valid = math.isfinite(number) and ok(number) and (kind is float or number.is_integer())
            except (TypeError, ValueError):
                valid = False
            if isinstance(value, bool) or not valid:
                raise ValueError(f"{name}: expected {expected}, got {value!r}")
        if name == FEATURE_GROUP_NAME and not _FEATURE_GROUP.fullmatch(str(value)):
            raise ValueError(
                f"{name}: expected a feature group name (letters, digits, hyphens), got {value!r}"
            )


@dataclass(frozen=True)
class SchemaObject:
    """The data contract as the S3 object the containers read: its key and exact bytes."""

    key: str
    body: bytes

    def uri(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.key}"


def schema_object(schema: Schema) -> SchemaObject:
    """``schemas/<name>/<sha256 prefix>.yaml``: a new schema is a new key, so a new definition."""
    body = yaml.safe_dump(schema.to_dict(), sort_keys=False).encode()
    return SchemaObject(f"schemas/{schema.name}/{hashlib.sha256(body).hexdigest()[:16]}.yaml", body)


def default_ingestion_reports_uri(bucket: str, schema: Schema) -> str:
    """Where the ingestion pipeline's runs write their reports (``pipelines/<its name>/``, its
    default name): EngineerFeatures waits for the records they say were put."""
    return f"s3://{bucket}/pipelines/{schema.name}-ingestion/"


class _Builder:
    """Holds what every step shares while the DAG is assembled; one instance per build."""

    def __init__(
        self,
        target: common.Target,
        schema: Schema,
        *,
        name: str,
        group: str,
        hyperparameters: Mapping[str, Any] | Iterable[tuple[str, Any]],
        random_state: int,
        tracking_uri: str | None,
        feature_group: str,
        ingestion_reports_uri: str,
    ):
        # First: importing the SDK needs the region the session sets.
        self.session = common.session(target)
        from sagemaker.core.workflow import ParameterFloat, ParameterInteger, ParameterString

        self.target, self.schema, self.name, self.group = target, schema, name, group
        self.hyperparameters = {**DEFAULT_HYPERPARAMETERS, **dict(hyperparameters)}
        self.random_state = random_state
        self.tracking_uri = tracking_uri
        self.ingestion_reports_uri = ingestion_reports_uri
        self.schema_uri = schema_object(schema).uri(target.bucket)

        def string(key: str, default: str | None = None) -> Any:
            return ParameterString(
                name=key,
                default_value=DEFAULTS[key] if default is None else default,
                enum_values=list(ALLOWED_VALUES[key]) if key in ALLOWED_VALUES else None,
            )

        self.params = {
            FEATURE_GROUP_NAME: string(FEATURE_GROUP_NAME, feature_group),
            OFFLINE_STORE_WAIT_SECONDS: ParameterInteger(
                name=OFFLINE_STORE_WAIT_SECONDS, default_value=DEFAULTS[OFFLINE_STORE_WAIT_SECONDS]
            ),
            TRAINING_STRATEGY: string(TRAINING_STRATEGY),
            WINDOW_DAYS: ParameterInteger(name=WINDOW_DAYS, default_value=DEFAULTS[WINDOW_DAYS]),
            TEST_SHARE: ParameterFloat(name=TEST_SHARE, default_value=DEFAULTS[TEST_SHARE]),
            MIN_AUC: ParameterFloat(name=MIN_AUC, default_value=DEFAULTS[MIN_AUC]),
            MAX_REGRESSION: ParameterFloat(name=MAX_REGRESSION, default_value=DEFAULTS[MAX_REGRESSION]),
            MODEL_APPROVAL_STATUS: string(MODEL_APPROVAL_STATUS),
            PROCESSING_INSTANCE_TYPE: string(PROCESSING_INSTANCE_TYPE),
            TRAINING_INSTANCE_TYPE: string(TRAINING_INSTANCE_TYPE),
            TRIGGER_REASON: string(TRIGGER_REASON),
        }

    def processing_step(
        self,
        step: str,
        module: str,
        *,
        inputs: dict[str, Any],
        outputs: list[str],
        arguments: list[Any],
        instance_count: Any = 1,
        sharded: str | None = None,
        property_files: list[Any] | None = None,
    ) -> Any:
        """A processing step running ``python -m <module>`` in the project image.

        ``inputs`` maps each input's name to its S3 URI (it is mounted at
        ``/opt/ml/processing/input/<name>``); each output is written from
        ``/opt/ml/processing/output/<name>`` under this execution's prefix. ``sharded``
        names the one input split across instances by S3 key.
        """
        from sagemaker.core.processing import (
            ProcessingInput,
            ProcessingOutput,
            ProcessingS3Input,
            Processor,
        )
        from sagemaker.core.shapes import ProcessingS3Output
        from sagemaker.mlops.workflow import ProcessingStep

        processor = Processor(
            role=self.target.role_arn,
            image_uri=self.target.image,
            instance_count=instance_count,
            instance_type=self.params[PROCESSING_INSTANCE_TYPE],
            entrypoint=["python", "-m", module],
            volume_kms_key=self.target.kms_key_arn,
            output_kms_key=self.target.kms_key_arn,
            # boto3 inside the container finds no region otherwise (SageMaker sets none).
            env={"AWS_DEFAULT_REGION": self.target.region},
            base_job_name=f"{self.name}-{step}"[:32].rstrip("-"),
            sagemaker_session=self.session,
        )
        step_args = processor.run(
            inputs=[
                ProcessingInput(
                    input_name=name,
                    s3_input=ProcessingS3Input(
                        s3_uri=uri,
                        local_path=local(f"input/{name}"),
                        s3_data_type="S3Prefix",
                        s3_input_mode="File",
                        s3_data_distribution_type="ShardedByS3Key" if name == sharded else "FullyReplicated",
                    ),
                )
                for name, uri in inputs.items()
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    s3_output=ProcessingS3Output(
                        s3_uri=common.output_uri(self.target, self.name, step, name),
                        local_path=local(f"output/{name}"),
                        s3_upload_mode="EndOfJob",
                    ),
                )
                for name in outputs
            ],
            arguments=arguments,
        )
        return ProcessingStep(name=step, step_args=step_args, property_files=property_files)


def local(path: str) -> str:
    """A processing container path: ``input/data`` -> ``/opt/ml/processing/input/data``."""
    return f"{common.PROCESSING}/{path}"


def _output(step: Any, name: str) -> Any:
    return step.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri


def _engineer_features(b: _Builder) -> tuple[Any, Any]:
    from sagemaker.core.workflow import PropertyFile

    window = PropertyFile(name=DATA_WINDOW_PROPERTY_FILE, output_name="window", path=WINDOW_FILE)
    step = b.processing_step(
        "EngineerFeatures",
        "model_code.training.prepare",
        inputs={"schema": b.schema_uri},
        outputs=["train", "test", "window"],
        property_files=[window],
        arguments=[
            # The offline store is read by the step itself (boto3), not mounted: it re-reads
            # the store while it waits for the records ingestion reported.
            "--feature-group",
            b.params[FEATURE_GROUP_NAME],
            "--ingestion-reports",
            b.ingestion_reports_uri,
            "--wait-seconds",
            b.params[OFFLINE_STORE_WAIT_SECONDS].to_string(),
            "--schema",
            local("input/schema"),
            "--train-dir",
            local("output/train"),
            "--test-dir",
            local("output/test"),
            "--window-dir",
            local("output/window"),
            "--strategy",
            b.params[TRAINING_STRATEGY],
            # Container arguments are strings; numbers go through Std:Join to become one.
            "--window-days",
            b.params[WINDOW_DAYS].to_string(),
            "--test-share",
            b.params[TEST_SHARE].to_string(),
            "--random-state",
            str(b.random_state),
            "--model-package-group",
            b.group,
        ],
    )
    return step, window


def _train_model(b: _Builder, features: Any) -> Any:
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig
    from sagemaker.core.workflow import ExecutionVariables
    from sagemaker.mlops.workflow import TrainingStep
    from sagemaker.train import ModelTrainer

    environment = {
        # model_code.training.train tags its MLflow run with these: one tracked run per execution.
        "MLOPS_TRIGGER_REASON": b.params[TRIGGER_REASON],
        "MLOPS_EXECUTION_ID": ExecutionVariables.PIPELINE_EXECUTION_ID,
        # ...and publishes RetrainingStarted by pipeline and reason (model_code.metrics).
        "MLOPS_PIPELINE_NAME": ExecutionVariables.PIPELINE_NAME,
    }
    if b.tracking_uri:
        environment["MLFLOW_TRACKING_URI"] = b.tracking_uri
    trainer = ModelTrainer(
        training_image=b.target.image,
        role=b.target.role_arn,
        sagemaker_session=b.session,
        base_job_name=f"{b.name}-TrainModel"[:32].rstrip("-"),
        compute=Compute(
            instance_type=b.params[TRAINING_INSTANCE_TYPE],
            instance_count=1,
            volume_size_in_gb=30,
            **({"volume_kms_key_id": b.target.kms_key_arn} if b.target.kms_key_arn else {}),
        ),
        # Explicit, so that the SDK never asks S3 for a default bucket while building.
        output_data_config=OutputDataConfig(
            s3_output_path=f"s3://{b.target.bucket}/pipelines/{b.name}/models",
            **({"kms_key_id": b.target.kms_key_arn} if b.target.kms_key_arn else {}),
        ),
        hyperparameters=dict(b.hyperparameters),
        environment=environment,
    )
    step_args = trainer.train(
        input_data_config=[
            InputData(channel_name="train", data_source=_output(features, "train")),
            # Scored after fitting, so the tracked run carries held-out metrics too.
            InputData(channel_name="validation", data_source=_output(features, "test")),
        ]
    )
    return TrainingStep(name="TrainModel", step_args=step_args)


def _evaluate_model(b: _Builder, features: Any, train: Any) -> tuple[Any, Any]:
    from sagemaker.core.workflow import PropertyFile

    evaluation = PropertyFile(name=EVALUATION_PROPERTY_FILE, output_name="evaluation", path=EVALUATION_FILE)
    step = b.processing_step(
        "EvaluateModel",
        "model_code.training.evaluate",
        inputs={
            "model": train.properties.ModelArtifacts.S3ModelArtifacts,
            "test": _output(features, "test"),
            "train": _output(features, "train"),
        },
        outputs=["evaluation", "baseline"],
        property_files=[evaluation],
        arguments=[
            "--model-dir",
            local("input/model"),
            "--test-dir",
            local("input/test"),
            "--train-dir",
            local("input/train"),
            "--output-dir",
            local("output/evaluation"),
            "--baseline-dir",
            local("output/baseline"),
            "--min-auc",
            b.params[MIN_AUC].to_string(),
            "--max-regression",
            b.params[MAX_REGRESSION].to_string(),
            "--model-package-group",
            b.group,
        ],
    )
    return step, evaluation


def _register_model(
    b: _Builder, features: Any, window: Any, train: Any, evaluate: Any, evaluation: Any
) -> Any:
    from sagemaker.core.drift_check_baselines import DriftCheckBaselines
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.workflow import ExecutionVariables, Join, JsonGet
    from sagemaker.mlops.workflow import ModelStep
    from sagemaker.serve.model_builder import ModelBuilder

    def report(output: str, file: str) -> Any:
        return MetricsSource(
            content_type="application/json",
            s3_uri=Join(on="/", values=[_output(evaluate, output), file]),
        )

    metadata = {
        "TrainingStrategy": b.params[TRAINING_STRATEGY],
        "TriggerReason": b.params[TRIGGER_REASON],
        "ExecutionId": ExecutionVariables.PIPELINE_EXECUTION_ID,
    }
    if b.schema.event_time:
        # The next new-data-only run trains on what came after DataEnd (model_code.training.prepare).
        for key, path in (("DataStart", "data_start"), ("DataEnd", "data_end")):
            metadata[key] = JsonGet(step_name=features.name, property_file=window, json_path=path)
    # Both AUCs on the same test rows (and the champion's stored one), and the model selection's
    # choice, so the registry shows why this package passed (model_code.training.evaluate).
    for key in REGISTRY_METADATA:
        metadata[key] = JsonGet(
            step_name=evaluate.name, property_file=evaluation, json_path=f"registry.{key}"
        )
    builder = ModelBuilder(
        image_uri=b.target.image,
        s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
        role_arn=b.target.role_arn,
        sagemaker_session=b.session,
        # The image holds the inference code; with no dependencies to package, the SDK
        # uploads nothing and never asks S3 for a default bucket.
        dependencies=None,
        # Its default (DEBUG) would be set on a logger the whole SDK shares.
        log_level=logging.WARNING,
    )
    step_args = builder.register(
        model_package_group_name=b.group,
        approval_status=b.params[MODEL_APPROVAL_STATUS],
        content_types=CONTENT_TYPES,
        response_types=RESPONSE_TYPES,
        model_metrics=ModelMetrics(
            model_statistics=report("evaluation", EVALUATION_FILE),
            model_data_statistics=report("baseline", BASELINE_FILE),
        ),
        # The monitoring pipeline compares captured traffic with this baseline.
        drift_check_baselines=DriftCheckBaselines(model_data_statistics=report("baseline", BASELINE_FILE)),
        customer_metadata_properties=metadata,
        description=f"{b.schema.name} model trained by the {b.name} pipeline",
    )
    return ModelStep(name="RegisterModel", step_args=step_args)


def _quality_gate(b: _Builder, evaluate: Any, evaluation: Any, register: Any) -> Any:
    from sagemaker.core.workflow import ConditionEquals, Join, JsonGet
    from sagemaker.mlops.workflow import ConditionStep, FailStep

    def decision(path: str) -> Any:
        return JsonGet(step_name=evaluate.name, property_file=evaluation, json_path=f"decision.{path}")

    fail = FailStep(
        name="FailPipeline",
        error_message=Join(
            on="",
            values=[
                "model rejected on ",
                decision("failed_metric"),
                ": ",
                decision("reason"),
            ],
        ),
    )
    # model_code.training.evaluate decides (AUC >= MinAuc and within MaxRegression of the champion)
    # and says why; the condition only reads the verdict, so the rule lives in one place.
    return ConditionStep(
        name="CheckQuality",
        conditions=[ConditionEquals(left=decision("passed"), right=True)],
        if_steps=[register],
        else_steps=[fail],
    )


def get_pipeline(
    *,
    region: str,
    role_arn: str,
    bucket: str,
    schema: Schema,
    image_uri: str | None = None,
    kms_key_arn: str | None = None,
    model_package_group: str | None = None,
    name: str | None = None,
    hyperparameters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    random_state: int = 0,
    tracking_uri: str | None = None,
    feature_group_name: str | None = None,
    ingestion_reports_uri: str | None = None,
) -> Any:
    """The training pipeline for ``schema`` (see the module docstring), as a sagemaker Pipeline.

    Parameters
    ----------
    region, role_arn, bucket, image_uri, kms_key_arn
        Where and as whom it runs (``pipelines.common.Target``); ``image_uri`` defaults to
        a placeholder in the region, ``kms_key_arn`` encrypts volumes and outputs.
    schema
        The data contract the data is validated against and the model trained on.
    model_package_group
        Where models are registered and the champion is looked up (default: the schema name).
    name
        The pipeline's name (default: ``<schema name>-training``).
    hyperparameters
        ``mlops train`` options for TrainModel (a mapping or name-value pairs), over
        ``DEFAULT_HYPERPARAMETERS``.
    random_state
        Seeds the train/test split (TrainModel's seed is the ``random-state`` hyperparameter).
    tracking_uri
        The MLflow tracking server TrainModel logs to (``MLFLOW_TRACKING_URI``), if any.
    feature_group_name
        The default of FeatureGroupName, whose offline store the run reads (default: the schema name).
    ingestion_reports_uri
        Where the ingestion pipeline's runs report what they put (default:
        :func:`default_ingestion_reports_uri`).
    """
    target = common.Target(
        region=region, role_arn=role_arn, bucket=bucket, image_uri=image_uri, kms_key_arn=kms_key_arn
    )
    b = _Builder(
        target,
        schema,
        name=name or f"{schema.name}-training",
        group=model_package_group or schema.name,
        hyperparameters=hyperparameters or {},
        random_state=random_state,
        tracking_uri=tracking_uri,
        feature_group=feature_group_name or schema.name,
        ingestion_reports_uri=ingestion_reports_uri or default_ingestion_reports_uri(bucket, schema),
    )

    features, window = _engineer_features(b)
    train = _train_model(b, features)
    evaluate, evaluation = _evaluate_model(b, features, train)
    register = _register_model(b, features, window, train, evaluate, evaluation)
    gate = _quality_gate(b, evaluate, evaluation, register)
    from sagemaker.mlops.workflow import Pipeline

    return Pipeline(
        name=b.name,
        parameters=list(b.params.values()),
        steps=[features, train, evaluate, gate],
        sagemaker_session=b.session,
    )
