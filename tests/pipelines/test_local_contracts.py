"""The local executor is as strict as SageMaker: requests, environment, failure files, branches.

Each test runs a small definition against moto's server with ``count_rows.py`` (beside this
file) as the container, and checks what a user of SageMaker would see: a refused request
naming the step and member, a step that cannot see the caller's shell, the failure reason
read only from the file SageMaker reads, and independent branches that run side by side
and are all recorded when one of them fails.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import boto3
import pytest

from pipelines.local import DefinitionError, LocalExecutor, warm
from tests.pipelines.test_local_executor import (  # noqa: F401 (s3 is a fixture)
    BUCKET,
    PIPELINE,
    SCRIPT,
    TARGET,
    count_step,
    definition,
    keys_under,
    read_json,
    run,
    s3,
)

PACKAGE = Path(__file__).resolve().parents[2] / "pipelines" / "local"


@pytest.fixture
def bucket(s3):  # noqa: F811 (the emulator with the test bucket and its data)
    return s3


def one_count_step(**arguments) -> dict:
    """A definition of one CountRows processing step, as a dict to alter."""
    built = json.loads(definition([count_step("CountRows", f"s3://{BUCKET}/data")]))
    built["Steps"][0]["Arguments"].update(arguments)
    return built


def branches(first: list[str], second: list[str]) -> str:
    """Two independent branches: Left ─► LeftAfter and Right ─► RightAfter."""
    left = count_step("Left", f"s3://{BUCKET}/data", arguments=first)
    right = count_step("Right", f"s3://{BUCKET}/data", arguments=second)
    after = [
        count_step(f"{s.name}After", s.properties.ProcessingOutputConfig.Outputs["result"].S3Output.S3Uri)
        for s in (left, right)
    ]
    return definition([left, right, *after])


# -- requests SageMaker would refuse ---------------------------------------------------------


def _instance_type(built):
    cluster = built["Steps"][0]["Arguments"]["ProcessingResources"]["ClusterConfig"]
    cluster["InstanceType"] = "ml.bogus.huge"


def _environment_key(built):
    built["Steps"][0]["Arguments"]["Environment"]["1BAD-KEY"] = "x"


def _job_name(built):
    built["Steps"][0]["Arguments"]["ProcessingJobName"] = "j" * 80


@pytest.mark.parametrize(
    ("alter", "problem"),
    [
        (_instance_type, "ProcessingResources.ClusterConfig.InstanceType: 'ml.bogus.huge' is not one of"),
        (_environment_key, "Environment key '1BAD-KEY': '1BAD-KEY' does not match the pattern"),
        (_job_name, "ProcessingJobName: has 80 characters, more than the maximum 63"),
    ],
    ids=["instance-type", "environment-key", "job-name"],
)
def test_a_job_request_aws_would_refuse_fails_naming_the_step_and_member(bucket, tmp_path, alter, problem):
    built = one_count_step()
    alter(built)

    execution = run(built, tmp_path)

    record = execution.step("CountRows")
    assert (execution.status, record.status) == ("Failed", "Failed")
    assert record.failure_reason.startswith("step CountRows: CreateProcessingJob would be refused by AWS:")
    assert problem in record.failure_reason
    assert record.logs == []  # refused before any container started
    assert keys_under(bucket, "pipelines/") == []


def test_a_model_request_aws_would_refuse_fails_before_reaching_the_emulator(bucket, tmp_path):
    model = {
        "Name": "CreateModel",
        "Type": "Model",
        # An account id of 3 digits: botocore's own checks let it through, AWS would not.
        "Arguments": {
            "ExecutionRoleArn": "arn:aws:iam::123:role/pipelines",
            "PrimaryContainer": {"Image": TARGET.image},
        },
    }

    execution = run({"Version": "2020-12-01", "Steps": [model]}, tmp_path)

    assert execution.status == "Failed"
    assert "CreateModel would be refused by AWS" in execution.failure_reason
    assert "ExecutionRoleArn: 'arn:aws:iam::123:role/pipelines' does not match the pattern" in (
        execution.failure_reason
    )
    assert boto3.client("sagemaker").list_models()["Models"] == []  # moto would have accepted it


@pytest.mark.parametrize("name", ["S" * 65, "Count Rows"])
def test_a_step_name_create_pipeline_would_refuse_is_refused_before_anything_runs(tmp_path, name):
    steps = [{"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]

    with pytest.raises(DefinitionError, match="a Name is 1 to 64 of A-Z a-z 0-9 - _"):
        LocalExecutor({"Version": "2020-12-01", "Steps": steps}, pipeline_name=PIPELINE, work_dir=tmp_path)


# -- a clean environment ---------------------------------------------------------------------


def test_the_callers_environment_does_not_reach_a_step(bucket, tmp_path, monkeypatch, aws):
    monkeypatch.setenv("CALLER_SECRET", "from-the-shell")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///caller.db")

    execution = run(definition([count_step("CountRows", f"s3://{BUCKET}/data")]), tmp_path)

    seen = read_json(bucket, execution.step("CountRows").outputs["result"] + "/hosts/algo-1.json")
    assert "CALLER_SECRET" not in seen["environ"] and "MLFLOW_TRACKING_URI" not in seen["environ"]
    # What it does see: its Environment, SageMaker's variables, the image's, the emulator's.
    allowed = {"MARKER", "PATH", "PYTHONPATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
    allowed |= set(warm.THREAD_LIMITS)  # one thread per math library: steps run side by side
    unexpected = [
        k for k in seen["environ"] if k not in allowed and not k.startswith(("SM_", "AWS_", "MLOPS_OPT_ML"))
    ]
    assert unexpected == []
    assert (seen["marker"], seen["endpoint"]) == ("from-the-definition", aws)


# -- failure reasons where SageMaker reads them ----------------------------------------------


def test_a_processing_step_reports_its_exit_message(bucket, tmp_path):
    failing = json.loads(
        definition([count_step("CountRows", f"s3://{BUCKET}/data", arguments=["--fail", "bad rows"])])
    )
    execution = run(failing, tmp_path / "again")

    assert execution.step("CountRows").failure_reason == "bad rows"


def test_a_processing_step_writing_the_training_failure_file_shows_no_reason(bucket, tmp_path):
    arguments = ["--fail", "bad rows", "--fail-into", "failure"]
    execution = run(
        definition([count_step("CountRows", f"s3://{BUCKET}/data", arguments=arguments)]), tmp_path
    )

    reason = execution.step("CountRows").failure_reason
    assert reason.startswith("AlgorithmError: exit status 1")
    assert "bad rows" not in reason


def training_step(*arguments: str) -> dict:
    """A Training step running count_rows.py on the train channel into /opt/ml/model."""
    return {
        "Name": "TrainModel",
        "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": {
                "TrainingImage": TARGET.image,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": ["python", SCRIPT],
                "ContainerArguments": [
                    "--input",
                    "/opt/ml/input/data/train",
                    "--output",
                    "/opt/ml/model",
                    *arguments,
                ],
            },
            "RoleArn": TARGET.role_arn,
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data"}
                    },
                }
            ],
        },
    }


@pytest.mark.parametrize(("written", "shown"), [("failure", True), ("message", False)])
def test_a_training_step_reports_only_its_failure_file(bucket, tmp_path, written, shown):
    step = training_step("--fail", "no positive rows", "--fail-into", written)

    execution = run({"Version": "2020-12-01", "Steps": [step]}, tmp_path)

    reason = execution.step("TrainModel").failure_reason
    assert (reason == "no positive rows") is shown
    assert shown or reason.startswith("AlgorithmError: exit status 1")


def test_a_training_step_is_named_to_its_container(bucket, tmp_path):
    execution = run({"Version": "2020-12-01", "Steps": [training_step()]}, tmp_path)

    job = execution.step("TrainModel").outputs["TrainingJobName"]
    seen = json.loads(
        (
            tmp_path / execution.execution_id / "TrainModel" / "algo-1" / "model" / "hosts" / "algo-1.json"
        ).read_text()
    )
    assert {"TRAINING_JOB_NAME", "TRAINING_JOB_ARN"} <= set(seen["environ"])
    assert job.startswith(f"pipelines-{execution.execution_id}-TrainModel")


# -- independent branches --------------------------------------------------------------------


def test_independent_steps_run_at_the_same_time(bucket, tmp_path):
    execution = run(branches(["--sleep", "1.5"], ["--sleep", "1.5"]), tmp_path)

    left, right = execution.step("Left"), execution.step("Right")
    assert execution.status == "Succeeded"
    assert left.start < right.end and right.start < left.end  # their runs overlap


def test_one_branch_failing_does_not_hide_the_others_results(bucket, tmp_path):
    execution = run(branches(["--fail", "left broke"], ["--sleep", "0.5"]), tmp_path)

    statuses = {s.name: s.status for s in execution.steps}
    assert statuses == {"Left": "Failed", "Right": "Succeeded", "RightAfter": "Succeeded"}
    assert (execution.status, execution.failure_reason) == ("Failed", "left broke")
    assert read_json(bucket, execution.step("RightAfter").outputs["result"] + "/count.json")["files"] == 2
    recorded = json.loads((execution.work_dir / "execution.json").read_text())
    assert [s["StepName"] for s in recorded["Steps"] if s["StepStatus"] == "Succeeded"] == [
        "Right",
        "RightAfter",
    ]


def test_max_parallel_one_runs_steps_one_after_another(bucket, tmp_path):
    executor = LocalExecutor(
        branches(["--sleep", "0.5"], []), pipeline_name=PIPELINE, work_dir=tmp_path, max_parallel=1
    )

    execution = executor.start()

    left, right = execution.step("Left"), execution.step("Right")
    assert left.end <= right.start


# -- the package's shape ---------------------------------------------------------------------


def package_imports() -> dict[str, set[str]]:
    """Each module of pipelines.local and the package modules it imports, at any depth of the file."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        if path.stem in ("__init__", "__main__"):
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("pipelines.local."):
                    imported.add(node.module.rsplit(".", 1)[1])
                elif node.module == "pipelines.local":
                    imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(
                    a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("pipelines.local.")
                )
        graph[path.stem] = imported & {p.stem for p in PACKAGE.glob("*.py")}
    return graph


def test_the_package_imports_flow_one_way():
    graph = package_imports()
    order, seen = [], set()

    def visit(module, path):
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        if module not in seen:
            for dep in sorted(graph[module]):
                visit(dep, [*path, module])
            seen.add(module)
            order.append(module)

    for module in sorted(graph):
        visit(module, [])
    assert not any("executor" in deps for name, deps in graph.items() if name not in ("executor", "cli"))
