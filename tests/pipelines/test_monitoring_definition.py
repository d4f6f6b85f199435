"""The monitoring pipeline's definition: its DAG, parameters and requests, built with no network.

The tests read the definition JSON (what SageMaker and the local executor run), built with
a stack's key and names; a build takes seconds (the SDK re-validates its config on every
lookup), so each module builds twice: once for the tests, once to compare bytes. The helpers
at the top are shared with the ingestion pipeline's tests.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from model_code.contract import schema as schema_mod
from pipelines import common, monitoring, training
from tests.pipelines.definitions import gets, offline

NAME = "customer-churn-monitoring"
KEY = "arn:aws:kms:eu-west-1:000000000000:key/stack"
STACK = {
    "kms_key_arn": KEY,
    "endpoint_name": "churn-prod",
    "feature_group_name": "churn-fg",
    "model_package_group": "churn-group",
    "stack": "prod",
}
# Each step and the steps whose outputs it reads.
EXPECTED_UPSTREAM = {
    "ProfileTraffic": set(),
    "CheckDrift": {"ProfileTraffic"},
    "MatchGroundTruth": set(),
    "CheckQuality": {"MatchGroundTruth"},
    "CountOfflineRecords": set(),
    "CountNewData": {"CountOfflineRecords"},
    "CompareShadow": set(),
}
# Sharded steps and the input they deal out by S3 key.
SHARDED_INPUTS = {
    "ProfileTraffic": "capture",
    "MatchGroundTruth": "capture",
    "CountOfflineRecords": "offline-store",
}


def build(module: Any, **kwargs: Any) -> str:
    with offline():
        return module.get_pipeline(
            region=common.DEFAULT_REGION,
            role_arn=common.PLACEHOLDER_ROLE,
            bucket=common.PLACEHOLDER_BUCKET,
            schema=schema_mod.load(),
            **kwargs,
        ).definition()


def substitute(value: Any, defaults: dict[str, Any]) -> Any:
    """Pipeline variables as SageMaker resolves them: parameters by their defaults (as text in
    arguments), step properties by an S3 URI, the execution's start by a time."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and value["Get"].startswith("Parameters."):
            return defaults[value["Get"].removeprefix("Parameters.")]
        if set(value) == {"Get"} and value["Get"] == "Execution.StartDateTime":
            return "2026-02-02T00:00:00.000Z"
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return join["On"].join(str(substitute(v, defaults)) for v in join["Values"])
        if len(value) == 1 and next(iter(value)) == "Get":
            return "s3://bucket/resolved-at-run-time"
        return {k: substitute(v, defaults) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, defaults) for v in value]
    return value


def container_paths(step: dict) -> set[str]:
    args = step["Arguments"]
    paths = {i["S3Input"]["LocalPath"] for i in args["ProcessingInputs"]}
    return paths | {o["S3Output"]["LocalPath"] for o in args["ProcessingOutputConfig"]["Outputs"]}


def processing_request_errors(step: dict, defaults: dict[str, Any]) -> str | None:
    """What botocore says is wrong with the step's CreateProcessingJob request, if anything."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateProcessingJob").input_shape
    try:
        validate_parameters({"ProcessingJobName": "job", **substitute(step["Arguments"], defaults)}, shape)
    except ParamValidationError as exc:
        return str(exc)
    return None


def arguments(step: dict, defaults: dict[str, Any]) -> list[str]:
    """The step's ContainerArguments as the container receives them."""
    return [str(a) for a in substitute(step["Arguments"]["AppSpecification"]["ContainerArguments"], defaults)]


@pytest.fixture(scope="module")
def text() -> str:
    return build(monitoring, **STACK)


@pytest.fixture(scope="module")
def definition(text) -> dict:
    return json.loads(text)


@pytest.fixture(scope="module")
def steps(definition) -> dict[str, dict]:
    return {s["Name"]: s for s in definition["Steps"]}


@pytest.fixture(scope="module")
def defaults(definition) -> dict[str, Any]:
    return {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}


def test_a_second_build_gives_the_same_bytes(text):
    assert build(monitoring, **STACK) == text


@pytest.mark.parametrize("name", list(EXPECTED_UPSTREAM))
def test_each_step_reads_from_the_steps_before_it(steps, name):
    refs = {r.split(".")[1] for r in gets(steps[name]["Arguments"]) if r.startswith("Steps.")}
    assert refs == EXPECTED_UPSTREAM[name]
    assert steps[name]["Type"] == "Processing"


def test_every_step_reference_names_an_existing_step(definition, steps):
    refs = [r for r in gets(definition["Steps"]) if r.startswith("Steps.")]
    assert refs and all(r.split(".")[1] in steps for r in refs)


def test_every_parameter_reference_is_declared_and_every_parameter_used(definition):
    declared = {p["Name"] for p in definition["Parameters"]}
    used = {r.removeprefix("Parameters.") for r in gets(definition["Steps"]) if r.startswith("Parameters.")}
    assert used == declared


def test_parameters_default_to_the_platforms_layout_and_the_champion(defaults):
    bucket = common.PLACEHOLDER_BUCKET
    assert defaults == {
        "ProcessingInstanceCount": 1,
        "ProcessingInstanceType": "ml.m5.xlarge",
        "CaptureUri": f"s3://{bucket}/data-capture/churn-prod/",
        "Variant": "champion",
        "GroundTruthUri": f"s3://{bucket}/ground-truth/customer-churn/",
        "OfflineStoreUri": f"s3://{bucket}/feature-store/",
        "BaselineUri": "champion",
        "WindowEnd": "execution-start",
        "WindowHours": 24.0,
        "PsiThreshold": 0.05,
        "PValueThreshold": 0.01,
        "SinceTime": "last-training",
    }


