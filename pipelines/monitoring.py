"""The monitoring pipeline: drift, model quality and new-data volume, published to CloudWatch.

Three independent branches, each a sharded step over S3 files (``ShardedByS3Key`` over
``ProcessingInstanceCount`` instances, one output per host) and a one-instance merge step
that publishes (model_code.monitoring.monitor holds the container side and its formats),
and beside them the shadow comparison (model_code.monitoring.shadow)::

    CaptureUri/Variant/ ─┬─► ProfileTraffic ×N ──► CheckDrift ──► FeaturePSI, FeatureDriftPValue, FeatureDrifted
    (sharded)            │   (profile per host,    (merge,        (Model, Stack, Variant, Feature);
    BaselineUri ─────────┤    BaselineUri)          compare)      DriftedFeatureCount, CapturedRecordCount,
                         │                                        MalformedCaptureCount (Model, Stack, Variant)
    GroundTruthUri ──────┴─► MatchGroundTruth ×N ► CheckQuality ► AUC, F1, Precision, Recall, Accuracy, LogLoss,
    (replicated)             (labelled             (join, score)  LabelledCount (Model, Stack, Variant)
                              predictions)

    CaptureUri/champion/ ┬─► CompareShadow ──────► ShadowAgreementRate, ShadowProbabilityDifference,
    CaptureUri/Variant/ ─┤   (one instance; only    ShadowChallengerAUC, ShadowProductionAUC,
    GroundTruthUri ──────┘    for a shadow Variant) ShadowComparedCount (Model, Stack, Variant)

    OfflineStoreUri ───► CountOfflineRecords ×N ► CountNewData ► NewRecordCount (Model, Stack); count.json
    (sharded)            (counts, record keys)    (count once)

All metrics go to namespace ``MLOps``; ``Model`` is the schema name, ``Stack`` the stack that
built the pipeline (stacks sharing an account never mix their metrics or alarms) and
``Variant`` the endpoint variant whose traffic was read. The S3 layout assumed (each a
parameter; the defaults follow the artifact bucket's prefixes and the stack's resources):

* ``CaptureUri`` (``data-capture/<endpoint>/``) and ``Variant`` (``champion``): SageMaker data
  capture writes ``<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``; a run reads one variant's
  folder only, so a shadow challenger's traffic never mixes with the production variant's
  (the challenger is measured by a run with ``Variant=challenger``). Records count when their
  inference time is in ``[WindowEnd - WindowHours, WindowEnd)``; WindowEnd ``execution-start``
  is the execution's start time.
* ``BaselineUri``: ``champion`` (the drift baseline the group's Approved model was registered
  with) or the ``s3://`` URI of a baseline JSON.
* ``GroundTruthUri`` (``ground-truth/<schema>/``): CSV or JSON Lines files with an id (``id`` or
  the entity id), a label (``label`` or the target column) and optionally a ``time``.
* ``OfflineStoreUri`` (``feature-store/``): the offline store; only the feature group's own
  ``.../offline-store/<group>-<created>/data/`` Parquet files are counted, those after
  ``SinceTime`` (``last-training``: the champion's DataEnd). The feature group and the model
  package group are the stack's (``feature_group_name``, ``model_package_group``).
* the data contract: the content-addressed schema object the training pipeline reads.

SageMaker refuses an input prefix with no object under it, so each prefix needs a file (one
that is not data, e.g. a README, is ignored).
"""

from __future__ import annotations

from typing import Any

from model_code.contract.schema import Schema
from model_code.monitoring.drift import DEFAULT_P_VALUE_THRESHOLD, DEFAULT_PSI_THRESHOLD
from pipelines import common

SHARDED = "ShardedByS3Key"
REPLICATED = "FullyReplicated"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
INPUT, OUTPUT = f"{common.PROCESSING}/input", f"{common.PROCESSING}/output"
MODULE = ("python", "-m", "model_code.monitoring.monitor")
SHADOW_MODULE = ("python", "-m", "model_code.monitoring.shadow")
# The variant a run measures by default: the production variant (infra.rollout.CHAMPION).
PRODUCTION_VARIANT = "champion"
# model_code.metrics.STACK_ENV: every job learns its stack from its environment, so whatever it
# publishes carries the Stack dimension (restated so building a definition loads no scikit-learn).
STACK_ENV = "MLOPS_STACK"


