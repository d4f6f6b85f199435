"""The ingestion, training and monitoring pipelines of one schema, and what starts ingestion.

::

    s3://<bucket>/raw/<schema>/...  ── Object Created ──► rule <schema>-<stack>-raw-data
                                                               │ (role: StartPipelineExecution
                                                               ▼  on the ingestion pipeline only)
                            <schema>-<stack>-ingestion (InputDataKey = the object's key, from the event)
    <schema>-<stack>-training    started by Retraining (alarms, schedule) or by hand
    <schema>-<stack>-monitoring  started by the monitoring schedule

The definitions come from the builders in ``pipelines/`` with this stack's region, role,
bucket, image and key, and every name a pipeline uses at run time (feature group, model
package group, endpoint, the ``Stack`` dimension of its metrics) is this stack's, so every job a pipeline starts runs the project image, encrypts its
volumes and outputs with the stack key and writes under ``pipelines/`` in the stack's bucket.
Building a definition makes no AWS call and gives the same bytes for the same inputs, so a
preview shows a pipeline diff only when the DAG or its inputs really changed.

Each pipeline (and the jobs it starts) runs as its own execution role, holding only what its
steps need of this stack's bucket prefixes, key, image repository, feature group and model
package group (``pipeline_role_policy``): ingestion cannot register a model, monitoring cannot
write the feature group, and neither reads the bucket beyond its inputs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifact_store import (
    DATA_CAPTURE_PREFIX,
    FEATURE_STORE_PREFIX,
    GROUND_TRUTH_PREFIX,
    MLFLOW_PREFIX,
    PIPELINES_PREFIX,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
)
from infra.base import assume_role_policy, child_opts, fit_name, sagemaker_source, stack_boundary
from infra.rollout import CHALLENGER, CHAMPION
from model_code.contract.schema import Schema
from pipelines.sdk_output import quiet_build

KINDS = ("ingestion", "training", "monitoring")
# Parameters of the ingestion pipeline the raw-data rule sets on every start: the key of the
# object that arrived, as EventBridge resolves this JSON path in the matched event (a target
# parameter's value may be a whole JSON path, not part of one), and the stack's feature group.
INPUT_DATA_KEY = "InputDataKey"
OBJECT_KEY_PATH = "$.detail.object.key"
FEATURE_GROUP_NAME = "FeatureGroupName"
# model_code.metrics.NAMESPACE, restated so that declaring the stack does not load scikit-learn
# (a test keeps the two equal).
METRICS_NAMESPACE = "MLOps"
# SageMaker Pipelines names every job it starts ``pipelines-<execution id>-<step>-<suffix>``
# (the builders' job names are dropped from the definition), so that prefix is the narrowest
# job ARN pattern that still matches them.
PIPELINE_JOB_PREFIX = "pipelines-"
# Actions AWS authorizes only on "*" (they have no resource-level permissions), each with why
# this role needs it. Every statement on "*" holds only actions listed here.
WILDCARD_RESOURCE_ACTIONS: Mapping[str, str] = {
    "ecr:GetAuthorizationToken": "jobs log in to ECR to pull the project image; the token is "
    "account-wide (the image pull itself is scoped to the repository)",
    "cloudwatch:PutMetricData": "the monitoring steps publish drift, quality and data-volume "
    "metrics; limited to the MLOps namespace by the cloudwatch:namespace condition",
    "sagemaker:ListModelPackages": "EvaluateModel and EngineerFeatures look up the champion in "
    "the model package group (model_code.register_info); its result is then described by ARN",
}
# What the training steps call on a SageMaker managed MLflow tracking server, when one is given.
MLFLOW_ACTIONS = tuple(
    f"sagemaker-mlflow:{action}"
    for action in (
        "CreateExperiment", "GetExperiment", "GetExperimentByName", "CreateRun", "GetRun", "UpdateRun",
        "SearchRuns", "LogBatch", "LogMetric", "LogParam", "LogInputs", "SetTag",
    )
)  # fmt: skip


@dataclass(frozen=True)
class MlPipelinesArgs:
    """What the pipelines need from the rest of the stack.

    schema: the data contract; pipeline names are ``<schema name>-<stack>-<kind>``.
    region, stack: where the stack deploys; every AWS-visible name carries the stack, so
        stacks sharing an account (IAM names are account-wide) or a region never collide.
    bucket_name, bucket_arn, kms_key_arn: the artifact store; every job reads and writes
        there and encrypts with the key.
    image_uri: the project image every step runs (None: the builders' placeholder, for
        previews before CI has pushed an image).
    feature_group_name, feature_group_arn: where ingestion writes records.
    model_package_group_name, model_package_group_arn: where training registers models and
        finds the champion.
    ecr_repository_arn: the project image's repository (pull only).
    tags: the standard tags, on every taggable resource.
    raw_prefix: where raw data lands (``raw/``); ingestion starts on objects created under
        ``<raw_prefix><schema name>/``.
    endpoint_name: the endpoint whose captured traffic monitoring reads (default: the schema name).
    offline_store_uri: the feature group's offline store, which monitoring counts new records in.
    mlflow_tracking_server_arn: a SageMaker managed MLflow tracking server training logs to
        (None: no tracking server, and no permission on one).
    model_search: how TrainModel picks the model type (its ``search`` hyperparameter).
    """

    schema: Schema
    region: pulumi.Input[str]
    stack: str
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    image_uri: pulumi.Input[str] | None
    feature_group_name: pulumi.Input[str]
    feature_group_arn: pulumi.Input[str]
    model_package_group_name: pulumi.Input[str]
    model_package_group_arn: pulumi.Input[str]
    ecr_repository_arn: pulumi.Input[str]
    tags: pulumi.Input[Mapping[str, str]]
    raw_prefix: str = RAW_PREFIX
    endpoint_name: str | None = None
    offline_store_uri: pulumi.Input[str] | None = None
    mlflow_tracking_server_arn: pulumi.Input[str] | None = None
    model_search: str = "grid"


# -- plain functions: names, patterns, policies, definitions -----------------------------------


def definition_digest(definition: str) -> str:
    """The digest the stack exports for each pipeline definition (``pipelineDefinitionDigests``)."""
    return hashlib.sha256(definition.encode()).hexdigest()


def role_arn(partition: str, account: str, role_name: str) -> str:
    """The ARN IAM gives a role created with ``role_name`` at the default path."""
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def pipeline_name(schema_name: str, stack: str, kind: str) -> str:
    """``<schema>-<stack>-<kind>``: also the S3 prefix its outputs go under (pipelines/<name>/)."""
    return fit_name(f"{schema_name}-{stack}-{kind}", 256)


def raw_data_prefix(schema_name: str, raw_prefix: str = RAW_PREFIX) -> str:
    """The key prefix ingestion watches: one folder per schema, so schemas never mix."""
    return f"{raw_prefix.rstrip('/')}/{schema_name}/"


def object_created_pattern(bucket: str, key_prefix: str) -> dict[str, Any]:
    """EventBridge pattern: an object created in ``bucket`` under ``key_prefix``."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": key_prefix}]}},
    }


