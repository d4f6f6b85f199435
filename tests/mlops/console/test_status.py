"""``mlops status`` against moto: a stack's resources created with boto3, read back as a user sees them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from mlops.cli import main as mlops
from mlops.console import maturity

REGION = "eu-west-1"
STACK = "prod"
ENDPOINT = "customer-churn-prod"
GROUP = "customer-churn-prod"
TRAINING = "customer-churn-prod-training"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"


def _stage() -> None:
    session = boto3.Session(region_name=REGION)
    sagemaker, cloudwatch = session.client("sagemaker"), session.client("cloudwatch")
    sagemaker.create_model(ModelName="m1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    sagemaker.create_endpoint_config(
        EndpointConfigName="c1",
        ProductionVariants=[
            {"VariantName": "champion", "ModelName": "m1", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0},
        ],
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="c1")
    for name, state in ((f"{ENDPOINT}-drift-contract", "ALARM"), (f"{ENDPOINT}-quality-auc", "OK")):
        cloudwatch.put_metric_alarm(
            AlarmName=name, MetricName="FeatureDrifted", Namespace="MLOps", Statistic="Maximum", Period=3600,
            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
        )  # fmt: skip
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")
    # Another stack's alarm is not this stack's.
    cloudwatch.put_metric_alarm(
        AlarmName="customer-churn-dev-quality-auc", MetricName="AUC", Namespace="MLOps", Statistic="Minimum",
        Period=3600, EvaluationPeriods=1, Threshold=0.7, ComparisonOperator="LessThanThreshold",
    )  # fmt: skip
    definition = {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "TriggerReason", "Type": "String", "DefaultValue": "manual"}],
        "Steps": [],
    }
    sagemaker.create_pipeline(PipelineName=TRAINING, PipelineDefinition=json.dumps(definition), RoleArn=ROLE)
    sagemaker.start_pipeline_execution(
        PipelineName=TRAINING, PipelineParameters=[{"Name": "TriggerReason", "Value": "drift"}]
    )
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    # The first version's evaluation report, where EvaluateModel writes it and registration points.
    s3 = session.client("s3")
    s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    report = {"binary_classification_metrics": {"auc": {"value": 0.84}}}
    s3.put_object(Bucket="artifacts", Key="eval/evaluation.json", Body=json.dumps(report).encode())
    evaluation = {"ContentType": "application/json", "S3Uri": "s3://artifacts/eval/evaluation.json"}
    for status, metrics in (
        ("Approved", {"ModelQuality": {"Statistics": evaluation}}),
        ("PendingManualApproval", {}),
    ):
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [{"Image": IMAGE}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelMetrics=metrics,
        )
    now = datetime.now(UTC)
    dims = [{"Name": "Model", "Value": "customer-churn"}, {"Name": "Stack", "Value": STACK},
            {"Name": "Variant", "Value": "champion"}]  # fmt: skip
    cloudwatch.put_metric_data(
        Namespace="MLOps",
        MetricData=[
            {"MetricName": "FeaturePSI", "Dimensions": [*dims, {"Name": "Feature", "Value": f}], "Value": v,
             "Timestamp": now}
            for f, v in (("contract", 0.9), ("tenure_months", 0.4), ("payment_method", 0.01))
        ],
    )  # fmt: skip


@pytest.fixture
def staged(aws):
    _stage()
    return aws


def status_json(capsys) -> dict:
    assert mlops(["status", "--stack", STACK, "--region", REGION, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_names_the_endpoint_and_its_variants(staged, capsys):
    facts = status_json(capsys)
    assert facts["endpoint_name"] == ENDPOINT
    assert facts["endpoint"]["status"] == "InService"
    assert [(v["name"], v["shadow"]) for v in facts["endpoint"]["variants"]] == [("champion", False)]


def test_json_lists_this_stacks_alarms_and_those_in_alarm(staged, capsys):
    facts = status_json(capsys)
    assert {a["name"] for a in facts["alarms"]} == {f"{ENDPOINT}-drift-contract", f"{ENDPOINT}-quality-auc"}
    assert facts["alarms_in_alarm"] == [f"{ENDPOINT}-drift-contract"]


def test_json_gives_the_executions_trigger_reasons(staged, capsys):
    facts = status_json(capsys)
    (execution,) = facts["executions"]
    assert execution["pipeline"] == TRAINING and execution["trigger_reason"] == "drift"
    assert facts["trigger_reasons"] == ["drift"]


def test_json_lists_both_model_versions_with_their_approval(staged, capsys):
    facts = status_json(capsys)
    assert [(m["version"], m["approval_status"], m["auc"]) for m in facts["models"]] == [
        (1, "Approved", 0.84),
        (2, "PendingManualApproval", None),
    ]


def test_the_most_drifted_features_come_first(staged, capsys):
    facts = status_json(capsys)
    assert [d["feature"] for d in facts["drifted_features"]] == [
        "contract",
        "tenure_months",
        "payment_method",
    ]


def test_the_terminal_view_shows_the_same_facts(staged, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped names
    assert mlops(["status", "--stack", STACK, "--region", REGION]) == 0
    out = capsys.readouterr().out
    for fact in (
        ENDPOINT,
        "InService",
        f"{ENDPOINT}-drift-contract",
        "drift",
        "PendingManualApproval",
        "contract",
    ):
        assert fact in out
    assert "MLOps maturity" in out and "level" in out


def test_an_empty_account_shows_no_endpoint_rather_than_failing(aws, capsys):
    facts = status_json(capsys)
    assert facts["endpoint"] is None and facts["alarms"] == [] and facts["models"] == []


def test_a_published_shadow_comparison_is_shown(staged, capsys):
    dims = [{"Name": "Model", "Value": "customer-churn"}, {"Name": "Stack", "Value": STACK},
            {"Name": "Variant", "Value": "challenger"}]  # fmt: skip
    figures = {"ShadowAgreementRate": 0.93, "ShadowChallengerAUC": 0.81, "ShadowProductionAUC": 0.78}
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="MLOps",
        MetricData=[{"MetricName": k, "Dimensions": dims, "Value": v} for k, v in figures.items()],
    )
    shadow = status_json(capsys)["shadow"]["challenger"]
    assert (shadow["agreement_rate"], shadow["challenger_auc"], shadow["production_auc"]) == (
        0.93,
        0.81,
        0.78,
    )


def test_no_shadow_comparison_without_a_shadow(staged, capsys):
    assert status_json(capsys)["shadow"] == {}


class _Config:
    mlflow_enabled = True
    gitlab_trigger_url = None
    drift_monitoring = True
    monitoring_schedule_enabled = True
    retrain_schedule_enabled = True


def test_maturity_names_what_the_next_level_needs():
    judged = maturity.judge(_Config(), has_ci=True)
    assert judged.level == 2
    assert judged.missing == [
        "CI/CD of deployment: set gitlabTriggerUrl so an approved model is deployed by CI"
    ]


def test_maturity_is_manual_without_tracked_experiments():
    config = _Config()
    config.mlflow_enabled = False
    judged = maturity.judge(config, has_ci=True)
    assert (judged.level, judged.missing) == (1, ["tracked experiments: set mlflowEnabled: true"])


def test_full_automation_when_deployment_is_automated_too():
    config = _Config()
    config.gitlab_trigger_url = "https://gitlab.example.com/api/v4/projects/1/trigger/pipeline"
    assert maturity.judge(config, has_ci=True).level == 3


class _RolledBack:
    """DescribeEndpoint as SageMaker answers after an auto-rollback (moto has no UpdateEndpoint)."""

    def describe_endpoint(self, EndpointName):
        return {
            "EndpointName": EndpointName,
            "EndpointStatus": "InService",
            "EndpointConfigName": "c1",
            "FailureReason": f"Update of endpoint {EndpointName} to c2 was rolled back to c1: alarm x in ALARM",
            "ProductionVariants": [
                {"VariantName": "champion", "CurrentWeight": 1.0, "CurrentInstanceCount": 2}
            ],
            "LastDeploymentConfig": {
                "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY"}}
            },
        }


def test_a_rolled_back_deployment_is_reported_with_its_reason():
    from mlops.console.status import endpoint_facts

    facts = endpoint_facts(_RolledBack(), ENDPOINT)
    assert facts["rolled_back"] is True
    assert facts["last_deployment"] == "CANARY"
    assert "rolled back to c1" in facts["failure_reason"]


def test_watch_refreshes_until_interrupted_and_exits_cleanly(staged):
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "mlops.cli", "status", "--stack", STACK, "--region", REGION,
               "--watch", "--interval", "0.2"]  # fmt: skip
    root = str(Path(__file__).resolve().parents[3])  # this checkout, whatever the cwd
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": root}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as watch:
        time.sleep(10)  # start, draw, and refresh a few times
        watch.send_signal(signal.SIGINT)
        stdout, stderr = watch.communicate(timeout=30)
    assert watch.returncode == 0, stderr
    assert ENDPOINT in stdout and f"{ENDPOINT}-drift-contract" in stdout


def test_piped_output_cuts_no_name_and_wraps_no_value(staged):
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[3])
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": root}
    result = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "status", "--stack", STACK, "--region", REGION],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout
    for name in (TRAINING, f"{ENDPOINT}-drift-contract", f"{ENDPOINT}-quality-auc"):
        assert any(name in line for line in lines), name
    # Each execution's start time whole on the line that names its pipeline.
    (row,) = [line for line in lines if TRAINING in line and "drift" in line]
    assert re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", row)
    assert all(line == line.rstrip() for line in lines)  # no padding to a width a pipe does not have


def test_the_roll_out_and_the_last_retraining_are_shown(staged, capsys):
    facts = status_json(capsys)
    assert facts["endpoint"]["rollout"]["outcome"] == "none since the endpoint was created"
    assert (facts["last_retraining"]["pipeline"], facts["last_retraining"]["trigger_reason"]) == (
        TRAINING,
        "drift",
    )
