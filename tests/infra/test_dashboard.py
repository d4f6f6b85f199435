"""The dashboard body: derived from the schema and the variants, laid out on CloudWatch's grid."""

from __future__ import annotations

import json

from infra.alarms import AlarmThresholds
from infra.dashboard import GRID_WIDTH, dashboard_body, dashboard_url

FEATURES = ["tenure_months", "contract"]


def body(**overrides):
    return dashboard_body(
        **{
            "schema_name": "customer-churn",
            "stack": "prod",
            "feature_names": FEATURES,
            "region": "eu-west-1",
            "thresholds": AlarmThresholds(),
            "endpoint": "customer-churn-prod",
            "variants": ["champion"],
            **overrides,
        }
    )


def titles(dashboard) -> list[str]:
    return [w["properties"].get("title") for w in dashboard["widgets"] if w["type"] == "metric"]


def test_body_is_json_with_a_drift_widget_per_feature():
    dashboard = json.loads(json.dumps(body()))
    for feature in FEATURES:
        (widget,) = [w for w in dashboard["widgets"] if w["properties"].get("title") == f"Drift: {feature}"]
        assert [
            "MLOps", "FeaturePSI", "Model", "customer-churn", "Stack", "prod", "Variant", "champion",
            "Feature", feature,
        ] == widget["properties"]["metrics"][0][:10]  # fmt: skip


def test_a_new_feature_gets_a_widget():
    assert "Drift: support_calls" in titles(body(feature_names=[*FEATURES, "support_calls"]))


def test_serverless_shows_no_cpu_or_memory():
    assert not [t for t in titles(body(serverless=True)) if t.startswith("CPU")]


def test_every_metric_widget_reads_the_stack_region():
    assert {w["properties"]["region"] for w in body()["widgets"] if w["type"] == "metric"} == {"eu-west-1"}


def test_widgets_fit_the_grid_without_overlapping():
    cells = set()
    for w in body(variants=["champion", "challenger"])["widgets"]:
        assert w["x"] + w["width"] <= GRID_WIDTH
        mine = {
            (x, y) for x in range(w["x"], w["x"] + w["width"]) for y in range(w["y"], w["y"] + w["height"])
        }
        assert not cells & mine
        cells |= mine


def test_latency_threshold_line_is_in_microseconds():
    (widget,) = [w for w in body()["widgets"] if w["properties"].get("title", "").startswith("Model latency")]
    assert widget["properties"]["annotations"]["horizontal"][0]["value"] == 500_000


def test_dashboard_url_opens_the_dashboard_in_its_region():
    assert dashboard_url("us-east-1", "m-prod") == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name=m-prod"
    )


def _platform_series(dashboard) -> list[list]:
    return [
        m
        for w in dashboard["widgets"]
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if m[0] == "MLOps"
    ]


def test_every_platform_metric_is_this_stacks():
    series = _platform_series(body(stack="staging"))
    assert series
    for metric in series:
        dims = dict(zip(metric[2:-1:2], metric[3::2], strict=False))
        assert dims.get("Stack") == "staging", metric


def test_a_shadow_challengers_auc_is_drawn_beside_the_champions():
    series = _platform_series(body(variants=["champion", "challenger"]))
    auc = [dict(zip(m[2::2], m[3::2], strict=False)).get("Variant") for m in series if m[1] == "AUC"]
    assert auc == ["champion", "challenger"]
