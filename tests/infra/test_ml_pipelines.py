"""The pipelines component: its role's policy, the ingestion trigger and the definitions it deploys."""

from __future__ import annotations

import json
import types

import pytest

from infra import ml_pipelines
from infra.base import fit_name
from infra.ml_pipelines import (
    WILDCARD_RESOURCE_ACTIONS,
    MlPipelines,
    MlPipelinesArgs,
    PipelineRoleScope,
    events_assume_role_policy,
    object_created_pattern,
    pipeline_name,
    pipeline_role_policy,
    raw_data_prefix,
    seed_objects,
    start_pipeline_policy,
)
from model_code.contract import schema
from tests.infra.harness import ACCOUNT, run

SCHEMA = schema.load(schema.EXAMPLE_SCHEMA)
REGION = "eu-west-1"
BUCKET = "customer-churn-test-123456789012"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/stack-key"
SAGEMAKER = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-platform:0123abcd"
TAGS = {"project": "mlops-platform", "stack": "test", "owner": "ml-team"}
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/customer-churn-test-training-pipeline"
SCOPE = PipelineRoleScope(
    partition="aws",
    region=REGION,
    account=ACCOUNT,
    bucket_arn=BUCKET_ARN,
    kms_key_arn=KEY_ARN,
    ecr_repository_arn=f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/mlops-platform",
    feature_group_arn=f"{SAGEMAKER}:feature-group/customer-churn",
    model_package_group_name="customer-churn",
    model_package_group_arn=f"{SAGEMAKER}:model-package-group/customer-churn",
    role_arn=ROLE_ARN,
    schema_name="customer-churn",
    stack="test",
)
KINDS = ("ingestion", "training", "monitoring")


def as_list(value):
    return value if isinstance(value, list) else [value]


def statement(policy, sid):
    return next(s for s in policy["Statement"] if s["Sid"] == sid)


# -- the execution roles' policies: one per pipeline ---------------------------------------------


def actions(policy) -> set[str]:
    return {a for s in policy["Statement"] for a in as_list(s["Action"])}


def objects(policy, action: str) -> set[str]:
    return {r for s in policy["Statement"] if action in as_list(s["Action"]) for r in as_list(s["Resource"])}


