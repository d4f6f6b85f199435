"""Pipeline executions run the stored definition in the background, through boto3: statuses, steps, jobs, events."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import timedelta

import pytest
import requests
from botocore.exceptions import ClientError

from infra.functions import retrain_guard
from infra.ml_pipelines import object_created_pattern
from infra.retraining import GUARD_RUNTIME, alarm_pattern, executing_pattern

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/pipeline"
IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mlops:latest"


def processing(name: str, code: str) -> dict:
    """A Processing step running ``python -c code`` (the project image's interpreter, locally)."""
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
            },
            "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python", "-c", code]},
            "RoleArn": ROLE,
        },
    }


def definition(*steps: dict) -> str:
    return json.dumps(
        {
            "Version": "2020-12-01",
            "Parameters": [{"Name": "TriggerReason", "Type": "String", "DefaultValue": "manual"}],
            "Steps": list(steps),
        }
    )


def make_pipeline(sm, *steps: dict, name: str = "training") -> str:
    return sm.create_pipeline(PipelineName=name, PipelineDefinition=definition(*steps), RoleArn=ROLE)[
        "PipelineArn"
    ]


def wait_until(sm, arn: str, statuses=("Succeeded", "Failed", "Stopped"), timeout=30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if described["PipelineExecutionStatus"] in statuses:
            return described
        time.sleep(0.05)
    raise AssertionError(f"{arn} still {described['PipelineExecutionStatus']} after {timeout} s")


def test_an_execution_runs_its_steps_and_reports_them(emulator, client):
    sm = client("sagemaker")
    make_pipeline(
        sm, processing("PrepareData", "print('prepared')"), processing("CheckData", "print('checked')")
    )
    arn = sm.start_pipeline_execution(
        PipelineName="training", PipelineParameters=[{"Name": "TriggerReason", "Value": "drift"}]
    )["PipelineExecutionArn"]
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
    described = wait_until(sm, arn)
    assert described["PipelineExecutionStatus"] == "Succeeded" and "FailureReason" not in described
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")[
        "PipelineExecutionSteps"
    ]
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [
        ("PrepareData", "Succeeded"),
        ("CheckData", "Succeeded"),
    ]
    job_arn = steps[0]["Metadata"]["ProcessingJob"]["Arn"]
    job = sm.describe_processing_job(ProcessingJobName=job_arn.rsplit("/", 1)[-1])
    assert job["ProcessingJobStatus"] == "Completed"
    assert job["AppSpecification"]["ContainerEntrypoint"][-1] == "print('prepared')"
    parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert parameters == [{"Name": "TriggerReason", "Value": "drift"}]


def test_a_failing_step_fails_the_execution_with_its_reason(emulator, client):
    sm = client("sagemaker")
    fail = {"Name": "Refuse", "Type": "Fail", "Arguments": {"ErrorMessage": "AUC 0.61 is below 0.70"}}
    make_pipeline(sm, processing("Prepare", "pass"), fail)
    arn = sm.start_pipeline_execution(PipelineName="training")["PipelineExecutionArn"]
    described = wait_until(sm, arn)
    assert (described["PipelineExecutionStatus"], described["FailureReason"]) == (
        "Failed",
        "AUC 0.61 is below 0.70",
    )
    (last, *_) = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)[
        "PipelineExecutionSteps"
    ]  # newest first
    assert (last["StepName"], last["StepStatus"], last["FailureReason"]) == (
        "Refuse",
        "Failed",
        "AUC 0.61 is below 0.70",
    )
    summary = sm.list_pipeline_executions(PipelineName="training")["PipelineExecutionSummaries"][0]
    assert summary["PipelineExecutionFailureReason"] == "AUC 0.61 is below 0.70"


