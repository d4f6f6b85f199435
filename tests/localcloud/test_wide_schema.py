"""A 150-feature data contract deploys into the emulator within AWS's limits, and one drift
episode on it, however many features drift and for however long, starts one retraining run.

The emulator refuses what AWS refuses at the API call (an event pattern over EventBridge's
2,048-character quota, a composite alarm over 100 alarms), so the deploy succeeding is the proof
the stack fits; the drift is published as the monitoring job publishes it (its drift report's
metric data, with the stack's and the variant's dimensions).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml

from localcloud.emulator import Emulator
from localcloud.engine import Engine
from model_code import metrics
from model_code.monitoring.drift import DriftReport, FeatureDrift
from model_code.monitoring.drift_profile import PREDICTION_COLUMN

FEATURES = 150
STACK = "local"
NAME = "wide-contract"
START = datetime(2026, 12, 1, 9, 50, tzinfo=UTC)


def wide_schema(folder) -> tuple[str, list[str]]:
    names = [f"measurement_{n:03d}" for n in range(FEATURES)]
    features = [{"name": n, "type": "fractional", "min": -1000, "max": 1000} for n in names[:-1]]
    features.append({"name": names[-1], "type": "string", "values": ["a", "b", "c"]})
    contract = {
        "name": NAME,
        "entity_id": "record_id",
        "event_time": "event_time",
        "target": {"column": "label", "positive": 1},
        "features": features,
    }
    path = folder / "wide.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    return str(path), names


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wide")
    schema_path, names = wide_schema(folder)
    with Emulator(clock_start=START) as emulator:
        emulator.reset()
        result = Engine(
            STACK,
            emulator.endpoint_url,
            state_dir=folder,
            overrides={"mlops-platform:schemaPath": schema_path},
            fresh_state=True,
        ).up()
        yield emulator, result.outputs, names
        emulator.behaviours.wait_for_executions(600)


def publish_drift(emulator, names: list[str], drifted: set[str]) -> None:
    """One monitoring run's drift metrics for the production variant, as the job publishes them."""
    flagged = FeatureDrift("numeric", "ks", 0.5, 1e-9, 1.2, True, 0.0, 0.0)
    calm = FeatureDrift("numeric", "ks", 0.01, 0.9, 0.001, False, 0.0, 0.0)
    report = DriftReport(
        NAME,
        1000,
        1000,
        0.05,
        0.01,
        {n: flagged if n in drifted else calm for n in [*names, PREDICTION_COLUMN]},
    )
    data = metrics.with_dimensions(report.to_metrics(), {"Variant": "champion", "Stack": STACK})
    cloudwatch = emulator.client("cloudwatch")
    for first in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace=metrics.NAMESPACE, MetricData=data[first : first + 1000])


def to_next_hour(emulator) -> None:
    """Past the end of the alarm period (an hour) the metrics were published in."""
    now = emulator.behaviours.clock.now().timestamp()
    emulator.behaviours.advance(3600 - now % 3600 + 60)


def training_runs(emulator, outputs) -> list[dict[str, str]]:
    sm = emulator.client("sagemaker")
    pipeline = outputs["pipelines"]["training"].rsplit("/", 1)[-1]
    runs = []
    for summary in sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]:
        listed = sm.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=summary["PipelineExecutionArn"]
        )
        runs.append({p["Name"]: p["Value"] for p in listed["PipelineParameters"]})
    return runs


def test_every_event_pattern_of_the_deployed_stack_fits_eventbridges_quota(deployed):
    emulator, _, names = deployed
    events = emulator.client("events")
    patterns = [r.get("EventPattern") for r in events.list_rules()["Rules"] if r.get("EventPattern")]
    assert len(names) == FEATURES and patterns
    # EventBridge quotas: an event pattern holds at most 2,048 characters by default.
    assert max(len(p) for p in patterns) <= 2048
    drift_rule = next(json.loads(p) for p in patterns if "drifted-features" in p)
    assert drift_rule["detail"]["alarmName"] == [f"{NAME}-{STACK}-drifted-features"]


def test_one_drift_episode_on_four_then_six_features_starts_one_run_with_its_reason(deployed):
    emulator, outputs, names = deployed
    publish_drift(emulator, names, set(names[:4]))
    to_next_hour(emulator)
    cloudwatch = emulator.client("cloudwatch")
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{NAME}-{STACK}-drift-")["MetricAlarms"]
    in_alarm = sorted(a["AlarmName"].rsplit("-", 1)[-1] for a in alarms if a["StateValue"] == "ALARM")
    assert in_alarm == names[:4]  # the per-feature alarms still say which
    # The episode goes on an hour later, wider: the same episode, no new run.
    publish_drift(emulator, names, set(names[:6]))
    to_next_hour(emulator)
    runs = training_runs(emulator, outputs)
    assert [r.get("TriggerReason") for r in runs] == ["drift"]