@pytest.mark.parametrize("kind", KINDS)
def test_no_statement_allows_a_wildcard_action(kind):
    for s in pipeline_role_policy(SCOPE, kind)["Statement"]:
        assert not any(a == "*" or a.endswith(":*") for a in as_list(s["Action"])), s["Sid"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_wildcard_resource_is_an_allow_listed_action_with_a_reason(kind):
    for s in pipeline_role_policy(SCOPE, kind)["Statement"]:
        if "*" in as_list(s["Resource"]):
            assert set(as_list(s["Action"])) <= set(WILDCARD_RESOURCE_ACTIONS), s["Sid"]
    assert all(len(reason) > 20 for reason in WILDCARD_RESOURCE_ACTIONS.values())


@pytest.mark.parametrize("kind", KINDS)
def test_every_other_resource_is_one_of_this_stacks(kind):
    own = (
        BUCKET_ARN,
        KEY_ARN,
        SCOPE.ecr_repository_arn,
        SAGEMAKER,
        f"arn:aws:logs:{REGION}:{ACCOUNT}:",
        ROLE_ARN,
    )
    for s in pipeline_role_policy(SCOPE, kind)["Statement"]:
        for resource in as_list(s["Resource"]):
            assert resource == "*" or resource.startswith(own), (s["Sid"], resource)


def test_metrics_are_published_only_to_the_platform_namespace():
    from model_code.metrics import NAMESPACE

    s = statement(pipeline_role_policy(SCOPE, "monitoring"), "PublishPlatformMetrics")
    assert s["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}


def test_the_role_passes_only_itself_and_only_to_sagemaker():
    s = statement(pipeline_role_policy(SCOPE, "training"), "PassThisRoleToItsJobs")
    assert s["Resource"] == [ROLE_ARN]
    assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_jobs_and_model_packages_are_scoped_to_pipeline_jobs_and_this_group():
    policy = pipeline_role_policy(SCOPE, "training")
    assert statement(policy, "RunPipelineJobs")["Resource"] == [
        f"{SAGEMAKER}:processing-job/pipelines-*",
        f"{SAGEMAKER}:training-job/pipelines-*",
    ]
    assert (
        f"{SAGEMAKER}:model-package/customer-churn/*"
        in statement(policy, "RegisterModelsInTheGroup")["Resource"]
    )


def test_only_training_registers_models_runs_training_jobs_or_tracks_runs():
    server = f"{SAGEMAKER}:mlflow-tracking-server/customer-churn"
    scoped = PipelineRoleScope(**{**SCOPE.__dict__, "mlflow_tracking_server_arn": server})
    for kind in ("ingestion", "monitoring"):
        granted = actions(pipeline_role_policy(scoped, kind))
        assert "sagemaker:CreateModelPackage" not in granted, kind
        assert "sagemaker:CreateTrainingJob" not in granted, kind
        assert not any(a.startswith("sagemaker-mlflow:") for a in granted), kind
        assert not any(
            r.startswith(f"{BUCKET_ARN}/mlflow/")
            for r in objects(pipeline_role_policy(scoped, kind), "s3:PutObject")
        )
    assert "sagemaker:CreateModelPackage" in actions(pipeline_role_policy(scoped, "training"))


def test_only_ingestion_writes_feature_records():
    assert "sagemaker:PutRecord" in actions(pipeline_role_policy(SCOPE, "ingestion"))
    assert "sagemaker:PutRecord" not in actions(pipeline_role_policy(SCOPE, "training"))
    assert "sagemaker:PutRecord" not in actions(pipeline_role_policy(SCOPE, "monitoring"))


def test_each_pipeline_reads_only_its_inputs_not_the_whole_bucket():
    reads = {kind: objects(pipeline_role_policy(SCOPE, kind), "s3:GetObject") for kind in KINDS}
    assert all(f"{BUCKET_ARN}/*" not in r for r in reads.values())
    assert reads["ingestion"] == {
        f"{BUCKET_ARN}/raw/*",
        f"{BUCKET_ARN}/schemas/*",
        f"{BUCKET_ARN}/pipelines/customer-churn-test-ingestion/*",
    }
    # Monitoring reads the captured traffic, the labels, the offline store and the champion's
    # baseline among training's outputs; never the raw uploads.
    assert reads["monitoring"] == {
        f"{BUCKET_ARN}/data-capture/*",
        f"{BUCKET_ARN}/ground-truth/*",
        f"{BUCKET_ARN}/feature-store/*",
        f"{BUCKET_ARN}/schemas/*",
        f"{BUCKET_ARN}/pipelines/customer-churn-test-training/*",
        f"{BUCKET_ARN}/pipelines/customer-churn-test-monitoring/*",
    }


def test_each_pipeline_writes_only_its_own_outputs():
    writes = {kind: objects(pipeline_role_policy(SCOPE, kind), "s3:PutObject") for kind in KINDS}
    assert writes["ingestion"] == {
        f"{BUCKET_ARN}/pipelines/customer-churn-test-ingestion/*",
        f"{BUCKET_ARN}/quarantine/*",
    }
    assert writes["monitoring"] == {f"{BUCKET_ARN}/pipelines/customer-churn-test-monitoring/*"}
    server = f"{SAGEMAKER}:mlflow-tracking-server/customer-churn"
    tracked = PipelineRoleScope(**{**SCOPE.__dict__, "mlflow_tracking_server_arn": server})
    assert objects(pipeline_role_policy(tracked, "training"), "s3:PutObject") == {
        f"{BUCKET_ARN}/pipelines/customer-churn-test-training/*",
        f"{BUCKET_ARN}/mlflow/*",
    }


def test_training_reads_the_offline_store_and_the_ingestion_reports_never_the_raw_uploads():
    policy = pipeline_role_policy(SCOPE, "training")
    assert objects(policy, "s3:GetObject") == {
        f"{BUCKET_ARN}/feature-store/*",
        f"{BUCKET_ARN}/pipelines/customer-churn-test-ingestion/*",
        f"{BUCKET_ARN}/schemas/*",
        f"{BUCKET_ARN}/pipelines/customer-churn-test-training/*",
    }
    # EngineerFeatures finds the store where DescribeFeatureGroup says it is: that group only.
    located = statement(policy, "LocateTheOfflineStore")
    assert (located["Action"], located["Resource"]) == (
        ["sagemaker:DescribeFeatureGroup"],
        [SCOPE.feature_group_arn],
    )


def test_listing_is_limited_to_the_prefixes_the_pipeline_reads_or_writes():
    s = statement(pipeline_role_policy(SCOPE, "ingestion"), "ListItsPrefixes")
    assert s["Condition"] == {
        "StringLike": {
            "s3:prefix": [
                "pipelines/customer-churn-test-ingestion/*",
                "quarantine/*",
                "raw/*",
                "schemas/*",
            ]
        }
    }


def test_mlflow_is_allowed_only_on_the_given_tracking_server():
    policy = pipeline_role_policy(SCOPE, "training")
    assert not any(s["Sid"] == "TrackRunsInMlflow" for s in policy["Statement"])
    server = f"{SAGEMAKER}:mlflow-tracking-server/customer-churn"
    scoped = PipelineRoleScope(**{**SCOPE.__dict__, "mlflow_tracking_server_arn": server})
    assert statement(pipeline_role_policy(scoped, "training"), "TrackRunsInMlflow")["Resource"] == [server]


def test_a_role_fits_iams_inline_policy_limit_for_a_150_feature_schema():
    # IAM: a role's inline policies total at most 10,240 characters (whitespace excluded). The
    # documents do not grow with the schema (prefixes, not columns), so the widest kind is
    # measured with long names.
    wide = PipelineRoleScope(
        **{
            **SCOPE.__dict__,
            "schema_name": "s" * 60,
            "stack": "staging",
            "mlflow_tracking_server_arn": f"{SAGEMAKER}:mlflow-tracking-server/{'s' * 60}",
        }
    )
    for kind in KINDS:
        compact = json.dumps(pipeline_role_policy(wide, kind), separators=(",", ":"))
        assert len(compact) < 10_240, (kind, len(compact))


# -- names, patterns, trust ---------------------------------------------------------------------


def test_pipeline_names_carry_the_schema_the_stack_and_the_kind():
    assert pipeline_name("customer-churn", "prod", "training") == "customer-churn-prod-training"


def test_raw_data_lands_in_one_folder_per_schema():
    assert raw_data_prefix("customer-churn") == "raw/customer-churn/"
    assert raw_data_prefix("customer-churn", "landing") == "landing/customer-churn/"


def test_the_ingestion_pattern_matches_objects_created_under_the_prefix_of_this_bucket():
    assert object_created_pattern(BUCKET, "raw/customer-churn/") == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [{"prefix": "raw/customer-churn/"}]}},
    }


