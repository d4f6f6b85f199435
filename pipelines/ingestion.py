"""The ingestion pipeline: a raw-data upload, validated against the contract, into the feature store.

The Pulumi program starts it on each upload under ``s3://<bucket>/raw/<schema name>/``
(EventBridge), with ``InputDataKey`` set to the key of the object that arrived (the event's
``$.detail.object.key``) and ``FeatureGroupName`` to the stack's feature group, so a run reads
and validates that one object, never the objects ingested before it. A run started by hand
may give a prefix instead (the default, ``raw/<schema name>/``, re-ingests everything)::

    s3://<bucket>/<InputDataKey> (CSV/Parquet, sharded)
        │
        ▼
    ValidateData ×N ──► s3://<bucket>/quarantine/<schema>/<execution id>/quarantine-<host>.csv
        │               (rows as they arrived, with a reason; the bucket expires them)
        │  accepted-<host>.csv, validation-<host>.json (one of each per instance)
        ▼
    IngestFeatures ──► PutRecord into FeatureGroupName (online store; AWS fills the offline store)
                   ──► ingest.json, failed.csv; IngestedRecordCount, IngestFailedRecordCount,
                       QuarantinedRecordCount (CloudWatch namespace MLOps, dimensions Model, Stack)

ValidateData fails the execution, as usual, on a table-level error or when an instance
quarantines more than ``MaxQuarantineShare`` of its rows; then nothing is ingested. Rows are
dealt to instances by file (``ShardedByS3Key``), so a repeated id is caught within a file's
shard, while the feature store keeps the record with the latest event time across shards.
Data without an event time gets the execution's start time, the same on every instance.

The key is used exactly as the event gives it, never URL-decoded: S3's EventBridge events carry
the object's key as it is (unlike its SNS/SQS/Lambda notifications, whose keys are URL-encoded),
so ``a+b.csv`` is read as ``a+b.csv`` and ``march upload.csv`` with its space.

The key is read as an S3 prefix (SageMaker's processing inputs take a prefix or a manifest),
so ``raw/x/a.csv`` also reads an object named ``raw/x/a.csv.1``; uploads with such names would
be read by each other's runs.
"""

from __future__ import annotations

from typing import Any

from model_code.contract.schema import Schema
from pipelines import common
from pipelines.monitoring import DEFAULT_INSTANCE_TYPE, OUTPUT, SHARDED, ProcessingSteps

# The parameter the raw-data rule sets to the arrived object's key (infra.ml_pipelines).
INPUT_DATA_KEY = "InputDataKey"

MODULE = ("python", "-m", "model_code.ingestion.ingest")


def get_pipeline(
    *,
    region: str,
    role_arn: str,
    bucket: str,
    schema: Schema,
    image_uri: str | None = None,
    kms_key_arn: str | None = None,
    name: str | None = None,
    feature_group_name: str | None = None,
    stack: str | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
) -> Any:
    """The ingestion pipeline for ``schema``'s data (see the module docstring), built offline.

    ``feature_group_name`` is the default of the FeatureGroupName parameter (the stack's
    feature group; default: the schema name); ``stack`` the ``Stack`` dimension of the metrics
    its jobs publish; ``instance_type`` the default of ProcessingInstanceType.
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

    name = name or f"{schema.name}-ingestion"
    p = {
        "count": ParameterInteger(name="ProcessingInstanceCount", default_value=1),
        "type": ParameterString(name="ProcessingInstanceType", default_value=instance_type),
        "input": ParameterString(name=INPUT_DATA_KEY, default_value=f"raw/{schema.name}/"),
        "group": ParameterString(name="FeatureGroupName", default_value=feature_group_name or schema.name),
        "share": ParameterFloat(name="MaxQuarantineShare", default_value=0.05),
    }
    steps = ProcessingSteps(target, session, name, p["type"], stack=stack)
    schema_in = steps.input("schema", schema_object(schema).uri(bucket))
    # Only the stack's bucket: the key comes from an event, the bucket never does.
    data = steps.input("data", Join(on="", values=[f"s3://{bucket}/", p["input"]]), SHARDED)
    started = ExecutionVariables.START_DATETIME.to_string()
    # Rows that are not ingested go where the bucket's lifecycle rule expires them, a folder a run.
    execution = ExecutionVariables.PIPELINE_EXECUTION_ID
    quarantine = Join(on="/", values=[f"s3://{bucket}/quarantine/{schema.name}", execution])
    failed = Join(
        on="/", values=[f"s3://{bucket}/quarantine/{schema.name}", execution, "IngestFeatures/failed.csv"]
    )

    validate = steps.step(
        "ValidateData",
        ["validate", "--input", data.local, "--schema", schema_in.local,
         "--accepted-dir", f"{OUTPUT}/accepted", "--quarantine-dir", f"{OUTPUT}/quarantine",
         "--report-dir", f"{OUTPUT}/report",
         "--max-quarantine-share", p["share"].to_string(), "--ingestion-time", started],
        inputs=[data, schema_in],
        outputs=["accepted", "quarantine", "report"],
        destinations={"quarantine": quarantine},
        count=p["count"],
        module=MODULE,
        description="Validate this instance's files against the data contract; quarantine bad rows",
    )  # fmt: skip
    accepted = steps.output_of(validate, "accepted")
    reports = steps.output_of(validate, "report", "validation")
    ingest = steps.step(
        "IngestFeatures",
        ["put", "--schema", schema_in.local, "--accepted", accepted.local, "--validation", reports.local,
         "--report-dir", f"{OUTPUT}/report", "--failed-uri", failed, "--feature-group", p["group"],
         "--ingestion-time", started],
        inputs=[schema_in, accepted, reports],
        outputs=["report"],
        module=MODULE,
        description="Put the accepted records into the feature group; publish how many",
    )  # fmt: skip
    return Pipeline(
        name=name,
        parameters=list(p.values()),
        steps=[validate, ingest],
        # Every upload starts a run: an experiment trial per run would only clutter.
        pipeline_experiment_config=None,
        sagemaker_session=session,
    )
