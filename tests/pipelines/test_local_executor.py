"""The local executor runs SDK-built definitions against moto's server, with real subprocesses.

Processing steps run ``count_rows.py`` (beside this file); the training step runs the
project's own ``train`` command on synthetic churn data.
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from sagemaker.core.processing import ProcessingInput, ProcessingOutput, ProcessingS3Input, Processor
from sagemaker.core.shapes import ProcessingS3Output
from sagemaker.core.workflow import (
    ConditionGreaterThanOrEqualTo,
    Join,
    JsonGet,
    ParameterInteger,
    ParameterString,
    PropertyFile,
)
from sagemaker.mlops.workflow import ConditionStep, FailStep, Pipeline, ProcessingStep, TrainingStep
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, OutputDataConfig

from model_code.contract import synthetic
from pipelines.common import PROCESSING, Target, output_uri, session
from pipelines.local import DefinitionError, LocalExecutor, ParameterError, main
from tests.pipelines.conftest import REGION

BUCKET = "mlops-test-artifacts"
PIPELINE = "churn"
TARGET = Target(region=REGION, bucket=BUCKET)
SCRIPT = str(Path(__file__).with_name("count_rows.py"))
COUNT = PropertyFile(name="Count", output_name="result", path="count.json")
ROWS_PER_FILE = 3
REFERENCE = f"s3://{BUCKET}/reference"


@functools.cache
def sdk_session():
    # Each SDK call re-validates the session's config (~0.2 s): build with one session, once.
    return session(TARGET)


def count_step(name, data, *, arguments=(), instances=1, depends_on=None):
    """A processing step running count_rows.py on ``data`` (sharded by key across instances)."""
    processor = Processor(
        role=TARGET.role_arn,
        image_uri=TARGET.image,
        instance_count=instances,
        instance_type="ml.m5.large",
        entrypoint=["python", SCRIPT],
        env={"MARKER": "from-the-definition"},
        sagemaker_session=sdk_session(),
    )
    inputs = [_input("data", data, "ShardedByS3Key"), _input("reference", REFERENCE, "FullyReplicated")]
    args = [
        *("--input", f"{PROCESSING}/input/data", "--output", f"{PROCESSING}/output"),
        *("--replicated", f"{PROCESSING}/input/reference", *arguments),
    ]
    output = ProcessingOutput(
        output_name="result",
        s3_output=ProcessingS3Output(
            s3_uri=output_uri(TARGET, PIPELINE, name, "result"),
            local_path=f"{PROCESSING}/output",
            s3_upload_mode="EndOfJob",
        ),
    )
    return ProcessingStep(
        name=name,
        step_args=processor.run(inputs=inputs, outputs=[output], arguments=args),
        property_files=[COUNT],
        depends_on=depends_on,
    )


def _input(name, uri, distribution):
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri,
            local_path=f"{PROCESSING}/input/{name}",
            s3_data_type="S3Prefix",
            s3_input_mode="File",
            s3_data_distribution_type=distribution,
        ),
    )


def definition(steps, parameters=()) -> str:
    return Pipeline(
        name=PIPELINE, parameters=list(parameters), steps=steps, sagemaker_session=sdk_session()
    ).definition()


@functools.cache
def gated_definition() -> str:
    """CountRows ─► CountIsEnough (rows ≥ MinRows) ─► Accept | TooFewRows (Fail)."""
    data = ParameterString(name="InputData", default_value=f"s3://{BUCKET}/data")
    min_rows = ParameterInteger(name="MinRows", default_value=5)
    label = ParameterString(name="Label", default_value="default-label")
    instances = ParameterInteger(name="Instances", default_value=1)
    fail_with = ParameterString(name="FailWith", default_value="")
    count = count_step(
        "CountRows", data, arguments=["--label", label, "--fail", fail_with], instances=instances
    )
    rows = JsonGet(step_name=count.name, property_file=COUNT, json_path="rows")
    accept = count_step("Accept", count.properties.ProcessingOutputConfig.Outputs["result"].S3Output.S3Uri)
    fail = FailStep(
        name="TooFewRows", error_message=Join(on=" ", values=["only", rows, "rows; need", min_rows])
    )
    gate = ConditionStep(
        name="CountIsEnough",
        conditions=[ConditionGreaterThanOrEqualTo(left=rows, right=min_rows)],
        if_steps=[accept],
        else_steps=[fail],
    )
    return definition([count, gate], [data, min_rows, label, instances, fail_with])


@pytest.fixture
def s3(aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for i in range(8):
        client.put_object(Bucket=BUCKET, Key=f"data/part-{i}.csv", Body="a,b\n1,2\n3,4\n5,6\n")
    for name in ("reference-a.json", "reference-b.json"):
        client.put_object(Bucket=BUCKET, Key=f"reference/{name}", Body="{}")
    return client


def run(definition_json, tmp_path, parameters=None, **options):
    executor = LocalExecutor(definition_json, pipeline_name=PIPELINE, work_dir=tmp_path, **options)
    return executor.start(parameters)


def read_json(s3, uri):
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(s3, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


# -- parameters ------------------------------------------------------------------------------


def test_defaults_apply_when_no_parameters_are_given(s3, tmp_path):
    execution = run(gated_definition(), tmp_path)

    assert execution.parameters == {
        "InputData": f"s3://{BUCKET}/data",
        "MinRows": 5,
        "Label": "default-label",
        "Instances": 1,
        "FailWith": "",
    }
    assert (
        read_json(s3, execution.step("CountRows").outputs["result"] + "/count.json")["label"]
        == "default-label"
    )


def test_given_parameters_override_defaults_and_take_their_declared_type(s3, tmp_path):
    execution = run(gated_definition(), tmp_path, {"Label": "given", "MinRows": "3"})

    assert execution.parameters["MinRows"] == 3
    assert read_json(s3, execution.step("CountRows").outputs["result"] + "/count.json")["label"] == "given"


def test_an_unknown_parameter_is_refused_before_anything_runs(s3, tmp_path):
    with pytest.raises(ParameterError, match="unknown parameter Colour"):
        run(gated_definition(), tmp_path, {"Colour": "blue"})

    assert list(tmp_path.iterdir()) == []
    assert keys_under(s3, "pipelines/") == []


def test_a_wrongly_typed_parameter_is_refused_naming_it(s3, tmp_path):
    with pytest.raises(ParameterError, match="parameter MinRows: expected an Integer, got 'many'"):
        run(gated_definition(), tmp_path, {"MinRows": "many"})

    assert list(tmp_path.iterdir()) == []


# -- processing ------------------------------------------------------------------------------


def test_processing_outputs_land_in_s3_under_the_execution_id(s3, tmp_path):
    execution = run(gated_definition(), tmp_path)

    prefix = f"pipelines/{PIPELINE}/{execution.execution_id}/CountRows/result"
    assert execution.step("CountRows").outputs == {"result": f"s3://{BUCKET}/{prefix}"}
    assert keys_under(s3, prefix) == [f"{prefix}/count.json", f"{prefix}/hosts/algo-1.json"]
    assert read_json(s3, f"s3://{BUCKET}/{prefix}/count.json")["rows"] == 8 * ROWS_PER_FILE


def test_sharded_input_gives_each_instance_a_disjoint_share_and_outputs_merge(s3, tmp_path):
    execution = run(gated_definition(), tmp_path, {"Instances": 4})

    uri = execution.step("CountRows").outputs["result"]
    seen = [read_json(s3, f"{uri}/hosts/algo-{i}.json") for i in range(1, 5)]
    assert [len(s["files"]) for s in seen] == [2, 2, 2, 2]
    assert sorted(f for s in seen for f in s["files"]) == [f"part-{i}.csv" for i in range(8)]
    assert {tuple(s["hosts"]) for s in seen} == {("algo-1", "algo-2", "algo-3", "algo-4")}


def test_a_fully_replicated_input_reaches_every_instance(s3, tmp_path):
    execution = run(gated_definition(), tmp_path, {"Instances": 2})

    uri = execution.step("CountRows").outputs["result"]
    for host in ("algo-1", "algo-2"):
        assert read_json(s3, f"{uri}/hosts/{host}.json")["replicated"] == [
            "reference-a.json",
            "reference-b.json",
        ]


def test_steps_get_their_environment_and_the_callers_aws_endpoint(s3, tmp_path, aws):
    execution = run(gated_definition(), tmp_path)

    seen = read_json(s3, execution.step("CountRows").outputs["result"] + "/hosts/algo-1.json")
    assert (seen["marker"], seen["endpoint"]) == ("from-the-definition", aws)


def test_a_failing_step_stops_the_run_with_its_failure_file_text(s3, tmp_path):
    message = "bad data: 3 rows without a label"
    execution = run(gated_definition(), tmp_path, {"FailWith": message})

    assert (execution.status, execution.failure_reason) == ("Failed", message)
    assert [(s.name, s.status, s.failure_reason) for s in execution.steps] == [
        ("CountRows", "Failed", message)
    ]
    record = json.loads((execution.work_dir / "execution.json").read_text())
    assert record["PipelineExecutionStatus"] == "Failed"
    assert record["Steps"][0]["FailureReason"] == message
    assert keys_under(s3, "pipelines/") == []


def test_steps_run_in_dependency_order_whatever_order_they_are_listed_in(s3, tmp_path):
    first = count_step("First", f"s3://{BUCKET}/data")
    second = count_step("Second", first.properties.ProcessingOutputConfig.Outputs["result"].S3Output.S3Uri)
    last = count_step("Last", f"s3://{BUCKET}/data", depends_on=[second])

    execution = run(definition([last, second, first]), tmp_path)

    assert [s.name for s in execution.steps] == ["First", "Second", "Last"]
    assert execution.status == "Succeeded"


def test_a_dependency_cycle_is_refused(tmp_path):
    steps = [
        {"Name": "A", "Type": "Fail", "DependsOn": ["B"], "Arguments": {}},
        {"Name": "B", "Type": "Fail", "DependsOn": ["A"], "Arguments": {}},
    ]
    with pytest.raises(DefinitionError, match="cycle: A, B"):
        LocalExecutor({"Version": "2020-12-01", "Steps": steps}, pipeline_name=PIPELINE, work_dir=tmp_path)


# -- conditions and fail steps ---------------------------------------------------------------


def test_a_condition_on_a_property_file_runs_the_if_branch_when_it_holds(s3, tmp_path):
    execution = run(gated_definition(), tmp_path, {"MinRows": 24})

    assert [s.name for s in execution.steps] == ["CountRows", "CountIsEnough", "Accept"]
    assert execution.step("CountIsEnough").metadata == {"Condition": {"Outcome": "True"}}
    assert execution.status == "Succeeded"


def test_a_fail_step_on_the_else_branch_fails_the_execution_with_its_message(s3, tmp_path):
    execution = run(gated_definition(), tmp_path, {"MinRows": 25})

    assert [s.name for s in execution.steps] == ["CountRows", "CountIsEnough", "TooFewRows"]
    assert (execution.status, execution.failure_reason) == ("Failed", "only 24 rows; need 25")


# -- training and registration ---------------------------------------------------------------


def training_definition() -> str:
    """TrainModel (the image's `train`) ─► RegisterModel (its artifact into the registry)."""
    trainer = ModelTrainer(
        training_image=TARGET.image,
        role=TARGET.role_arn,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        output_data_config=OutputDataConfig(
            s3_output_path=output_uri(TARGET, PIPELINE, "TrainModel", "model")
        ),
        hyperparameters={"model_type": "logistic", "random_state": 1},
        environment={"MLOPS_TRACKING": "off"},
        base_job_name="train",
        sagemaker_session=sdk_session(),
    )
    train = TrainingStep(
        name="TrainModel",
        step_args=trainer.train(
            input_data_config=[InputData(channel_name="train", data_source=f"s3://{BUCKET}/train")]
        ),
    )
    built = json.loads(definition([train]))
    built["Steps"].append(register_step({"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}))
    return json.dumps(built)


def register_step(model_data, **extra):
    """A RegisterModel step as ModelStep(ModelBuilder.register(...)) writes one."""
    return {
        "Name": "RegisterModel",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": "customer-churn",
            "ModelApprovalStatus": "PendingManualApproval",
            "InferenceSpecification": {
                "Containers": [{"Image": TARGET.image, "ModelDataUrl": model_data}],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            **extra,
        },
    }


@pytest.fixture(scope="module")
def trained(aws_module, tmp_path_factory):
    """One training run (the slow part), with what the tests look at read back at once."""
    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(
        Bucket=BUCKET, Key="train/churn.csv", Body=synthetic.generate(300, seed=1).to_csv(index=False)
    )
    sagemaker.create_model_package_group(ModelPackageGroupName="customer-churn")
    execution = run(training_definition(), tmp_path_factory.mktemp("work"))
    model_uri = execution.step("TrainModel").outputs.get("ModelArtifacts", "s3://none/none")
    bucket, key = model_uri.removeprefix("s3://").split("/", 1)
    try:
        archive = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            members = sorted(tar.getnames())
    except ClientError:
        members = None
    packages = sagemaker.list_model_packages(ModelPackageGroupName="customer-churn")[
        "ModelPackageSummaryList"
    ]
    described = [sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"]) for p in packages]
    return execution, model_uri, members, described


def test_a_training_step_packs_the_model_dir_at_its_s3_output_path(trained):
    execution, model_uri, members, _ = trained

    assert execution.status == "Succeeded", execution.failure_reason
    job = execution.step("TrainModel").outputs["TrainingJobName"]
    prefix = f"s3://{BUCKET}/pipelines/{PIPELINE}/{execution.execution_id}/TrainModel/model"
    assert model_uri == f"{prefix}/{job}/output/model.tar.gz"
    assert {"model.joblib", "metadata.json", "schema.yaml"} <= set(members)


def test_the_training_run_travels_in_the_model_archive_even_untracked(trained):
    # The step runs with MLOPS_TRACKING=off, as dev and staging have no tracking server.
    _, _, members, _ = trained
    assert "run.json" in members


def test_a_register_step_registers_the_trained_artifact(trained):
    execution, model_uri, _, described = trained

    assert [p["ModelPackageArn"] for p in described] == [
        execution.step("RegisterModel").outputs["ModelPackageArn"]
    ]
    assert described[0]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == model_uri


def test_a_register_step_creates_a_model_package_from_resolved_arguments(s3, tmp_path):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="customer-churn")
    steps = [
        register_step(
            {"Get": "Parameters.ModelData"}, ModelPackageDescription={"Get": "Execution.PipelineExecutionId"}
        )
    ]
    parameters = [{"Name": "ModelData", "Type": "String", "DefaultValue": f"s3://{BUCKET}/m/model.tar.gz"}]

    execution = run({"Version": "2020-12-01", "Parameters": parameters, "Steps": steps}, tmp_path)

    [package] = sagemaker.list_model_packages(ModelPackageGroupName="customer-churn")[
        "ModelPackageSummaryList"
    ]
    assert package["ModelPackageArn"] == execution.step("RegisterModel").outputs["ModelPackageArn"]
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelPackageDescription"] == execution.execution_id


def test_botocore_validation_of_a_register_step_is_its_failure_reason(s3, tmp_path):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="customer-churn")
    steps = [
        register_step(
            "s3://b/model.tar.gz", CustomerMetadataProperties={"min_auc": {"Get": "Parameters.MinAuc"}}
        )
    ]
    parameters = [{"Name": "MinAuc", "Type": "Float", "DefaultValue": 0.7}]

    execution = run({"Version": "2020-12-01", "Parameters": parameters, "Steps": steps}, tmp_path)

    assert execution.status == "Failed"
    assert (
        "Invalid type for parameter CustomerMetadataProperties.min_auc, value: 0.7"
        in execution.failure_reason
    )
    assert (
        sagemaker.list_model_packages(ModelPackageGroupName="customer-churn")["ModelPackageSummaryList"] == []
    )


# -- command line ----------------------------------------------------------------------------


def test_the_command_runs_a_definition_file_with_parameters(s3, tmp_path, capsys):
    path = tmp_path / "churn.json"
    path.write_text(gated_definition())

    code = main(
        ["--definition", str(path), "--parameter", "MinRows=30", "--work-dir", str(tmp_path / "runs")]
    )

    out = capsys.readouterr().out
    assert code == 1
    assert "TooFewRows" in out and "only 24 rows; need 30" in out
    assert list((tmp_path / "runs").glob("*/execution.json"))


def test_the_command_refuses_a_wrongly_typed_parameter(s3, tmp_path, capsys):
    path = tmp_path / "churn.json"
    path.write_text(gated_definition())

    code = main(
        ["--definition", str(path), "--parameter", "MinRows=1.5", "--work-dir", str(tmp_path / "runs")]
    )

    assert code == 2
    assert "parameter MinRows: expected an Integer, got '1.5'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("condition", "outcome"),
    [
        ({"Type": "Equals", "LeftValue": {"Get": "Parameters.Colour"}, "RightValue": "blue"}, "True"),
        ({"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.Auc"}, "RightValue": 0.8}, "False"),
        ({"Type": "LessThanOrEqualTo", "LeftValue": "0.8", "RightValue": {"Get": "Parameters.Auc"}}, "True"),
        ({"Type": "In", "QueryValue": {"Get": "Parameters.Colour"}, "Values": ["red", "blue"]}, "True"),
        ({"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": 1, "RightValue": 1}}, "False"),
        (
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "LessThan", "LeftValue": {"Get": "Parameters.Auc"}, "RightValue": 0.5},
                    {
                        "Type": "GreaterThanOrEqualTo",
                        "LeftValue": {"Get": "Parameters.Auc"},
                        "RightValue": 0.8,
                    },
                ],
            },
            "True",
        ),
    ],
    ids=["equals", "greater-than", "less-or-equal-numeric-text", "in", "not", "or"],
)
def test_condition_types_evaluate_on_resolved_values(condition, outcome, tmp_path):
    steps = [{"Name": "Check", "Type": "Condition", "Arguments": {"Conditions": [condition]}}]
    parameters = [
        {"Name": "Colour", "Type": "String", "DefaultValue": "blue"},
        {"Name": "Auc", "Type": "Float", "DefaultValue": 0.8},
    ]

    execution = run({"Version": "2020-12-01", "Parameters": parameters, "Steps": steps}, tmp_path)

    assert execution.step("Check").metadata == {"Condition": {"Outcome": outcome}}


def test_a_model_step_creates_the_model_it_describes(s3, tmp_path):
    model = {
        "Name": "CreateModel",
        "Type": "Model",
        "Arguments": {
            "ExecutionRoleArn": TARGET.role_arn,
            "PrimaryContainer": {"Image": TARGET.image, "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"},
        },
    }

    execution = run({"Version": "2020-12-01", "Steps": [model]}, tmp_path)

    name = execution.step("CreateModel").outputs["ModelName"]
    assert name == f"pipelines-{execution.execution_id}-CreateModel"
    assert [m["ModelName"] for m in boto3.client("sagemaker").list_models()["Models"]] == [name]