@pytest.mark.parametrize(("name", "sharded"), SHARDED_INPUTS.items())
def test_shard_steps_deal_their_files_over_the_instance_count_parameter(steps, name, sharded):
    args = steps[name]["Arguments"]
    distribution = {i["InputName"]: i["S3Input"]["S3DataDistributionType"] for i in args["ProcessingInputs"]}
    assert distribution.pop(sharded) == "ShardedByS3Key"
    assert set(distribution.values()) == {"FullyReplicated"}  # the labels reach every shard whole
    assert args["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {
        "Get": "Parameters.ProcessingInstanceCount"
    }


@pytest.mark.parametrize("name", ["CheckDrift", "CheckQuality", "CountNewData"])
def test_merge_steps_run_on_one_instance_over_all_shard_outputs(steps, name):
    args = steps[name]["Arguments"]
    assert args["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert {i["S3Input"]["S3DataDistributionType"] for i in args["ProcessingInputs"]} == {"FullyReplicated"}


@pytest.mark.parametrize("name", list(EXPECTED_UPSTREAM))
def test_every_container_path_is_passed_as_an_argument(steps, name):
    paths = container_paths(steps[name])
    assert all(p.startswith("/opt/ml/processing/") for p in paths)
    assert paths <= {
        a for a in steps[name]["Arguments"]["AppSpecification"]["ContainerArguments"] if isinstance(a, str)
    }


@pytest.mark.parametrize("name", list(EXPECTED_UPSTREAM))
def test_the_container_accepts_the_arguments_the_step_passes(steps, defaults, name):
    from model_code.monitoring import monitor, shadow

    module = shadow if name == "CompareShadow" else monitor
    app = steps[name]["Arguments"]["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python", "-m", module.__name__]
    module._parser().parse_args(arguments(steps[name], defaults))  # exits on an unknown flag


@pytest.mark.parametrize("name", list(EXPECTED_UPSTREAM))
def test_each_request_is_a_valid_processing_job(steps, defaults, name):
    assert processing_request_errors(steps[name], defaults) is None


@pytest.mark.parametrize("name", ["ProfileTraffic", "MatchGroundTruth"])
def test_every_shard_ends_its_window_at_the_executions_start(steps, name):
    args = steps[name]["Arguments"]["AppSpecification"]["ContainerArguments"]
    flags = dict(zip(args[1::2], args[2::2], strict=True))
    assert flags["--window-end"] == {"Get": "Parameters.WindowEnd"}
    assert flags["--execution-start"] == {"Get": "Execution.StartDateTime"}


def test_outputs_go_under_the_executions_own_prefix(steps):
    for name, step in steps.items():
        for output in step["Arguments"]["ProcessingOutputConfig"]["Outputs"]:
            assert output["S3Output"]["S3Uri"]["Std:Join"]["Values"] == [
                f"s3://{common.PLACEHOLDER_BUCKET}/pipelines/{NAME}",
                {"Get": "Execution.PipelineExecutionId"},
                name,
                output["OutputName"],
            ]


def test_the_schema_is_the_object_the_training_pipeline_reads(steps):
    uri = training.schema_object(schema_mod.load()).uri(common.PLACEHOLDER_BUCKET)
    for step in steps.values():
        inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in step["Arguments"]["ProcessingInputs"]}
        assert inputs["schema"] == uri


def test_the_stack_key_encrypts_every_volume_and_output(steps):
    for step in steps.values():
        args = step["Arguments"]
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == KEY


def test_new_records_are_counted_in_the_stacks_feature_group(steps):
    args = steps["CountOfflineRecords"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--feature-group") + 1] == "churn-fg"
    assert args[args.index("--model-package-group") + 1] == "churn-group"


def test_the_champion_is_looked_up_in_the_stacks_model_package_group(steps):
    args = steps["ProfileTraffic"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--model-package-group") + 1] == "churn-group"


@pytest.mark.parametrize("name", ["ProfileTraffic", "MatchGroundTruth"])
@pytest.mark.parametrize("variant", ["champion", "challenger"])
def test_shards_read_only_one_variants_captured_traffic(steps, defaults, name, variant):
    # SageMaker captures <endpoint>/<variant>/yyyy/mm/dd/hh/: a shadow challenger's traffic
    # lies beside the champion's and must not be read with it.
    (capture,) = [
        i["S3Input"] for i in steps[name]["Arguments"]["ProcessingInputs"] if i["InputName"] == "capture"
    ]
    uri = substitute(capture["S3Uri"], {**defaults, "Variant": variant})
    assert uri == f"s3://{common.PLACEHOLDER_BUCKET}/data-capture/churn-prod/{variant}/"


@pytest.mark.parametrize("name", ["CheckDrift", "CheckQuality", "CompareShadow"])
def test_merge_steps_publish_under_the_variant_they_read(steps, defaults, name):
    args = arguments(steps[name], {**defaults, "Variant": "challenger"})
    assert args[args.index("--variant") + 1] == "challenger"


@pytest.mark.parametrize("name", list(EXPECTED_UPSTREAM))
def test_every_job_knows_its_stack_and_region(steps, name):
    environment = steps[name]["Arguments"]["Environment"]
    assert environment == {"AWS_DEFAULT_REGION": common.DEFAULT_REGION, "MLOPS_STACK": "prod"}


def test_the_stack_environment_name_is_the_one_publishers_read():
    from model_code import metrics

    assert monitoring.STACK_ENV == metrics.STACK_ENV
