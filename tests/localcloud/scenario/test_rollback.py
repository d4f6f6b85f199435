"""Canary with a failing challenger: the rollback alarm trips during the bake and the endpoint
stays on the champion, read back through boto3."""

from __future__ import annotations

import io
import tarfile
import tempfile

import pytest

from tests.localcloud.behaviours.endpoint_setup import failing_artifact
from tests.localcloud.scenario.conftest import endpoint_state, scenario_run


def _break_the_retrained_model(scenario) -> None:
    """The retrained version's artifact replaced by one that passes its health check, then
    answers every prediction with a 500."""
    sm, s3 = scenario.client("sagemaker"), scenario.client("s3")
    package = sm.describe_model_package(ModelPackageName=scenario._newest_package()["ModelPackageArn"])
    uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    with tempfile.TemporaryDirectory() as folder:
        archive = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        s3.put_object(Bucket=bucket, Key=key, Body=failing_artifact(folder))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with scenario_run(tmp_path_factory.mktemp("state"), before_rollout=_break_the_retrained_model) as run:
        yield run


def test_the_failing_canary_is_rolled_back_by_its_alarm(run):
    scenario, summary = run
    rollout = summary["rollout"]
    assert (rollout["strategy"], rollout["outcome"]) == ("canary", "rolled back")
    assert rollout["errors_during_rollout"] > 0
    endpoint = endpoint_state(scenario)
    assert endpoint["EndpointStatus"] == "InService"
    assert "rolled back" in endpoint["FailureReason"]
    alarm = endpoint["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert any(a["AlarmName"] in endpoint["FailureReason"] for a in alarm)


def test_the_endpoint_still_serves_the_first_version_and_the_alarm_history_shows_why(run):
    scenario, summary = run
    assert {v["model_version"] for v in summary["endpoint"]["variants"]} == {1}
    assert [m["version"] for m in summary["models"]] == [1, 2]  # version 2 approved, never served alone
    endpoint = endpoint_state(scenario)
    tripped = next(
        a["AlarmName"]
        for a in endpoint["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
        if a["AlarmName"] in endpoint["FailureReason"]
    )
    history = scenario.client("cloudwatch").describe_alarm_history(
        AlarmName=tripped, HistoryItemType="StateUpdate"
    )["AlarmHistoryItems"]
    assert any("to ALARM" in item["HistorySummary"] for item in history)


def test_mlops_verify_fails_naming_the_rollback(run):
    from mlops.verify import failures, verify

    scenario, _ = run
    checks = verify(scenario.outputs, scenario.emulator.session())
    failed = {c.name: c for c in failures(checks)}
    configuration = failed["endpoint configuration"]
    assert configuration.declared == scenario.outputs["endpointConfigName"]
    assert configuration.live == endpoint_state(scenario)["EndpointConfigName"] != configuration.declared
    assert failed["last deployment"].live.startswith("rolled back:")


def test_the_state_records_what_the_endpoint_serves_so_the_next_deploy_shows_the_difference(run):
    """The provider reads the endpoint back after its update; the bridge diffs the next
    deploy against that read (issue 20, item 5): after a rollback the endpoint is not `same`."""
    from localcloud.state import State, decide
    from localcloud.translations import lookup

    scenario, _ = run
    state = State.load(scenario.state_dir / f"{scenario.stack}.json", scenario.stack)
    (endpoint,) = [r for r in state.resources.values() if r.type == "aws:sagemaker/endpoint:Endpoint"]
    serving = endpoint_state(scenario)["EndpointConfigName"]
    assert endpoint.outputs["endpointConfigName"] == serving != endpoint.inputs["endpointConfigName"]
    # The same program again: the endpoint is updated back to the configuration it declares.
    assert decide(lookup(endpoint.type), endpoint, endpoint.inputs) == ("update", {"endpointConfigName"})