def events_assume_role_policy(account: str, rule_arns: list[str]) -> dict[str, Any]:
    """EventBridge may assume the role only for these rules of this account (confused deputy)."""
    return assume_role_policy(
        "events.amazonaws.com",
        {"StringEquals": {"aws:SourceAccount": account}, "ArnEquals": {"aws:SourceArn": sorted(rule_arns)}},
    )


def start_pipeline_policy(pipeline_arns: list[str]) -> dict[str, Any]:
    """Start executions of these pipelines and nothing else (what an EventBridge target needs)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartThesePipelines",
                "Effect": "Allow",
                "Action": "sagemaker:StartPipelineExecution",
                "Resource": sorted(pipeline_arns),
            }
        ],
    }


@dataclass(frozen=True)
class PipelineRoleScope:
    """The ARNs and names one pipeline's execution role is limited to (plain strings).

    ``role_arn`` is that pipeline's own role; ``schema_name`` and ``stack`` give the pipelines'
    names, hence their output prefixes (``pipelines/<schema>-<stack>-<kind>/``).
    """

    partition: str
    region: str
    account: str
    bucket_arn: str
    kms_key_arn: str
    ecr_repository_arn: str
    feature_group_arn: str
    model_package_group_name: str
    model_package_group_arn: str
    role_arn: str
    schema_name: str
    stack: str
    mlflow_tracking_server_arn: str | None = None


def allow(sid: str, actions: list[str], resources: str | list[str], condition: dict | None = None) -> dict:
    """One Allow statement (``resources`` is "*" only for ``WILDCARD_RESOURCE_ACTIONS``)."""
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    return {**statement, "Condition": condition} if condition else statement


def pipeline_prefixes(schema_name: str, stack: str, kind: str) -> tuple[list[str], list[str]]:
    """(prefixes ``kind``'s jobs read, prefixes they write) in the artifact bucket.

    Each pipeline writes its own outputs (``pipelines/<its name>/``); ingestion validates raw
    data and quarantines bad rows; training reads the offline store, the ingestion runs'
    reports (whose records it waits for) and its earlier runs (the champion's model and
    evaluation); monitoring reads the captured traffic, the ground truth, the offline
    store and the champion's drift baseline among training's outputs. Every kind reads the
    data contract (``schemas/``).
    """
    own = f"{PIPELINES_PREFIX}{pipeline_name(schema_name, stack, kind)}/"
    training = f"{PIPELINES_PREFIX}{pipeline_name(schema_name, stack, 'training')}/"
    schemas = "schemas/"
    if kind == "ingestion":
        return [RAW_PREFIX, schemas, own], [own, QUARANTINE_PREFIX]
    if kind == "training":
        ingestion = f"{PIPELINES_PREFIX}{pipeline_name(schema_name, stack, 'ingestion')}/"
        return [FEATURE_STORE_PREFIX, ingestion, schemas, own], [own]
    if kind == "monitoring":
        reads = [DATA_CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, FEATURE_STORE_PREFIX, schemas, training, own]
        return reads, [own]
    raise ValueError(f"kind: {kind!r}; expected one of {list(KINDS)}")


def pipeline_role_policy(scope: PipelineRoleScope, kind: str) -> dict[str, Any]:
    """One pipeline's execution role: what SageMaker Pipelines and the jobs it starts do.

    Pipelines create, watch and stop the jobs as this role; the jobs (same role, passed on)
    read and write the prefixes of ``pipeline_prefixes``, pull the image and write logs.
    Ingestion alone writes feature records; training alone registers models and tracks runs
    in MLflow; training and monitoring look up the champion; monitoring and ingestion publish
    metrics. Nothing outside this stack's resources, except the documented
    ``WILDCARD_RESOURCE_ACTIONS``.
    """
    sagemaker = f"arn:{scope.partition}:sagemaker:{scope.region}:{scope.account}"
    logs = f"arn:{scope.partition}:logs:{scope.region}:{scope.account}:log-group:/aws/sagemaker/*"
    bucket, key = scope.bucket_arn, scope.kms_key_arn
    reads, writes = pipeline_prefixes(scope.schema_name, scope.stack, kind)
    if kind == "training" and scope.mlflow_tracking_server_arn:
        writes = [*writes, MLFLOW_PREFIX]
    jobs = ("ProcessingJob", "TrainingJob") if kind == "training" else ("ProcessingJob",)
    statements = [
        allow("ReadItsInputs", ["s3:GetObject"], [f"{bucket}/{p}*" for p in reads]),
        allow(
            "WriteItsOutputs", ["s3:PutObject", "s3:AbortMultipartUpload"], [f"{bucket}/{p}*" for p in writes]
        ),
        allow(
            "ListItsPrefixes",
            ["s3:ListBucket"],
            [bucket],
            {"StringLike": {"s3:prefix": [f"{p}*" for p in sorted({*reads, *writes})]}},
        ),
        allow("LocateTheBucket", ["s3:GetBucketLocation"], [bucket]),
        allow(
            "UseTheStackKey", ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"], [key]
        ),
        # Jobs' ML storage volumes are encrypted through grants SageMaker creates for them.
        allow(
            "GrantTheStackKeyToJobVolumes",
            ["kms:CreateGrant"],
            [key],
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        allow(
            "PullTheProjectImage",
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            [scope.ecr_repository_arn],
        ),
        allow("LogInToEcr", ["ecr:GetAuthorizationToken"], "*"),
        allow(
            "RunPipelineJobs",
            [f"sagemaker:{verb}{job}" for job in jobs for verb in ("Create", "Describe", "Stop")]
            + ["sagemaker:AddTags"],
            [
                f"{sagemaker}:{job}/{PIPELINE_JOB_PREFIX}*"
                for job in ("processing-job", "training-job")
                if job.replace("-job", "").capitalize() + "Job" in jobs
            ],
        ),
        allow(
            "WriteJobLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [logs],
        ),
        # Pipelines hand this same role to each job they start, and only to SageMaker.
        allow(
            "PassThisRoleToItsJobs",
            ["iam:PassRole"],
            [scope.role_arn],
            {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
    ]
    if kind == "training":
        # EngineerFeatures finds the offline store where DescribeFeatureGroup says it is.
        statements.append(
            allow("LocateTheOfflineStore", ["sagemaker:DescribeFeatureGroup"], [scope.feature_group_arn])
        )
    if kind == "ingestion":
        statements.append(
            allow(
                "WriteTheFeatureGroup",
                ["sagemaker:PutRecord", "sagemaker:DescribeFeatureGroup"],
                [scope.feature_group_arn],
            )
        )
    packages = [
        scope.model_package_group_arn,
        f"{sagemaker}:model-package/{scope.model_package_group_name}/*",
    ]
    if kind == "training":
        statements.append(
            allow(
                "RegisterModelsInTheGroup",
                [
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:AddTags",
                ],
                packages,
            )
        )
    if kind == "monitoring":
        statements.append(
            allow(
                "ReadTheChampion",
                ["sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup"],
                packages,
            )
        )
    if kind in ("training", "monitoring"):
        statements.append(allow("FindTheChampion", ["sagemaker:ListModelPackages"], "*"))
    statements.append(
        allow(
            "PublishPlatformMetrics",
            ["cloudwatch:PutMetricData"],
            "*",
            {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        )
    )
    if kind == "training" and scope.mlflow_tracking_server_arn:
        statements.append(
            allow(
                "TrackRunsInMlflow",
                ["sagemaker:DescribeMlflowTrackingServer", *MLFLOW_ACTIONS],
                [scope.mlflow_tracking_server_arn],
            )
        )
    return {"Version": "2012-10-17", "Statement": statements}


# Written into every input prefix that may still be empty on a fresh platform: SageMaker
# refuses a processing input with no object under it, and the steps skip non-data files.
PREFIX_MARKER = (
    b"Inputs of the MLOps platform's pipelines land here; this file keeps the prefix in existence.\n"
)


def seed_objects(schema: Schema, endpoint_name: str | None) -> dict[str, bytes]:
    """S3 key -> bytes the pipelines need before their first run: the data contract at the
    content-addressed key every definition reads (``schemas/<name>/<hash>.yaml``: a schema
    change is a definition change), and a marker in each input prefix that starts out empty
    (ground truth, each endpoint variant's captured traffic, the offline store)."""
    from pipelines.training import schema_object

    obj = schema_object(schema)
    # Monitoring reads one variant's capture folder at a time: each needs its marker.
    capture = f"{DATA_CAPTURE_PREFIX}{endpoint_name or schema.name}/"
    markers = [
        f"{GROUND_TRUTH_PREFIX}{schema.name}/README.txt",
        f"{capture}README.txt",
        *(f"{capture}{variant}/README.txt" for variant in (CHAMPION, CHALLENGER)),
        f"{FEATURE_STORE_PREFIX}README.txt",
    ]
    return {obj.key: obj.body, **dict.fromkeys(markers, PREFIX_MARKER)}


def build_definition(kind: str, **kwargs: Any) -> str:
    """The definition JSON of ``pipelines.<kind>`` built with ``kwargs`` (no AWS call).

    The builder is imported here, not at module import: it loads the SageMaker SDK, which
    needs a region before it imports (the stack's, when ``pulumi up`` sets none in the
    environment). Building takes seconds and gives the same bytes for the same arguments,
    so each distinct build is done once per process (tests run the program many times).
    What the SDK says about what the build deliberately does is kept out of the output
    (``pipelines.sdk_output``).
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", kwargs["region"])
    cache = _cache_dir()
    cached = cache / f"{_cache_key(kind, kwargs)}.json" if cache else None
    if cached is not None and cached.is_file():
        return cached.read_text()
    with quiet_build():
        builder = importlib.import_module(f"pipelines.{kind}").get_pipeline
        definition = _definition(builder, tuple(sorted(kwargs.items())))
    if cached is not None:
        _store(cached, definition)
    return definition


# Built definitions on disk, by the digest of everything that makes them: a redeploy (or a
# preview) in a new process takes them from here instead of loading the SageMaker SDK and
# building again. MLOPS_DEFINITION_CACHE moves it; "off" turns it off.
_ROOT = Path(__file__).resolve().parents[1]


def _cache_dir() -> Path | None:
    setting = os.environ.get("MLOPS_DEFINITION_CACHE", str(_ROOT / ".cache" / "pipeline-definitions"))
    return None if setting == "off" else Path(setting)


@functools.cache
def _builders_digest() -> str:
    """The builders' code (pipelines/ and the model_code/ they read schemas with) and the SDK's
    version: a change to either is a change to every definition."""
    digest = hashlib.sha256(importlib.metadata.version("sagemaker").encode())
    for folder in ("pipelines", "model_code"):
        for path in sorted((_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_key(kind: str, kwargs: Mapping[str, Any]) -> str:
    inputs = repr((kind, sorted(kwargs.items()))).encode()
    return hashlib.sha256(_builders_digest().encode() + inputs).hexdigest()


def _store(path: Path, definition: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(definition)
        partial.replace(path)  # whole or absent, also with deploys running side by side
    except OSError:
        pass  # a read-only checkout builds every time, as before


@functools.cache
def _definition(builder: Any, kwargs: tuple[tuple[str, Any], ...]) -> str:
    return builder(**dict(kwargs)).definition()


# -- the component ---------------------------------------------------------------------------


class MlPipelines(pulumi.ComponentResource):
    """The three SageMaker pipelines of a schema, one execution role each, and the ingestion rule.

    Public attributes: ``role_arns`` (kind -> its execution role); ``ingestion_pipeline``, ``training_pipeline``,
    ``monitoring_pipeline`` (the resources) with ``<kind>_pipeline_name`` and
    ``<kind>_pipeline_arn`` for each; ``raw_data_prefix`` (a plain string) and
    ``raw_data_rule_name``.
    """

    def __init__(self, name: str, args: MlPipelinesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:ml_pipelines:MlPipelines", name, None, opts)
        self._opts = child_opts(self, opts)
        self._name = name
        self._args = args
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOptions(parent=self))
        self._account = identity.account_id
        self._partition = partition.partition
        self.raw_data_prefix: str = raw_data_prefix(args.schema.name, args.raw_prefix)

        schema_uploads = self._create_seed_objects()
        # One role per pipeline, each holding only what its own steps need.
        roles = {kind: self._create_execution_role(kind) for kind in KINDS}
        pipelines = {
            kind: self._create_pipeline(kind, roles[kind][0], depends_on=[roles[kind][1], *schema_uploads])
            for kind in KINDS
        }
        self.ingestion_pipeline = pipelines["ingestion"]
        self.training_pipeline = pipelines["training"]
        self.monitoring_pipeline = pipelines["monitoring"]
        rule = self._create_ingestion_trigger(self.ingestion_pipeline)

        self.role_arns: dict[str, pulumi.Output[str]] = {kind: roles[kind][0].arn for kind in KINDS}
        self.ingestion_pipeline_name: pulumi.Output[str] = self.ingestion_pipeline.pipeline_name
        self.ingestion_pipeline_arn: pulumi.Output[str] = self.ingestion_pipeline.arn
        self.training_pipeline_name: pulumi.Output[str] = self.training_pipeline.pipeline_name
        self.training_pipeline_arn: pulumi.Output[str] = self.training_pipeline.arn
        self.monitoring_pipeline_name: pulumi.Output[str] = self.monitoring_pipeline.pipeline_name
        self.monitoring_pipeline_arn: pulumi.Output[str] = self.monitoring_pipeline.arn
        self.raw_data_rule_name: pulumi.Output[str] = rule.name
        self.register_outputs(
            {
                "role_arns": self.role_arns,
                "ingestion_pipeline_arn": self.ingestion_pipeline_arn,
                "training_pipeline_arn": self.training_pipeline_arn,
                "monitoring_pipeline_arn": self.monitoring_pipeline_arn,
                "raw_data_prefix": self.raw_data_prefix,
                "raw_data_rule_name": self.raw_data_rule_name,
            }
        )

    def _names(self, suffix: str) -> str:
        # Account-wide (IAM) and per-region (rules) names: the stack keeps stacks apart.
        return fit_name(f"{self._args.schema.name}-{self._args.stack}-{suffix}")

    def _role_name(self, kind: str) -> str:
        return self._names(f"{kind}-pipeline")

    def _create_execution_role(self, kind: str) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        args = self._args
        role = aws.iam.Role(
            f"{self._name}-{kind}-role",
            name=self._role_name(kind),
            description=f"The {args.schema.name} {kind} pipeline and its jobs",
            assume_role_policy=pulumi.Output.all(self._partition, args.region, self._account).apply(
                lambda a: json.dumps(assume_role_policy("sagemaker.amazonaws.com", sagemaker_source(*a)))
            ),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=self._opts,
        )
        policy = pulumi.Output.all(
            partition=self._partition,
            region=args.region,
            account=self._account,
            bucket_arn=args.bucket_arn,
            kms_key_arn=args.kms_key_arn,
            ecr_repository_arn=args.ecr_repository_arn,
            feature_group_arn=args.feature_group_arn,
            model_package_group_name=args.model_package_group_name,
            model_package_group_arn=args.model_package_group_arn,
            role_arn=role.arn,
            mlflow_tracking_server_arn=args.mlflow_tracking_server_arn,
        ).apply(
            lambda scope: json.dumps(
                pipeline_role_policy(
                    PipelineRoleScope(**scope, schema_name=args.schema.name, stack=args.stack), kind
                )
            )
        )
        role_policy = aws.iam.RolePolicy(
            f"{self._name}-{kind}-role-policy",
            role=role.id,
            policy=policy,
            opts=self._opts,
        )
        return role, role_policy

    def _create_seed_objects(self) -> list[aws.s3.BucketObjectv2]:
        # What the definitions read must exist before the first execution, so it ships with them.
        args = self._args
        return [
            aws.s3.BucketObjectv2(
                # Named after the key: a new content-addressed key is a new object.
                f"{self._name}-{key.removesuffix('.yaml').replace('/', '-')}",
                bucket=args.bucket_name,
                key=key,
                content=body.decode(),
                content_type="application/yaml" if key.endswith(".yaml") else "text/plain",
                server_side_encryption="aws:kms",
                kms_key_id=args.kms_key_arn,
                bucket_key_enabled=True,
                tags=args.tags,
                opts=self._opts,
            )
            for key, body in seed_objects(args.schema, args.endpoint_name).items()
        ]

    def _builder_inputs(self, kind: str) -> dict[str, pulumi.Input[Any]]:
        """What each builder takes from the stack besides region, role, bucket, image and key."""
        args = self._args
        if kind == "ingestion":
            # The raw-data rule sets the feature group on every start; the default is the same,
            # so a run started by hand writes to this stack's group too.
            return {"feature_group_name": args.feature_group_name, "stack": args.stack}
        if kind == "training":
            return {
                "model_package_group": args.model_package_group_name,
                "tracking_uri": args.mlflow_tracking_server_arn,
                # Pairs, not a dict: the definitions are cached on their (hashable) inputs.
                "hyperparameters": (("search", args.model_search),),
                # The offline store it trains from, and where ingestion reports what it put.
                "feature_group_name": args.feature_group_name,
                "ingestion_reports_uri": pulumi.Output.concat(
                    "s3://",
                    args.bucket_name,
                    "/",
                    PIPELINES_PREFIX,
                    pipeline_name(args.schema.name, args.stack, "ingestion"),
                    "/",
                ),
            }
        return {
            "endpoint_name": args.endpoint_name,
            "offline_store_uri": args.offline_store_uri,
            "feature_group_name": args.feature_group_name,
            "model_package_group": args.model_package_group_name,
            "stack": args.stack,
        }

    def _create_pipeline(
        self, kind: str, role: aws.iam.Role, depends_on: list[pulumi.Resource]
    ) -> aws.sagemaker.Pipeline:
        args = self._args
        name = pipeline_name(args.schema.name, args.stack, kind)
        # The definition names the role by its ARN computed from its name, not by role.arn: it
        # is known at preview (so a preview shows the real definition diff) and is the same
        # string IAM assigns.
        definition = pulumi.Output.all(
            region=args.region,
            role_arn=pulumi.Output.all(self._partition, self._account).apply(
                lambda a: role_arn(a[0], a[1], self._role_name(kind))
            ),
            bucket=args.bucket_name,
            image_uri=args.image_uri,
            kms_key_arn=args.kms_key_arn,
            **self._builder_inputs(kind),
        ).apply(lambda inputs: build_definition(kind, schema=args.schema, name=name, **inputs))
        return aws.sagemaker.Pipeline(
            f"{self._name}-{kind}",
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=f"The {kind} pipeline of the {args.schema.name} schema",
            role_arn=role.arn,
            pipeline_definition=definition,
            tags=args.tags,
            # The role must hold its permissions before any execution starts.
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=depends_on)),
        )

    def _create_ingestion_trigger(self, pipeline: aws.sagemaker.Pipeline) -> aws.cloudwatch.EventRule:
        args = self._args
        prefix = self.raw_data_prefix
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-raw-data-rule",
            name=self._names("raw-data"),
            description=f"Objects created under {prefix} start the {args.schema.name} ingestion pipeline",
            event_pattern=pulumi.Output.from_input(args.bucket_name).apply(
                lambda bucket: json.dumps(object_created_pattern(bucket, prefix))
            ),
            tags=args.tags,
            opts=self._opts,
        )
        role = aws.iam.Role(
            f"{self._name}-raw-data-events-role",
            name=self._names("ingestion-events"),
            description=f"EventBridge starts the {args.schema.name} ingestion pipeline",
            assume_role_policy=pulumi.Output.all(self._account, rule.arn).apply(
                lambda a: json.dumps(events_assume_role_policy(a[0], [a[1]]))
            ),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=self._opts,
        )
        role_policy = aws.iam.RolePolicy(
            f"{self._name}-raw-data-events-role-policy",
            role=role.id,
            policy=pipeline.arn.apply(lambda arn: json.dumps(start_pipeline_policy([arn]))),
            opts=self._opts,
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-raw-data-target",
            rule=rule.name,
            target_id="ingestion-pipeline",
            arn=pipeline.arn,
            role_arn=role.arn,
            sagemaker_pipeline_target=aws.cloudwatch.EventTargetSagemakerPipelineTargetArgs(
                pipeline_parameter_lists=[
                    # Only the object that arrived: N uploads start N runs of one object each.
                    aws.cloudwatch.EventTargetSagemakerPipelineTargetPipelineParameterListArgs(
                        name=INPUT_DATA_KEY, value=OBJECT_KEY_PATH
                    ),
                    aws.cloudwatch.EventTargetSagemakerPipelineTargetPipelineParameterListArgs(
                        name=FEATURE_GROUP_NAME, value=args.feature_group_name
                    ),
                ]
            ),
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=[role_policy])),
        )
        return rule