def test_long_names_are_cut_to_the_limit_with_a_stable_distinct_suffix():
    assert fit_name("customer-churn-prod-pipelines") == "customer-churn-prod-pipelines"
    a, b = fit_name("x" * 70 + "-a"), fit_name("x" * 70 + "-b")
    assert len(a) == len(b) == 64 and a != b and a == fit_name("x" * 70 + "-a")


def test_eventbridge_assumes_the_role_only_for_this_accounts_rules():
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/r"
    condition = events_assume_role_policy(ACCOUNT, [rule])["Statement"][0]["Condition"]
    assert condition == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": [rule]},
    }


def test_the_start_policy_starts_only_the_given_pipelines():
    (s,) = start_pipeline_policy([f"{SAGEMAKER}:pipeline/p"])["Statement"]
    assert s["Action"] == "sagemaker:StartPipelineExecution" and s["Resource"] == [f"{SAGEMAKER}:pipeline/p"]


def test_the_schema_and_a_marker_in_each_initially_empty_input_prefix_are_uploaded():
    from pipelines.training import schema_object

    objects = seed_objects(SCHEMA, "customer-churn-prod")
    assert set(objects) == {
        schema_object(SCHEMA).key,
        "ground-truth/customer-churn/README.txt",
        "data-capture/customer-churn-prod/README.txt",
        # Monitoring reads one variant's folder: SageMaker refuses an input prefix with no object.
        "data-capture/customer-churn-prod/champion/README.txt",
        "data-capture/customer-churn-prod/challenger/README.txt",
        "feature-store/README.txt",
    }
    assert objects[schema_object(SCHEMA).key] == schema_object(SCHEMA).body


# -- the component, with builders that record what they are given --------------------------------


def args(**overrides) -> MlPipelinesArgs:
    return MlPipelinesArgs(
        **{
            "schema": SCHEMA,
            "region": REGION,
            "stack": "test",
            "bucket_name": BUCKET,
            "bucket_arn": BUCKET_ARN,
            "kms_key_arn": KEY_ARN,
            "image_uri": IMAGE,
            "feature_group_name": "customer-churn",
            "feature_group_arn": SCOPE.feature_group_arn,
            "model_package_group_name": "customer-churn",
            "model_package_group_arn": SCOPE.model_package_group_arn,
            "ecr_repository_arn": SCOPE.ecr_repository_arn,
            "tags": TAGS,
            **overrides,
        }
    )


