"""The whole scenario with the all-at-once strategy, where new data arrives with the drift: the
drift and data-volume alarms fire together and start one retraining run, not two."""

from __future__ import annotations

import pytest

from localcloud.scenario.data import drift
from tests.localcloud.scenario.conftest import endpoint_state, executions, scenario_run

NEW_RECORDS = 150


def _new_data_arrives(scenario) -> None:
    """Fresh records (event time now, on the virtual clock) land in raw/ and are ingested."""
    schema = scenario.prepared.schema
    fresh = drift(schema, scenario.prepared.traffic).head(NEW_RECORDS).copy()
    fresh[schema.entity_id] = [f"new-{i}" for i in range(len(fresh))]
    fresh[schema.event_time] = scenario.emulator.behaviours.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    before = len(executions(scenario, "ingestion"))
    scenario.client("s3").put_object(
        Bucket=scenario.outputs["bucket"],
        Key=f"raw/{schema.name}/new-data.csv",
        Body=fresh.to_csv(index=False).encode(),
    )
    scenario.emulator.behaviours.wait_for_executions(600)
    assert [r["status"] for r in executions(scenario, "ingestion")[before:]] == ["Succeeded"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    overrides = {"deploymentStrategy": "all-at-once", "newRecordsThreshold": str(NEW_RECORDS // 2)}
    with scenario_run(tmp_path_factory.mktemp("state"), overrides, before_drift=_new_data_arrives) as run:
        yield run


def test_drift_and_data_volume_alarms_fire_together_and_one_retraining_run_runs(run):
    scenario, summary = run
    cloudwatch = scenario.client("cloudwatch")
    prefix = f"customer-churn-{scenario.stack}-"
    states = {
        a["AlarmName"]: a["StateValue"]
        for a in cloudwatch.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    }
    assert states[f"{prefix}new-records"] == "ALARM"
    assert any(name.startswith(f"{prefix}drift-") and state == "ALARM" for name, state in states.items())
    history = cloudwatch.describe_alarm_history(
        AlarmName=f"{prefix}new-records", HistoryItemType="StateUpdate"
    )
    assert any("to ALARM" in item["HistorySummary"] for item in history["AlarmHistoryItems"])
    started = len(scenario.phases[1]["retraining_reasons"])
    in_phase_two = executions(scenario, "training")[1 : 1 + started]  # the first is the manual run
    assert {r["parameters"]["TriggerReason"] for r in in_phase_two} == {"drift", "data-volume"}
    assert [r["status"] for r in in_phase_two if r["status"] != "Stopped"] == ["Succeeded"]
    assert summary["phases"][0]["retraining_started"] is False


def test_the_retrained_version_replaces_the_first_at_once(run):
    scenario, summary = run
    assert (summary["rollout"]["strategy"], summary["rollout"]["outcome"]) == ("all-at-once", "completed")
    endpoint = endpoint_state(scenario)
    assert endpoint["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"][
        "Type"
    ] == ("ALL_AT_ONCE")
    assert [(v["model_version"], v["weight"]) for v in summary["endpoint"]["variants"]] == [(2, 1.0)]


def test_every_row_uploaded_is_counted(run):
    _, summary = run
    data = summary["data"]
    assert data["rows_in"] == data["rows_accepted"] + data["rows_quarantined"]
