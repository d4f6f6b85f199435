"""``mlops verify`` against resources created in moto (a ThreadedMotoServer on 127.0.0.1).

moto reports no rollbacks: the rolled-back case sets the endpoint's answer the way SageMaker
gives it after an automatic rollback (in service on the old configuration, with a failure
reason), through a botocore hook on DescribeEndpoint.
"""

from __future__ import annotations

import json
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from mlops import verify

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/customer-churn-dev-endpoint"
PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn-dev/3"
OLD_PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn-dev/2"
ENDPOINT = "customer-churn-dev"
DECLARED, PREVIOUS, UNDECLARED = (f"{ENDPOINT}-{d}" for d in ("0b1c2d3e", "9a8b7c6d", "77777777"))
ALARMS = {
    "computational": [f"{ENDPOINT}-champion-5xx-rate", f"{ENDPOINT}-champion-latency-p99"],
    "quality": f"{ENDPOINT}-quality-auc",
}
DEFINITION = json.dumps({"Version": "2020-12-01", "Steps": [{"Name": "TrainModel", "Type": "Training"}]})


@pytest.fixture(scope="module")
def server():
    """moto's server on a free loopback port for this module; yields its URL."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


@pytest.fixture
def session(server, monkeypatch):
    """An emptied emulator, and a boto3 session reaching it through AWS_ENDPOINT_URL."""
    urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST")).close()
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return boto3.session.Session(region_name=REGION)


def _model(sm, name: str, package: str) -> None:
    sm.create_model(ModelName=name, PrimaryContainer={"ModelPackageName": package}, ExecutionRoleArn=ROLE)


def _config(sm, name: str, model: str) -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "champion",
                "ModelName": model,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )


def deploy(session, *, serving: str = DECLARED) -> dict:
    """A healthy dev stack (or the endpoint on ``serving``); returns the stack outputs."""
    sm, cw = session.client("sagemaker"), session.client("cloudwatch")
    _model(sm, f"{ENDPOINT}-champion-new", PACKAGE)
    _model(sm, f"{ENDPOINT}-champion-old", OLD_PACKAGE)
    _config(sm, DECLARED, f"{ENDPOINT}-champion-new")
    _config(sm, PREVIOUS, f"{ENDPOINT}-champion-old")
    _config(sm, UNDECLARED, f"{ENDPOINT}-champion-old")
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=serving)
    for name in verify._alarm_names(ALARMS):
        cw.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
    sm.create_pipeline(PipelineName=f"{ENDPOINT}-training", PipelineDefinition=DEFINITION, RoleArn=ROLE)
    sm.create_feature_group(
        FeatureGroupName=ENDPOINT,
        RecordIdentifierFeatureName="customer_id",
        EventTimeFeatureName="event_time",
        FeatureDefinitions=[
            {"FeatureName": "customer_id", "FeatureType": "String"},
            {"FeatureName": "event_time", "FeatureType": "String"},
        ],
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://customer-churn-dev-artifacts/feature-store/"}},
        RoleArn=ROLE,
    )
    return {
        "endpointName": ENDPOINT,
        "endpointConfigName": DECLARED,
        "modelPackageArn": PACKAGE,
        "alarms": ALARMS,
        "pipelines": {"training": f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{ENDPOINT}-training"},
        "pipelineDefinitionDigests": {"training": verify.definition_digest(DEFINITION)},
        "featureGroup": ENDPOINT,
    }


def failed(checks) -> dict[str, verify.Check]:
    return {c.name: c for c in checks if not c.ok}


def test_a_healthy_stack_passes_every_check(session):
    checks = verify.verify(deploy(session), session)
    assert failed(checks) == {}
    names = {c.name for c in checks}
    assert {"endpoint status", "endpoint configuration", "last deployment", "variants and weights"} <= names
    assert {"model of champion", f"pipeline {ENDPOINT}-training", f"feature group {ENDPOINT}"} <= names
    assert sum(n.startswith("alarm ") for n in names) == 3


def test_a_rolled_back_canary_fails_naming_the_configuration_it_fell_back_to(session):
    outputs = deploy(session, serving=PREVIOUS)
    reason = (
        f"Deployment rolled back: alarm {ENDPOINT}-champion-5xx-rate went to ALARM during the canary bake"
    )

    def rolled_back(parsed, **_):
        parsed["FailureReason"] = reason

    session.events.register("after-call.sagemaker.DescribeEndpoint", rolled_back)
    diff = failed(verify.verify(outputs, session))
    assert diff["endpoint configuration"].declared == DECLARED
    assert diff["endpoint configuration"].live == PREVIOUS
    assert diff["last deployment"].live == f"rolled back: {reason}"


def test_an_endpoint_on_a_configuration_the_stack_does_not_declare_fails(session):
    diff = failed(verify.verify(deploy(session, serving=UNDECLARED), session))
    assert set(diff) == {"endpoint configuration"}
    assert (diff["endpoint configuration"].declared, diff["endpoint configuration"].live) == (
        DECLARED,
        UNDECLARED,
    )


def test_an_alarm_in_alarm_fails_naming_it(session):
    outputs = deploy(session)
    session.client("cloudwatch").set_alarm_state(
        AlarmName=f"{ENDPOINT}-quality-auc", StateValue="ALARM", StateReason="AUC 0.61 below 0.75"
    )
    assert set(failed(verify.verify(outputs, session))) == {f"alarm {ENDPOINT}-quality-auc"}


def test_a_missing_alarm_and_a_changed_pipeline_definition_fail(session):
    outputs = deploy(session)
    outputs["alarms"] = {**ALARMS, "drift": [f"{ENDPOINT}-drift-tenure_months"]}
    outputs["pipelineDefinitionDigests"] = {"training": verify.definition_digest(DEFINITION + " ")}
    diff = failed(verify.verify(outputs, session))
    assert diff[f"alarm {ENDPOINT}-drift-tenure_months"].live == "missing"
    assert set(diff) == {f"alarm {ENDPOINT}-drift-tenure_months", f"pipeline {ENDPOINT}-training"}


def test_the_command_prints_declared_against_live_and_exits_1(session, tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(deploy(session, serving=UNDECLARED)))
    assert verify.main(["--stack", "dev", "--outputs", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"declared {DECLARED}, live {UNDECLARED}" in out
    assert verify.main(["--stack", "dev", "--outputs", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and any(c["name"] == "endpoint configuration" for c in report["checks"])


def test_unreadable_outputs_exit_2_naming_the_stack(tmp_path, capsys):
    assert verify.main(["--stack", "prod", "--outputs", str(tmp_path / "none.json")]) == 2
    assert "cannot read the outputs of stack prod" in capsys.readouterr().err


def _drifting(session) -> dict:
    """A healthy deployment whose data drifts: a drift alarm, declared and in ALARM."""
    outputs = deploy(session)
    drift = f"{ENDPOINT}-drift-tenure_months"
    outputs["alarms"] = {**ALARMS, "drift": [drift]}
    session.client("cloudwatch").put_metric_alarm(
        AlarmName=drift,
        Namespace="MLOps/Drift",
        MetricName="tenure_months",
        Statistic="Maximum",
        Period=3600,
        EvaluationPeriods=1,
        Threshold=0.2,
        ComparisonOperator="GreaterThanThreshold",
    )
    session.client("cloudwatch").set_alarm_state(
        AlarmName=drift, StateValue="ALARM", StateReason="PSI 0.41 above 0.2"
    )
    return outputs


def test_drift_in_alarm_is_reported_without_failing_the_deploy(session, tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(_drifting(session)))
    assert verify.main(["--stack", "dev", "--outputs", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"alarm {ENDPOINT}-drift-tenure_months" in out and "reported" in out
    assert "1 data alarm(s) in ALARM" in out
    assert verify.main(["--stack", "dev", "--outputs", str(path), "--fail-on-drift"]) == 1
    assert f"differs: alarm {ENDPOINT}-drift-tenure_months" in capsys.readouterr().out


def test_a_health_alarm_in_alarm_fails_the_deploy(session, tmp_path):
    outputs = _drifting(session)
    session.client("cloudwatch").set_alarm_state(
        AlarmName=f"{ENDPOINT}-champion-5xx-rate", StateValue="ALARM", StateReason="5xx 8% of requests"
    )
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    assert verify.main(["--stack", "dev", "--outputs", str(path)]) == 1


def test_the_local_stack_is_read_from_the_local_engines_state(session, tmp_path, capsys):
    from localcloud.state import State

    # What `mlops local deploy` and `mlops local` keep: the engine's state file, with the outputs.
    State("local", outputs=deploy(session)).save(tmp_path / "local.json")
    assert verify.main(["--stack", "local", "--state-dir", str(tmp_path)]) == 0
    assert "checks pass" in capsys.readouterr().out
    assert verify.main(["--stack", "local", "--state-dir", str(tmp_path / "empty")]) == 2
    assert "mlops local deploy --stack local" in capsys.readouterr().err
