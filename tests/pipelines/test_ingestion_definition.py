"""The ingestion pipeline's definition: validate the upload in shards, then fill the feature group."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_code.contract import schema as schema_mod
from pipelines import common, ingestion, training
from tests.pipelines.definitions import gets
from tests.pipelines.test_monitoring_definition import (
    arguments,
    build,
    container_paths,
    processing_request_errors,
    substitute,
)

NAME = "customer-churn-ingestion"
KEY = "arn:aws:kms:eu-west-1:000000000000:key/stack"
STACK = {"kms_key_arn": KEY, "feature_group_name": "customer-churn-dev", "stack": "dev"}
STEPS = ("ValidateData", "IngestFeatures")


@pytest.fixture(scope="module")
def text() -> str:
    return build(ingestion, **STACK)


@pytest.fixture(scope="module")
def definition(text) -> dict:
    return json.loads(text)


@pytest.fixture(scope="module")
def steps(definition) -> dict[str, dict]:
    return {s["Name"]: s for s in definition["Steps"]}


@pytest.fixture(scope="module")
def defaults(definition) -> dict[str, Any]:
    return {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}


def inputs(step: dict) -> dict[str, dict]:
    return {i["InputName"]: i["S3Input"] for i in step["Arguments"]["ProcessingInputs"]}


def test_a_second_build_gives_the_same_bytes(text):
    assert build(ingestion, **STACK) == text


def test_ingestion_puts_what_validation_accepted(steps):
    assert list(steps) == list(STEPS)
    assert {k: v["S3Uri"] for k, v in inputs(steps["IngestFeatures"]).items() if k != "schema"} == {
        "accepted": {"Get": "Steps.ValidateData.ProcessingOutputConfig.Outputs['accepted'].S3Output.S3Uri"},
        "validation": {"Get": "Steps.ValidateData.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"},
    }


def test_every_step_reference_names_an_existing_step(definition, steps):
    refs = [r for r in gets(definition["Steps"]) if r.startswith("Steps.")]
    assert refs and all(r.split(".")[1] in steps for r in refs)


def test_every_parameter_reference_is_declared_and_every_parameter_used(definition):
    declared = {p["Name"] for p in definition["Parameters"]}
    used = {r.removeprefix("Parameters.") for r in gets(definition["Steps"]) if r.startswith("Parameters.")}
    assert used == declared


def test_parameters_default_to_the_raw_data_prefix_and_the_stacks_feature_group(defaults):
    assert defaults == {
        "ProcessingInstanceCount": 1,
        "ProcessingInstanceType": "ml.m5.xlarge",
        "InputDataKey": "raw/customer-churn/",
        "FeatureGroupName": "customer-churn-dev",
        "MaxQuarantineShare": 0.05,
    }


def test_validation_deals_the_upload_over_the_instance_count_parameter(steps):
    args = steps["ValidateData"]["Arguments"]
    assert inputs(steps["ValidateData"])["data"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert inputs(steps["ValidateData"])["schema"]["S3DataDistributionType"] == "FullyReplicated"
    assert args["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {
        "Get": "Parameters.ProcessingInstanceCount"
    }
    assert steps["IngestFeatures"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1


@pytest.mark.parametrize("name", STEPS)
def test_every_container_path_is_passed_as_an_argument(steps, name):
    paths = container_paths(steps[name])
    assert all(p.startswith("/opt/ml/processing/") for p in paths)
    assert paths <= {
        a for a in steps[name]["Arguments"]["AppSpecification"]["ContainerArguments"] if isinstance(a, str)
    }


def test_the_validation_shards_accept_the_arguments_validate_takes(steps, defaults):
    from model_code.contract import validate

    argv = arguments(steps["ValidateData"], defaults)
    assert argv[0] == "validate"
    args = validate._parse_args(argv[1:])  # exits on an unknown flag
    assert (str(args.accepted_dir), args.max_quarantine_share) == ("/opt/ml/processing/output/accepted", 0.05)


def test_the_ingest_step_accepts_the_arguments_it_is_given(steps, defaults):
    from model_code.ingestion import ingest

    argv = arguments(steps["IngestFeatures"], defaults)
    assert argv[0] == "put"
    args = ingest._parser().parse_args(argv[1:])
    assert (args.feature_group, str(args.report_dir)) == (
        "customer-churn-dev",
        "/opt/ml/processing/output/report",
    )


@pytest.mark.parametrize("name", STEPS)
def test_each_request_is_a_valid_processing_job(steps, defaults, name):
    assert processing_request_errors(steps[name], defaults) is None


def test_every_instance_stamps_data_without_event_time_with_the_executions_start(steps):
    for step in steps.values():
        args = step["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[args.index("--ingestion-time") + 1] == {"Get": "Execution.StartDateTime"}


def test_quarantined_rows_go_where_the_bucket_expires_them(steps):
    outputs = {
        o["OutputName"]: o["S3Output"]
        for o in steps["ValidateData"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs["quarantine"]["S3Uri"]["Std:Join"]["Values"] == [
        f"s3://{common.PLACEHOLDER_BUCKET}/quarantine/customer-churn",
        {"Get": "Execution.PipelineExecutionId"},
    ]
    assert (
        outputs["accepted"]["S3Uri"]["Std:Join"]["Values"][0]
        == f"s3://{common.PLACEHOLDER_BUCKET}/pipelines/{NAME}"
    )


def test_the_schema_is_the_object_the_training_pipeline_reads(steps):
    uri = training.schema_object(schema_mod.load()).uri(common.PLACEHOLDER_BUCKET)
    assert all(inputs(step)["schema"]["S3Uri"] == uri for step in steps.values())


def test_the_stack_key_encrypts_every_volume_and_output(steps):
    for step in steps.values():
        args = step["Arguments"]
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == KEY


def test_a_run_reads_only_the_object_it_is_given_in_the_stacks_bucket(steps, defaults):
    # The raw-data rule passes the arrived object's key: one upload, one object validated.
    data = inputs(steps["ValidateData"])["data"]
    key = "raw/customer-churn/2026/02/upload-7.csv"
    assert substitute(data["S3Uri"], {**defaults, "InputDataKey": key}) == (
        f"s3://{common.PLACEHOLDER_BUCKET}/{key}"
    )


def test_every_job_publishes_under_its_stack(steps):
    for name in STEPS:
        assert steps[name]["Arguments"]["Environment"]["MLOPS_STACK"] == "dev", name
