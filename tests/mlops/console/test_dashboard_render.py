"""``mlops dashboard`` against moto: the deployed body read back and drawn, widget for widget."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import boto3
import pandas as pd
import pytest

from infra.alarms import AlarmThresholds
from infra.dashboard import dashboard_body
from mlops.cli import main as mlops
from mlops.console.dashboard import evaluate, parse_duration, read_panels
from model_code.contract import schema as schema_mod
from tests.pipelines.conftest import use_emulator

REGION = "eu-west-1"
STACK = "prod"
NAME = "customer-churn-prod"
PSI = [0.02, 0.03, 0.02, 0.6, 0.8]  # the drift spike, hour by hour


def _body(schema) -> dict:
    return dashboard_body(
        schema_name=schema.name,
        stack=STACK,
        feature_names=schema.feature_names,
        region=REGION,
        thresholds=AlarmThresholds(),
        endpoint=NAME,
        variants=["champion", "challenger"],
        strategy="shadow",
        account="123456789012",
        pipelines={"training": "customer-churn-prod-training"},
    )


@pytest.fixture(scope="module")
def aws_module(moto_server):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield use_emulator(monkeypatch, moto_server)


@pytest.fixture(scope="module")
def deployed(aws_module, tmp_path_factory):
    """The dashboard as `pulumi up` leaves it, hours of drift and traffic, one alarm firing;
    drawn once for the module (drawing ~40 widgets takes seconds)."""
    schema = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    body = _body(schema)
    cloudwatch.put_dashboard(DashboardName=NAME, DashboardBody=json.dumps(body))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    drift_dims = [{"Name": "Model", "Value": schema.name}, {"Name": "Stack", "Value": STACK},
                  {"Name": "Variant", "Value": "champion"}, {"Name": "Feature", "Value": "contract"}]  # fmt: skip
    cloudwatch.put_metric_data(
        Namespace="MLOps",
        MetricData=[
            {"MetricName": "FeaturePSI", "Dimensions": drift_dims, "Value": v,
             "Timestamp": now - timedelta(hours=len(PSI) - n)}
            for n, v in enumerate(PSI)
        ],
    )  # fmt: skip
    endpoint_dims = [{"Name": "EndpointName", "Value": NAME}, {"Name": "VariantName", "Value": "champion"}]
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": endpoint_dims, "Value": 10 + n,
             "Timestamp": now - timedelta(minutes=10 - n)}
            for n in range(10)
        ],
    )  # fmt: skip
    cloudwatch.put_metric_alarm(
        AlarmName=f"{NAME}-drift-contract", MetricName="FeatureDrifted", Namespace="MLOps", Statistic="Maximum",
        Period=3600, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName=f"{NAME}-drift-contract", StateValue="ALARM", StateReason="drift")
    out = tmp_path_factory.mktemp("dashboard")
    assert mlops(["dashboard", "--stack", STACK, "--region", REGION, "--out", str(out)]) == 0
    return body, out


def test_every_widget_of_the_body_is_drawn_once_in_order(deployed):
    body, out = deployed
    page = (out / "dashboard.html").read_text()
    sections = re.findall(r'<section class="widget (\w+)" data-index="(\d+)" data-title="([^"]*)"', page)
    expected = [(w["type"], str(n), w["properties"].get("title", "")) for n, w in enumerate(body["widgets"])]
    assert [(kind, index, title.replace("&amp;", "&")) for kind, index, title in sections] == expected
    assert (out / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_panels_hold_what_cloudwatch_holds(deployed):
    panels = {p.title: p for p in read_panels(boto3.Session(region_name=REGION), NAME)[1]}
    (psi, *_) = panels["Drift: contract"].series
    assert psi.values == PSI
    # The error rates are metric math (which the emulator leaves empty), evaluated here.
    rates = panels["Error rates: champion"].series
    assert rates and all(v == 0.0 for s in rates for v in s.values)
    assert {len(s.values) for s in rates} == {10}
    alarms = dict(panels["Every alarm of the stack"].alarms)
    assert alarms[f"{NAME}-drift-contract"] == "ALARM"


def test_the_page_is_self_contained(deployed):
    page = (deployed[1] / "dashboard.html").read_text()
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page.replace('href="README.md#runbook"', ""))


def test_headless_chromium_shows_the_drift_and_rollout_widgets_without_console_errors(deployed, tmp_path):
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed for this test: apt-get install -y chromium"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         "--disable-background-networking", "--no-first-run", "--enable-logging=stderr", "--v=0",
         "--dump-dom", (deployed[1] / "dashboard.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for title in (
        "Drift: contract",
        "Prediction drift",
        "Invocations per variant, roll-outs marked",
        "Shadow challenger against production",
    ):
        section = re.search(rf'<section[^>]*data-title="{re.escape(title)}"[^>]*>(.*?)</section>', dom, re.S)
        assert section and "<svg" in section.group(1), title
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []


def test_metric_math_is_evaluated_on_the_fetched_series():
    i0, i1 = pd.Series([3.0, None], index=[1, 2]), pd.Series([1.0, 2.0], index=[1, 2])
    share = evaluate("100 * FILL(i0, 0) / (FILL(i0, 0) + FILL(i1, 0))", {"i0": i0, "i1": i1})
    assert share.tolist() == [75.0, 0.0]


def test_metric_math_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="cannot evaluate"):
        evaluate("__import__('os').getcwd()", {"i0": pd.Series([1.0])})


def test_relative_start_times_parse():
    assert parse_duration("-P7D") == timedelta(days=7)
    assert parse_duration("-PT6H") == timedelta(hours=6)
    with pytest.raises(ValueError, match="start: '7d'"):
        parse_duration("7d")