def get_pipeline(
    *,
    region: str,
    role_arn: str,
    bucket: str,
    schema: Schema,
    image_uri: str | None = None,
    kms_key_arn: str | None = None,
    name: str | None = None,
    endpoint_name: str | None = None,
    offline_store_uri: str | None = None,
    feature_group_name: str | None = None,
    model_package_group: str | None = None,
    stack: str | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
) -> Any:
    """The monitoring pipeline for ``schema``'s model (see the module docstring), built offline.

    Parameters
    ----------
    region, role_arn, bucket, image_uri, kms_key_arn
        Where and as whom it runs (``pipelines.common.Target``).
    schema
        The data contract: it names the model (the ``Model`` dimension) and its features.
    name
        The pipeline's name (default: ``<schema name>-monitoring``).
    endpoint_name
        The endpoint whose captured traffic is read (default: the schema name).
    offline_store_uri, feature_group_name
        Where the feature group's offline store is (default: ``s3://<bucket>/feature-store/``)
        and which group's files to count in it (default: the schema name).
    model_package_group
        Where the champion (its drift baseline and DataEnd) is looked up (default: the schema name).
    stack
        The stack the pipeline belongs to: the ``Stack`` dimension of every metric it publishes
        (None: no such dimension, for a definition printed without a stack).
    instance_type
        The default of the ProcessingInstanceType parameter.
    """
    target = common.Target(region, role_arn, bucket, image_uri, kms_key_arn)
    session = common.session(target)  # first: importing the SDK needs the region it sets
    from sagemaker.core.workflow import (
        ExecutionVariables,
        Join,
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.mlops.workflow import Pipeline

    from pipelines.training import schema_object

    name = name or f"{schema.name}-monitoring"
    group = model_package_group or schema.name
    store = offline_store_uri or f"s3://{bucket}/feature-store/"
    p = {
        "count": ParameterInteger(name="ProcessingInstanceCount", default_value=1),
        "type": ParameterString(name="ProcessingInstanceType", default_value=instance_type),
        "capture": ParameterString(
            name="CaptureUri", default_value=f"s3://{bucket}/data-capture/{endpoint_name or schema.name}/"
        ),
        "variant": ParameterString(name="Variant", default_value=PRODUCTION_VARIANT),
        "labels": ParameterString(
            name="GroundTruthUri", default_value=f"s3://{bucket}/ground-truth/{schema.name}/"
        ),
        "store": ParameterString(name="OfflineStoreUri", default_value=store),
        "baseline": ParameterString(name="BaselineUri", default_value="champion"),
        "end": ParameterString(name="WindowEnd", default_value="execution-start"),
        "hours": ParameterFloat(name="WindowHours", default_value=24.0),
        "psi": ParameterFloat(name="PsiThreshold", default_value=DEFAULT_PSI_THRESHOLD),
        "p": ParameterFloat(name="PValueThreshold", default_value=DEFAULT_P_VALUE_THRESHOLD),
        "since": ParameterString(name="SinceTime", default_value="last-training"),
    }
    steps = ProcessingSteps(target, session, name, p["type"], stack=stack)
    schema_in = steps.input("schema", schema_object(schema).uri(bucket))
    # One variant's folder: SageMaker captures <endpoint>/<variant>/yyyy/mm/dd/hh/.
    variant_capture = Join(on="", values=[p["capture"], p["variant"], "/"])
    captures = steps.input("capture", variant_capture, SHARDED)
    labels = steps.input("labels", p["labels"])
    window = [
        "--capture", captures.local,
        "--window-end", p["end"],
        "--window-hours", p["hours"].to_string(),
        "--execution-start", ExecutionVariables.START_DATETIME.to_string(),
    ]  # fmt: skip

    profile = steps.step(
        "ProfileTraffic",
        ["drift-shard", "--schema", schema_in.local, *window, "--output", f"{OUTPUT}/profiles",
         "--baseline", p["baseline"], "--model-package-group", group],
        inputs=[schema_in, captures],
        outputs=["profiles"],
        count=p["count"],
        description="Drift profile of this instance's share of the captured traffic in the window",
    )  # fmt: skip
    profiles = steps.output_of(profile, "profiles")
    check_drift = steps.step(
        "CheckDrift",
        ["drift", "--schema", schema_in.local, "--profiles", profiles.local, "--report-dir", f"{OUTPUT}/report",
         "--psi-threshold", p["psi"].to_string(), "--p-value-threshold", p["p"].to_string(),
         "--variant", p["variant"]],
        inputs=[schema_in, profiles],
        outputs=["report"],
        description="Merge the profiles, compare with the baseline, publish drift metrics",
    )  # fmt: skip
    match = steps.step(
        "MatchGroundTruth",
        ["quality-shard", "--schema", schema_in.local, *window, "--output", f"{OUTPUT}/matches",
         "--labels", labels.local],
        inputs=[schema_in, captures, labels],
        outputs=["matches"],
        count=p["count"],
        description="Keep this instance's captured predictions that have ground truth",
    )  # fmt: skip
    matches = steps.output_of(match, "matches")
    check_quality = steps.step(
        "CheckQuality",
        ["quality", "--schema", schema_in.local, "--labels", labels.local, "--matches", matches.local,
         "--report-dir", f"{OUTPUT}/report", "--variant", p["variant"]],
        inputs=[schema_in, labels, matches],
        outputs=["report"],
        description="Join predictions with ground truth, publish quality metrics",
    )  # fmt: skip
    # Production's capture beside the run's variant's (the whole of each, on one instance).
    production = steps.input("production", Join(on="", values=[p["capture"], PRODUCTION_VARIANT, "/"]))
    compare_shadow = steps.step(
        "CompareShadow",
        ["--schema", schema_in.local, "--production", production.local, "--capture", f"{INPUT}/capture",
         "--labels", labels.local, "--variant", p["variant"], *window[2:], "--report-dir", f"{OUTPUT}/report"],
        inputs=[schema_in, production, steps.input("capture", variant_capture), labels],
        outputs=["report"],
        module=SHADOW_MODULE,
        description="A shadow variant against production on the same requests: agreement, "
        "probability difference, both AUCs (nothing for the production variant's own run)",
    )  # fmt: skip
    store_in = steps.input("offline-store", p["store"], SHARDED)
    count = steps.step(
        "CountOfflineRecords",
        ["count-shard", "--schema", schema_in.local, "--input", store_in.local, "--output", f"{OUTPUT}/counts",
         "--since", p["since"], "--feature-group", feature_group_name or schema.name,
         "--model-package-group", group],
        inputs=[schema_in, store_in],
        outputs=["counts"],
        count=p["count"],
        description="Count this instance's offline-store records newer than the champion's data",
    )  # fmt: skip
    counts = steps.output_of(count, "counts")
    count_new = steps.step(
        "CountNewData",
        ["count", "--schema", schema_in.local, "--counts", counts.local, "--report-dir", f"{OUTPUT}/report"],
        inputs=[schema_in, counts],
        outputs=["report"],
        description="Count new records once each, publish NewRecordCount (the data-volume trigger's metric)",
    )  # fmt: skip
    return Pipeline(
        name=name,
        parameters=list(p.values()),
        steps=[profile, check_drift, match, check_quality, compare_shadow, count, count_new],
        # Monitoring runs hourly: an experiment trial per run would only clutter.
        pipeline_experiment_config=None,
        sagemaker_session=session,
    )


class StepInput:
    """A processing input: where it comes from and where the container sees it (``local``)."""

    def __init__(self, name: str, source: Any, distribution: str = REPLICATED):
        self.name, self.source, self.distribution = name, source, distribution
        self.local = f"{INPUT}/{name}"

    def shape(self) -> Any:
        from sagemaker.core.processing import ProcessingInput, ProcessingS3Input

        s3 = ProcessingS3Input(
            s3_uri=self.source,
            local_path=self.local,
            s3_data_type="S3Prefix",
            s3_input_mode="File",
            s3_data_distribution_type=self.distribution,
        )
        return ProcessingInput(input_name=self.name, s3_input=s3)


class ProcessingSteps:
    """Processing steps running the project image, their outputs under ``common.output_uri``.

    Inputs are mounted at ``/opt/ml/processing/input/<name>`` and outputs written from
    ``/opt/ml/processing/output/<name>``; the steps name those paths in their arguments, so
    a local executor can run the same command with ``/opt/ml`` mapped to a folder.
    """

    def __init__(
        self, target: common.Target, session: Any, pipeline: str, instance_type: Any, stack: str | None = None
    ):
        self.target, self.session, self.pipeline, self.instance_type = (
            target,
            session,
            pipeline,
            instance_type,
        )
        # What every job finds in its environment: the region its SageMaker calls go to, and
        # the stack whose metrics it publishes.
        self.env = {"AWS_DEFAULT_REGION": target.region, **({STACK_ENV: stack} if stack else {})}

    def input(self, name: str, source: Any, distribution: str = REPLICATED) -> StepInput:
        return StepInput(name, source, distribution)

    def output_of(self, step: Any, output: str, name: str | None = None) -> StepInput:
        """Another step's output as an input (named as the output unless ``name``), whole to each instance."""
        uri = step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri
        return StepInput(name or output, uri)

    def step(
        self,
        name: str,
        arguments: list[Any],
        *,
        inputs: list[StepInput],
        outputs: list[str],
        description: str,
        count: Any = 1,
        module: tuple[str, ...] = MODULE,
        destinations: dict[str, Any] | None = None,
    ) -> Any:
        """A step running ``module`` with ``arguments``; ``destinations`` overrides an output's S3 URI."""
        from sagemaker.core.processing import ProcessingOutput, Processor
        from sagemaker.core.shapes import ProcessingS3Output
        from sagemaker.mlops.workflow import ProcessingStep

        target = self.target
        processor = Processor(
            role=target.role_arn,
            image_uri=target.image,
            instance_count=count,
            instance_type=self.instance_type,
            entrypoint=list(module),
            volume_kms_key=target.kms_key_arn,
            output_kms_key=target.kms_key_arn,
            env=dict(self.env),
            sagemaker_session=self.session,
        )
        shapes = [
            ProcessingOutput(
                output_name=output,
                s3_output=ProcessingS3Output(
                    s3_uri=(destinations or {}).get(output)
                    or common.output_uri(target, self.pipeline, name, output),
                    local_path=f"{OUTPUT}/{output}",
                    s3_upload_mode="EndOfJob",
                ),
            )
            for output in outputs
        ]
        args = processor.run(inputs=[i.shape() for i in inputs], outputs=shapes, arguments=arguments)
        return ProcessingStep(name=name, step_args=args, description=description)