def test_an_unknown_parameter_is_refused_naming_it(emulator, client):
    sm = client("sagemaker")
    make_pipeline(sm, processing("Prepare", "pass"))
    with pytest.raises(ClientError) as raised:
        sm.start_pipeline_execution(
            PipelineName="training", PipelineParameters=[{"Name": "Reason", "Value": "x"}]
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "unknown parameter Reason" in raised.value.response["Error"]["Message"]
    assert sm.list_pipeline_executions(PipelineName="training")["PipelineExecutionSummaries"] == []


def test_stopping_an_execution_starts_no_further_step(emulator, client):
    sm = client("sagemaker")
    # Independent steps start together (as on SageMaker): "Never" waits for "Slow" to finish.
    make_pipeline(
        sm,
        processing("Slow", "import time; time.sleep(3)"),
        {**processing("Never", "pass"), "DependsOn": ["Slow"]},
    )
    arn = sm.start_pipeline_execution(PipelineName="training")["PipelineExecutionArn"]
    # Stopped while "Slow" runs (a stop before any step starts ends the execution at once).
    deadline = time.monotonic() + 30
    while not any(
        s["StepName"] == "Slow" and s["StepStatus"] == "Executing"
        for s in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    ):
        assert time.monotonic() < deadline, "Slow never started"
        time.sleep(0.05)
    sm.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="s" * 32)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Stopping"
    sm.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="s" * 32)  # a repeat is fine
    assert wait_until(sm, arn)["PipelineExecutionStatus"] == "Stopped"
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert "Never" not in [s["StepName"] for s in steps]


def queue(client, name="seen") -> tuple[str, str]:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def received(client, url) -> list[dict]:
    messages = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_status_changes_and_model_package_approval_are_events(emulator, client):
    sm, eb = client("sagemaker"), client("events")
    url, arn = queue(client)
    eb.put_rule(Name="sagemaker", EventPattern=json.dumps({"source": ["aws.sagemaker"]}))
    eb.put_targets(Rule="sagemaker", Targets=[{"Id": "q", "Arn": arn}])
    pipeline = make_pipeline(sm, processing("Prepare", "pass"))
    execution = sm.start_pipeline_execution(PipelineName="training")["PipelineExecutionArn"]
    wait_until(sm, execution)
    sm.create_model_package_group(ModelPackageGroupName="churn")
    package = sm.create_model_package(
        ModelPackageGroupName="churn",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    sm.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    seen = received(client, url)
    statuses = [
        (e["detail"]["previousPipelineExecutionStatus"], e["detail"]["currentPipelineExecutionStatus"])
        for e in seen
        if e["detail-type"] == "SageMaker Model Building Pipeline Execution Status Change"
    ]
    assert statuses == [("Starting", "Executing"), ("Executing", "Succeeded")]
    assert all(e["detail"]["pipelineArn"] == pipeline for e in seen if "pipelineArn" in e["detail"])
    approvals = [
        (e["detail"]["ModelPackageVersion"], e["detail"]["ModelApprovalStatus"])
        for e in seen
        if e["detail-type"] == "SageMaker Model Package State Change"
    ]
    assert approvals == [(1, "PendingManualApproval"), (1, "Approved")]


def deploy_guard(client, pipeline_arn: str) -> str:
    """The program's retrain guard, zipped as the stack deploys it, with its environment."""
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.write(retrain_guard.__file__, "retrain_guard.py")
    role = client("iam").create_role(
        RoleName="guard",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    return client("lambda").create_function(
        FunctionName="retrain-guard",
        Runtime=GUARD_RUNTIME,
        Role=role,
        Handler="retrain_guard.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": {retrain_guard.GUARDED_PIPELINE_ARN: pipeline_arn}},
    )["FunctionArn"]


def test_two_alarms_firing_together_start_the_training_pipeline_once(emulator, client):
    sm, eb, cw = client("sagemaker"), client("events"), client("cloudwatch")
    pipeline = make_pipeline(sm, processing("Train", "import time; time.sleep(1)"))
    names = ["churn-drift-tenure", "churn-new-records"]
    for name in names:
        cw.put_metric_alarm(
            AlarmName=name,
            Namespace="MLOps",
            MetricName=name,
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="ignore",
        )
    eb.put_rule(Name="retrain", EventPattern=json.dumps(alarm_pattern(names)))
    eb.put_targets(
        Rule="retrain",
        Targets=[
            {
                "Id": "training",
                "Arn": pipeline,
                "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/events",
                "SageMakerPipelineParameters": {
                    "PipelineParameterList": [{"Name": "TriggerReason", "Value": "drift"}]
                },
            }
        ],
    )
    guard = deploy_guard(client, pipeline)
    eb.put_rule(Name="guard", EventPattern=json.dumps(executing_pattern(pipeline)))
    eb.put_targets(Rule="guard", Targets=[{"Id": "guard", "Arn": guard}])
    cw.put_metric_data(Namespace="MLOps", MetricData=[{"MetricName": n, "Value": 1.0} for n in names])

    emulator.advance(60)  # both alarms go to ALARM in the same evaluation
    emulator.wait_for_executions()

    assert [cw.describe_alarms(AlarmNames=[n])["MetricAlarms"][0]["StateValue"] for n in names] == [
        "ALARM",
        "ALARM",
    ]
    summaries = sm.list_pipeline_executions(PipelineName="training", SortOrder="Ascending")[
        "PipelineExecutionSummaries"
    ]
    assert [s["PipelineExecutionStatus"] for s in summaries] == ["Succeeded", "Stopped"]
    journal = requests.get(f"{client('s3').meta.endpoint_url}/_mlops/deliveries", timeout=10).json()
    actions = [
        (i["event"]["detail"]["pipelineExecutionArn"], i["result"]["action"])
        for i in journal["lambda_invocations"]
    ]
    assert actions == [
        (summaries[0]["PipelineExecutionArn"], "allowed"),
        (summaries[1]["PipelineExecutionArn"], "stopped"),
    ]


def test_an_upload_starts_the_ingestion_pipeline_through_eventbridge_and_its_steps_are_listed(
    emulator, client
):
    s3, eb, sm = client("s3"), client("events"), client("sagemaker")
    pipeline = make_pipeline(sm, processing("ValidateData", "print('validated')"), name="ingestion")
    s3.create_bucket(Bucket="data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_notification_configuration(
        Bucket="data", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    eb.put_rule(Name="raw-data", EventPattern=json.dumps(object_created_pattern("data", "raw/churn/")))
    eb.put_targets(
        Rule="raw-data",
        Targets=[
            {
                "Id": "ingestion",
                "Arn": pipeline,
                "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/events",
                "SageMakerPipelineParameters": {
                    "PipelineParameterList": [{"Name": "TriggerReason", "Value": "new-data"}]
                },
            }
        ],
    )
    s3.put_object(Bucket="data", Key="raw/churn/2026-01-05.csv", Body=b"customer_id,churned\n1,0\n")
    (summary,) = sm.list_pipeline_executions(PipelineName="ingestion")["PipelineExecutionSummaries"]
    assert wait_until(sm, summary["PipelineExecutionArn"])["PipelineExecutionStatus"] == "Succeeded"
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=summary["PipelineExecutionArn"])
    assert [(s["StepName"], s["StepStatus"]) for s in steps["PipelineExecutionSteps"]] == [
        ("ValidateData", "Succeeded")
    ]
    parameters = sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=summary["PipelineExecutionArn"]
    )
    assert parameters["PipelineParameters"] == [{"Name": "TriggerReason", "Value": "new-data"}]