@pytest.fixture
def builds(monkeypatch):
    """Replace each builder with one recording its arguments (the real ones take seconds)."""
    calls: dict[str, dict] = {}
    for kind in ml_pipelines.KINDS:
        module = __import__(f"pipelines.{kind}", fromlist=["get_pipeline"])

        def fake(kind=kind, **kwargs):
            calls[kind] = kwargs
            text = {k: v if isinstance(v, str | None) else repr(v) for k, v in kwargs.items()}
            return types.SimpleNamespace(
                definition=lambda: json.dumps({"Version": "2020-12-01", "Built": text})
            )

        monkeypatch.setattr(module, "get_pipeline", fake)
    return calls


@pytest.fixture
def deployed(builds):
    return run(lambda: MlPipelines("churn-pipelines", args()), region=REGION)


def test_three_pipelines_are_named_after_the_schema_and_each_runs_as_its_own_role(deployed):
    pipelines = {p.inputs["pipelineName"]: p for p in deployed.of_type("aws:sagemaker/pipeline:Pipeline")}
    assert set(pipelines) == {
        "customer-churn-test-ingestion",
        "customer-churn-test-training",
        "customer-churn-test-monitoring",
    }
    roles = {r.outputs["arn"]: r for r in deployed.of_type("aws:iam/role:Role")}
    used = {name: roles[p.inputs["roleArn"]].inputs["name"] for name, p in pipelines.items()}
    assert used == {f"customer-churn-test-{k}": f"customer-churn-test-{k}-pipeline" for k in KINDS}
    for name in used.values():
        role = next(r for r in roles.values() if r.inputs["name"] == name)
        [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        # SageMaker's documented confused-deputy guard: this account, its SageMaker resources.
        assert trust["Condition"] == {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:*"},
        }
        assert role.inputs["permissionsBoundary"] == (
            f"arn:aws:iam::{ACCOUNT}:policy/mlops-platform-test-boundary"
        )


def test_builders_get_the_stacks_region_role_bucket_image_and_key(builds, deployed):
    for kind, kwargs in builds.items():
        assert kwargs["region"] == REGION and kwargs["bucket"] == BUCKET, kind
        assert (
            kwargs["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/customer-churn-test-{kind}-pipeline"
            and kwargs["image_uri"] == IMAGE
            and kwargs["kms_key_arn"] == KEY_ARN
        )
        assert kwargs["schema"] is SCHEMA and kwargs["name"] == f"customer-churn-test-{kind}"
    assert builds["training"]["model_package_group"] == "customer-churn"


def test_monitoring_and_ingestion_use_the_stacks_groups_and_publish_under_its_name(builds):
    run(
        lambda: MlPipelines(
            "p", args(feature_group_name="churn-fg-test", model_package_group_name="churn-models-test")
        ),
        region=REGION,
    )
    assert builds["monitoring"]["feature_group_name"] == "churn-fg-test"
    assert builds["monitoring"]["model_package_group"] == "churn-models-test"
    assert builds["ingestion"]["feature_group_name"] == "churn-fg-test"
    assert builds["monitoring"]["stack"] == builds["ingestion"]["stack"] == "test"


def test_the_stacks_model_search_is_the_training_jobs_search_hyperparameter(builds):
    run(lambda: MlPipelines("p", args(model_search="quick")), region=REGION)
    assert dict(builds["training"]["hyperparameters"]) == {"search": "quick"}


def test_monitoring_reads_the_given_endpoint_and_offline_store(builds):
    store = f"s3://{BUCKET}/feature-store/"
    run(
        lambda: MlPipelines("p", args(endpoint_name="churn-endpoint", offline_store_uri=store)), region=REGION
    )
    assert builds["monitoring"]["endpoint_name"] == "churn-endpoint"
    assert builds["monitoring"]["offline_store_uri"] == store


def test_objects_created_under_the_raw_prefix_start_the_ingestion_pipeline(deployed):
    rule = deployed.one("aws:cloudwatch/eventRule:EventRule")
    assert json.loads(rule.inputs["eventPattern"]) == object_created_pattern(BUCKET, "raw/customer-churn/")
    target = deployed.one("aws:cloudwatch/eventTarget:EventTarget")
    ingestion = next(
        p for p in deployed.of_type("aws:sagemaker/pipeline:Pipeline") if p.name.endswith("-ingestion")
    )
    assert target.inputs["rule"] == rule.outputs["name"] and target.inputs["arn"] == ingestion.outputs["arn"]
    # The object that arrived, by the JSON path EventBridge resolves in the event: one run per
    # upload reads that upload only, never every object under the prefix again.
    assert target.inputs["sagemakerPipelineTarget"]["pipelineParameterLists"] == [
        {"name": "InputDataKey", "value": "$.detail.object.key"},
        {"name": "FeatureGroupName", "value": "customer-churn"},
    ]


def test_eventbridge_may_start_only_the_ingestion_pipeline(deployed):
    target = deployed.one("aws:cloudwatch/eventTarget:EventTarget")
    role = next(
        r for r in deployed.of_type("aws:iam/role:Role") if r.outputs["arn"] == target.inputs["roleArn"]
    )
    policy = next(
        p for p in deployed.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == f"{role.name}-id"
    )
    assert json.loads(policy.inputs["policy"]) == start_pipeline_policy([target.inputs["arn"]])
    rule = deployed.one("aws:cloudwatch/eventRule:EventRule")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"] == [rule.outputs["arn"]]


def test_the_schema_objects_are_encrypted_with_the_stack_key(deployed):
    objects = deployed.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert {o.inputs["key"] for o in objects} == set(seed_objects(SCHEMA, None))
    assert all(
        o.inputs["serverSideEncryption"] == "aws:kms" and o.inputs["kmsKeyId"] == KEY_ARN for o in objects
    )


def test_every_taggable_resource_carries_the_stack_tags(deployed):
    untaggable = {"aws:iam/rolePolicy:RolePolicy", "aws:cloudwatch/eventTarget:EventTarget"}
    for r in deployed.resources:
        if r.type.startswith("aws:") and r.type not in untaggable:
            assert r.inputs.get("tags") == TAGS, r.name


# -- the real builders ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    """The component with the real builders: each definition is built once (seconds each)."""
    return run(lambda: MlPipelines("churn-pipelines", args()), region=REGION)


def definitions(recorder) -> dict[str, dict]:
    return {
        p.inputs["pipelineName"].rsplit("-", 1)[1]: json.loads(p.inputs["pipelineDefinition"])
        for p in recorder.of_type("aws:sagemaker/pipeline:Pipeline")
    }


def test_definitions_run_in_the_stacks_bucket_as_its_role_with_its_key(real):
    for kind, definition in definitions(real).items():
        text = json.dumps(definition)
        role = f"arn:aws:iam::{ACCOUNT}:role/customer-churn-test-{kind}-pipeline"
        assert f"s3://{BUCKET}/" in text and role in text and KEY_ARN in text, kind
        assert IMAGE in text and "000000000000" not in text, kind


def test_the_ingestion_rule_sets_only_parameters_the_ingestion_pipeline_declares(real):
    declared = {p["Name"] for p in definitions(real)["ingestion"]["Parameters"]}
    target = real.one("aws:cloudwatch/eventTarget:EventTarget")
    assert {p["name"] for p in target.inputs["sagemakerPipelineTarget"]["pipelineParameterLists"]} <= declared


def test_every_schema_uri_a_definition_names_is_uploaded(real):
    uploaded = {
        f"s3://{BUCKET}/{o.inputs['key']}" for o in real.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    }
    for kind, definition in definitions(real).items():
        named = {u for u in _strings(definition) if u.startswith(f"s3://{BUCKET}/schemas/")}
        assert named and named <= uploaded, kind


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_a_definition_is_built_once_then_read_from_the_cache_by_the_digest_of_its_inputs(
    builds, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLOPS_DEFINITION_CACHE", str(tmp_path))
    inputs = {
        "schema": SCHEMA,
        "name": "customer-churn-test-ingestion",
        "region": REGION,
        "role_arn": ROLE_ARN,
        "bucket": BUCKET,
        "image_uri": IMAGE,
        "kms_key_arn": KEY_ARN,
        "feature_group_name": "customer-churn",
        "stack": "test",
    }
    first = ml_pipelines.build_definition("ingestion", **inputs)
    assert list(builds) == ["ingestion"] and len(list(tmp_path.iterdir())) == 1
    # A new process (nothing cached in memory): the same inputs are read back, not built.
    builds.clear()
    ml_pipelines._definition.cache_clear()
    assert ml_pipelines.build_definition("ingestion", **inputs) == first
    assert builds == {}
    # Any other input is another definition: built.
    other = ml_pipelines.build_definition("ingestion", **{**inputs, "bucket": "another-bucket"})
    assert builds["ingestion"]["bucket"] == "another-bucket" and other != first
