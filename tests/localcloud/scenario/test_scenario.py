"""The whole scenario on the local stack (canary), then the state read back through boto3.

One module-scoped run (it deploys twice, trains twice and runs monitoring three times); each
test checks one thing a user of ``mlops local`` would look at in the emulator afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import boto3
import pandas as pd
import pytest

from localcloud.engine import ROOT
from localcloud.scenario.data import prepare
from localcloud.scenario.run import BATCH_ROWS, Scenario
from tests.localcloud.scenario.conftest import executions

ROWS = 2000  # as `make local`: at 1000 rows the retrained model (fed-back records) can lose to the first by noise


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    scenario = Scenario(prepare(None, None, rows=ROWS, seed=0), state_dir=tmp_path_factory.mktemp("state"))
    try:
        summary = scenario.run()
        yield scenario, summary
    finally:
        scenario.stop()


def test_every_row_of_the_input_is_counted_and_the_quarantine_is_in_s3(run):
    scenario, summary = run
    data = summary["data"]
    assert data["rows_in"] == ROWS == data["rows_accepted"] + data["rows_quarantined"]
    s3, bucket = scenario.client("s3"), scenario.outputs["bucket"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])]
    rows = sum(len(pd.read_csv(s3.get_object(Bucket=bucket, Key=k)["Body"])) for k in keys)
    assert rows == data["rows_quarantined"] > 0


def test_training_ran_once_by_hand_and_once_on_drift(run):
    scenario, _ = run
    runs = executions(scenario, "training")
    # Several drift alarms fire together, but the retraining rule listens to the one
    # drift-episode alarm: one run started, none for the guard to stop.
    assert [(r["parameters"].get("TriggerReason"), r["status"]) for r in runs] == [
        ("manual", "Succeeded"),
        ("drift", "Succeeded"),
    ]


def test_phase_one_raises_no_drift_alarm_and_phase_two_does(run):
    _, summary = run
    first, second = summary["phases"]
    assert (first["drift_alarm"], first["retraining_started"]) == (False, False)
    assert second["drift_alarm"] and second["drifted_features"] and second["retraining_started"]
    # Phase 1 serves the held-out traffic, phase 2 the drift pool, BATCH_ROWS rows a request.
    assert first["requests"] == -(-len(run[0].prepared.traffic) // BATCH_ROWS)
    assert second["requests"] == -(-len(run[0].prepared.drifted) // BATCH_ROWS) > 0


def test_the_drift_alarms_are_in_alarm_with_history(run):
    scenario, summary = run
    cloudwatch = scenario.client("cloudwatch")
    prefix = f"customer-churn-{scenario.stack}-drift-"
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    in_alarm = sorted(a["AlarmName"].removeprefix(prefix) for a in alarms if a["StateValue"] == "ALARM")
    assert in_alarm == summary["phases"][1]["drifted_features"]
    history = cloudwatch.describe_alarm_history(AlarmName=prefix + in_alarm[0], HistoryItemType="StateUpdate")
    assert any("to ALARM" in item["HistorySummary"] for item in history["AlarmHistoryItems"])


def test_each_model_version_says_the_rows_and_window_its_training_job_learned_from(run):
    _, summary = run
    accepted, fed_back = summary["data"]["rows_ingested"], summary["data"]["feedback_records"]
    for model in summary["models"]:
        window = model["data_window"]
        # Read back from the EngineerFeatures job's own output: the offline store's records.
        assert window["source"] == "offline-store"
        assert 0 < window["rows"] <= accepted + fed_back
        assert window["data_start"] <= window["data_end"]
    # By hand the pipeline's default, new-data-only (no champion yet: the last days); on drift, combined.
    assert [m["data_window"]["strategy"] for m in summary["models"]] == ["new-data-only", "combined"]


def test_the_first_training_waited_for_the_records_its_ingestion_reported(run):
    _, summary = run
    first = summary["models"][0]["data_window"]
    # Started right after the ingestion: the offline store (15 minutes behind) showed none yet.
    ingested = summary["data"]["rows_ingested"]
    assert first["records_reported"] == first["records_waited_for"] == ingested > 0
    assert first["seconds_waited"] >= 900
    assert first["rows"] == ingested


def test_the_retraining_learned_from_the_drifted_traffics_outcomes_fed_back_as_records(run):
    scenario, summary = run
    first, second = (m["data_window"] for m in summary["models"])
    fed_back = summary["data"]["feedback_records"]
    assert fed_back == len(scenario.prepared.drifted) > 0
    # The window grew by exactly the records fed back, and ends at their event time, later.
    assert second["rows"] - first["rows"] == fed_back
    assert second["data_end"] > first["data_end"]
    assert summary["windows_differ"] is True
    assert summary["models"][0]["auc"] != summary["models"][1]["auc"]
    # In the feature store as ingestion put them: a fed-back record, read back online.
    schema = scenario.prepared.schema
    record = scenario.prepared.drifted.iloc[0]
    got = scenario.client("sagemaker-featurestore-runtime").get_record(
        FeatureGroupName=scenario.outputs["featureGroup"],
        RecordIdentifierValueAsString=str(record[schema.entity_id]),
    )
    values = {i["FeatureName"]: i["ValueAsString"] for i in got["Record"]}
    assert values[schema.event_time] == second["data_end"]
    assert int(values[schema.target.column]) == int(record[schema.target.column])


def test_retraining_started_exactly_once_per_trigger_reason(run):
    _, summary = run
    assert summary["retraining"] == {
        "started_by_reason": {"drift": 1},
        "stopped_by_reason": {},
        "once_per_reason": True,
    }


def test_model_versions_and_approvals_are_the_registrys(run):
    scenario, summary = run
    sm = scenario.client("sagemaker")
    packages = sm.list_model_packages(ModelPackageGroupName=scenario.outputs["modelPackageGroup"])
    registry = {
        sm.describe_model_package(ModelPackageName=p["ModelPackageArn"])["ModelPackageVersion"]: p[
            "ModelApprovalStatus"
        ]
        for p in packages["ModelPackageSummaryList"]
    }
    assert {m["version"]: m["approval_status"] for m in summary["models"]}.items() <= registry.items()
    assert all(0.5 < m["auc"] <= 1.0 for m in summary["models"])


def test_the_endpoint_serves_the_newest_approved_version_with_data_capture(run):
    scenario, summary = run
    sm = scenario.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=summary["endpoint"]["name"])
    assert endpoint["EndpointStatus"] == "InService"
    assert [v["VariantName"] for v in endpoint["ProductionVariants"]] == [
        v["name"] for v in summary["endpoint"]["variants"]
    ]
    assert summary["endpoint"]["strategy"] == "canary"
    newest = max(m["version"] for m in summary["models"])
    assert {v["model_version"] for v in summary["endpoint"]["variants"]} == {newest}
    s3 = scenario.client("s3")
    captured = s3.list_objects_v2(Bucket=scenario.outputs["bucket"], Prefix="data-capture/").get(
        "Contents", []
    )
    assert any(o["Key"].endswith(".jsonl") for o in captured)


def test_serve_prints_the_address_answers_boto3_and_stops_on_sigterm(tmp_path):
    summary_path = tmp_path / "summary.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops.cli",
            "local",
            "--rows",
            str(ROWS),  # 600 rows train a model under MinAuc 0.7: the run stops at training
            "--json",
            str(summary_path),
            "--serve",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        address, printed = None, []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("AWS_ENDPOINT_URL="):
                address = line.strip().split("=", 1)[1]
                break
        assert address is not None, process.stderr.read()
        hints = [process.stdout.readline() for _ in range(3)]
        # Piped, the summary cuts nothing; the hint names the pipeline to list.
        assert not [line for line in printed if "…" in line]
        assert any("--pipeline-name customer-churn-local-training" in line for line in hints), hints
        summary = json.loads(summary_path.read_text())
        assert summary["endpoint_url"] == address
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=address,
            region_name=summary["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        row = "12,70.5,846.0,month-to-month,fiber,electronic-check,2,0\n"
        answer = runtime.invoke_endpoint(
            EndpointName=summary["endpoint"]["name"], Body=row, ContentType="text/csv"
        )
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_ground_truth_joins_every_served_prediction_and_quality_is_published(run):
    scenario, summary = run
    assert summary["quality"]["labelled"] == len(scenario.prepared.traffic)
    assert 0.6 < summary["quality"]["auc"] <= 1.0
    assert (summary["rollout"]["strategy"], summary["rollout"]["outcome"]) == ("canary", "completed")


@pytest.fixture
def served(run, monkeypatch):
    """The commands' environment as the README shows it after `mlops local --serve`."""
    scenario, _ = run
    for key, value in {
        "AWS_ENDPOINT_URL": scenario.emulator.endpoint_url,
        "AWS_DEFAULT_REGION": scenario.region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    return run


def _charts_without_data(html: str) -> list[str]:
    """Titles of the metric widgets the page draws with "no data"."""
    sections = re.findall(
        r'<section class="widget metric"[^>]*data-title="([^"]*)"[^>]*>(.*?)</section>', html, re.S
    )
    return [title for title, inner in sections if "no data" in inner]


def test_the_dashboard_make_local_draws_has_no_widget_without_data(run, tmp_path):
    scenario, _ = run
    _, html = scenario.draw_dashboard(tmp_path)
    page = html.read_text()
    assert page.count('class="widget metric"') > 20
    assert _charts_without_data(page) == []


def test_mlops_dashboard_against_the_served_emulator_reads_its_clock_and_has_no_widget_without_data(
    served, tmp_path, capsys
):
    from mlops.cli import main as mlops

    scenario, _ = served
    assert mlops(["dashboard", "--stack", scenario.stack, "--out", str(tmp_path)]) == 0
    page = (tmp_path / "dashboard.html").read_text()
    assert _charts_without_data(page) == []
    # Drawn at the emulator's time, not the machine's.
    assert f"{scenario.emulator.behaviours.clock.now():%Y-%m-%d %H:%M} UTC" in page


def test_mlops_status_json_against_the_served_emulator_shows_drift_retraining_versions_and_roll_out(
    served, capsys
):
    from mlops.cli import main as mlops

    scenario, summary = served
    assert mlops(["status", "--stack", scenario.stack, "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    drifted = {f"customer-churn-{scenario.stack}-drift-{f}" for f in summary["phases"][1]["drifted_features"]}
    assert drifted and drifted <= set(facts["alarms_in_alarm"])
    assert facts["drifted_features"], "the drift published on the emulator's clock is found"
    assert (facts["last_retraining"]["trigger_reason"], facts["last_retraining"]["status"]) == (
        "drift",
        "Succeeded",
    )
    assert [(m["version"], m["approval_status"]) for m in facts["models"]] == [
        (1, "Approved"),
        (2, "Approved"),
    ]
    assert (facts["endpoint"]["rollout"]["outcome"], facts["endpoint"]["rollout"]["strategy"]) == (
        summary["rollout"]["outcome"],
        "CANARY",
    )
    assert facts["read_at"] == scenario.emulator.behaviours.clock.now().isoformat()
    started = [e["started"] for e in facts["executions"]]
    assert started == sorted(started, reverse=True)  # latest first, in time order


def test_headless_chromium_shows_every_section_and_every_chart_has_points(run, tmp_path):
    from infra.dashboard import ROWS

    scenario, _ = run
    _, html = scenario.draw_dashboard(tmp_path / "dashboard")
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed for this test: make test installs it (.ci/need-debian)"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         "--disable-background-networking", "--no-first-run", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    headings = [h.strip() for h in re.findall(r"<h2>(.*?)</h2>", dom)]
    assert headings == list(ROWS)
    charts = re.findall(
        r'<section class="widget metric"[^>]*data-title="([^"]*)"[^>]*>(.*?)</section>', dom, re.S
    )
    assert len(charts) > 20
    # Each drawn series is a group named points-<n>, its markers one <use> per point.
    assert [
        title for title, inner in charts if not re.search(r'<g id="points-\d+">.*?<use', inner, re.S)
    ] == []


def test_mlops_status_shows_the_endpoint_the_drift_alarm_the_drift_retraining_and_both_versions(run):
    from mlops.console.status import collect

    scenario, summary = run
    facts = collect(scenario.emulator.session(), scenario.prepared.schema, scenario.stack)
    assert facts["endpoint_name"] == summary["endpoint"]["name"]
    assert facts["endpoint"]["status"] == "InService"
    assert any("-drift-" in name for name in facts["alarms_in_alarm"])
    assert "drift" in facts["trigger_reasons"]
    assert [(m["version"], m["approval_status"]) for m in facts["models"]] == [
        (1, "Approved"),
        (2, "Approved"),
    ]


def test_the_dashboard_is_drawn_from_the_emulators_metrics(run, tmp_path):
    scenario, _ = run
    png, html = scenario.draw_dashboard(tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    assert "drift" in page.lower()
    # The canary is marked where it ended, on the endpoint's charts.
    assert "roll-out completed" in page


def test_mlops_verify_reports_the_drift_alarms_in_alarm_without_failing_the_deploy(run):
    from mlops.verify import failures, verify

    scenario, summary = run
    checks = verify(scenario.outputs, scenario.emulator.session())
    prefix = f"customer-churn-{scenario.stack}"
    # The per-column alarms, and the drift-episode alarm retraining listens to.
    drifted = {f"{prefix}-drift-{f}" for f in summary["phases"][1]["drifted_features"]} | {
        f"{prefix}-drifted-features"
    }
    assert {c.name.removeprefix("alarm ") for c in checks if not c.ok and c.live == "ALARM"} == drifted
    # The retrained model rolled out healthy: drift is monitoring's business, not the deploy's.
    assert failures(checks) == []
    assert {c.name.removeprefix("alarm ") for c in failures(checks, fail_on_drift=True)} == drifted


def test_the_printed_total_is_the_sum_of_the_phases_printed_with_the_dashboard_among_them(run):
    import re

    from rich.console import Console

    from localcloud.scenario.cli import render

    scenario, summary = run
    seconds = {**scenario.seconds, "draw the dashboard": 9.0}
    console = Console(record=True, width=160)
    render(summary, seconds, [], console)
    total = float(re.search(r"Seconds per phase \(total ([\d.]+) s\)", console.export_text()).group(1))
    assert total == round(sum(seconds.values()), 1)


def test_the_summary_prints_what_training_read_the_retraining_and_the_windows(run):
    from rich.console import Console

    from localcloud.scenario.cli import render

    scenario, summary = run
    console = Console(record=True, width=1000)
    render(summary, scenario.seconds, [], console)
    text = console.export_text()
    for model in summary["models"]:
        window = model["data_window"]
        assert (
            f"version {model['version']}: training read {window['rows']} records from the offline store "
            f"({window['offline_rows']} rows read), window {window['data_start']} to {window['data_end']}"
        ) in text
    assert "retraining started exactly once per trigger reason (TriggerReason: runs): drift 1 run" in text
    assert "model versions 1 and 2 trained on different windows" in text