def test_a_training_steps_job_is_described_with_its_model_artifact(emulator, client):
    sm = client("sagemaker")
    client("s3").create_bucket(
        Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    train = {
        "Name": "TrainModel",
        "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": [
                    "python",
                    "-c",
                    "import os, pathlib; pathlib.Path(os.environ['SM_MODEL_DIR'], 'model.txt').write_text('m')",
                ],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://artifacts/training"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }
    make_pipeline(sm, train)
    arn = sm.start_pipeline_execution(PipelineName="training")["PipelineExecutionArn"]
    assert wait_until(sm, arn)["PipelineExecutionStatus"] == "Succeeded"
    (step,) = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    job = sm.describe_training_job(TrainingJobName=step["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[-1])
    assert job["TrainingJobStatus"] == "Completed"
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
    assert client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


def test_an_upload_starts_a_run_with_the_object_key_and_the_start_time_on_the_virtual_clock(emulator, client):
    # As the ingestion rule is deployed: the key is a dynamic path parameter ($.detail.object.key)
    # and the step stamps rows with Execution.StartDateTime.
    s3, eb, sm = client("s3"), client("events"), client("sagemaker")
    check = (
        "import sys; key, started = sys.argv[1:3]; "
        "assert key == 'raw/churn.csv', key; assert started.startswith('2026-01-05T12:00'), started"
    )
    step = processing("ValidateData", check)
    step["Arguments"]["AppSpecification"]["ContainerArguments"] = [
        {"Get": "Parameters.InputDataKey"},
        {"Std:Join": {"On": "", "Values": [{"Get": "Execution.StartDateTime"}]}},
    ]
    spec = json.loads(definition(step))
    spec["Parameters"].append({"Name": "InputDataKey", "Type": "String", "DefaultValue": "raw/"})
    arn = sm.create_pipeline(PipelineName="ingestion", PipelineDefinition=json.dumps(spec), RoleArn=ROLE)[
        "PipelineArn"
    ]
    s3.create_bucket(Bucket="data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_notification_configuration(
        Bucket="data", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    eb.put_rule(Name="raw-data", EventPattern=json.dumps(object_created_pattern("data", "raw/")))
    parameters = [{"Name": "InputDataKey", "Value": "$.detail.object.key"}]
    eb.put_targets(
        Rule="raw-data",
        Targets=[
            {"Id": "p", "Arn": arn, "SageMakerPipelineParameters": {"PipelineParameterList": parameters}}
        ],
    )
    s3.put_object(Bucket="data", Key="raw/churn.csv", Body=b"id\n1\n")
    (summary,) = sm.list_pipeline_executions(PipelineName="ingestion")["PipelineExecutionSummaries"]
    described = wait_until(sm, summary["PipelineExecutionArn"])
    (step_run,) = sm.list_pipeline_execution_steps(PipelineExecutionArn=summary["PipelineExecutionArn"])[
        "PipelineExecutionSteps"
    ]
    assert (described["PipelineExecutionStatus"], step_run.get("FailureReason")) == ("Succeeded", None)
    started = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=summary["PipelineExecutionArn"])
    assert {"Name": "InputDataKey", "Value": "raw/churn.csv"} in started["PipelineParameters"]


def _execution_metrics(cw, pipeline: str) -> dict[str, tuple[float, str]]:
    """Sum of each SageMaker execution metric of ``pipeline`` over the clock's day, with its unit."""
    from tests.localcloud.behaviours.support import START

    found = {}
    for metric in cw.list_metrics(Namespace="AWS/Sagemaker/ModelBuildingPipeline")["Metrics"]:
        if metric["Dimensions"] != [{"Name": "PipelineName", "Value": pipeline}]:
            continue
        name = metric["MetricName"]
        answer = cw.get_metric_statistics(
            Namespace="AWS/Sagemaker/ModelBuildingPipeline", MetricName=name, Dimensions=metric["Dimensions"],
            StartTime=START - timedelta(hours=1), EndTime=START + timedelta(days=1), Period=86400,
            Statistics=["Sum"],
        )  # fmt: skip
        (point,) = answer["Datapoints"]
        found[name] = (point["Sum"], point["Unit"])
    return found


def test_executions_publish_sagemakers_execution_metrics_by_pipeline(emulator, client):
    # SageMaker's developer guide, "SageMaker pipelines metrics": namespace
    # AWS/Sagemaker/ModelBuildingPipeline, dimension PipelineName; ExecutionStarted, -Succeeded,
    # -Failed, -Stopped in Count, ExecutionDuration in Milliseconds.
    sm, cw = client("sagemaker"), client("cloudwatch")
    make_pipeline(sm, processing("Prepare", "import time; time.sleep(0.2)"))
    make_pipeline(
        sm, {"Name": "Refuse", "Type": "Fail", "Arguments": {"ErrorMessage": "no"}}, name="refusing"
    )
    for name in ("training", "training", "refusing"):
        wait_until(sm, sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"])
    training = _execution_metrics(cw, "training")
    assert {k: v for k, v in training.items() if k != "ExecutionDuration"} == {
        "ExecutionStarted": (2.0, "Count"),
        "ExecutionSucceeded": (2.0, "Count"),
    }
    duration, unit = training["ExecutionDuration"]
    assert unit == "Milliseconds" and duration >= 2 * 200  # two runs of a 0.2 s step
    refusing = _execution_metrics(cw, "refusing")
    assert (refusing["ExecutionStarted"], refusing["ExecutionFailed"]) == ((1.0, "Count"), (1.0, "Count"))
