"""The dashboard body: derived from the schema and the variants, laid out on CloudWatch's grid."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from infra.alarms import AlarmThresholds, all_alarms
from infra.dashboard import GRID_WIDTH, ROWS, dashboard_body, dashboard_url
from model_code import metrics
from model_code.contract import rules, synthetic
from model_code.monitoring import drift, quality, shadow

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
    series = _platform_series(
        body(stack="staging", pipelines={"training": "customer-churn-staging-training"})
    )
    assert series
    for metric in series:
        dims = dict(zip(metric[2:-1:2], metric[3::2], strict=False))
        # The stack's own dimension, or its own training pipeline (named after the stack).
        assert dims.get("Stack") == "staging" or dims.get("PipelineName") == "customer-churn-staging-training"


def test_a_shadow_challengers_auc_is_drawn_beside_the_champions():
    series = _platform_series(body(variants=["champion", "challenger"]))
    auc = [dict(zip(m[2::2], m[3::2], strict=False)).get("Variant") for m in series if m[1] == "AUC"]
    assert auc == ["champion", "challenger"]


# --- the console's questions: rows, alarms, header, and series equal to what is published ----------

SHADOW_BODY = {
    "variants": ["champion", "challenger"],
    "strategy": "shadow",
    "account": "123456789012",
    "model_package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn/7",
    "schedules": {"monitoring": "rate(1 hour)", "retraining": "rate(7 days)"},
    "runbook_url": "https://gitlab.example.com/ml/platform/-/blob/main/README.md#runbook",
    "pipelines": {"training": "customer-churn-prod-training", "monitoring": "customer-churn-prod-monitoring"},
}


def _series_ids(metric: list) -> set[str]:
    return {metric[-1]["id"]} if isinstance(metric[-1], dict) and "id" in metric[-1] else set()


def test_every_widget_is_a_valid_cloudwatch_widget():
    for widget in body(**SHADOW_BODY)["widgets"]:
        assert widget["type"] in {"metric", "text", "alarm"}
        assert {"x", "y", "width", "height", "properties"} <= set(widget)
        if widget["type"] != "metric":
            continue
        properties = widget["properties"]
        assert properties["view"] == "timeSeries" and properties["period"] % 60 == 0
        ids = set().union(*(_series_ids(m) for m in properties["metrics"]))
        for metric in properties["metrics"]:
            if isinstance(metric[0], dict):  # a metric math expression over this widget's series
                assert {token for token in ids if token in metric[0]["expression"]}, metric
                continue
            names = metric[:-1] if isinstance(metric[-1], dict) else metric
            assert all(isinstance(part, str) for part in names), metric
            assert len(names) % 2 == 0, metric  # namespace, name, then dimension name/value pairs


def test_the_rows_answer_the_questions_in_order():
    headers = [
        w["properties"]["markdown"].removeprefix("## ")
        for w in body(**SHADOW_BODY)["widgets"]
        if w["type"] == "text" and w["properties"]["markdown"].startswith("## ")
    ]
    assert headers == list(ROWS)


def test_the_header_says_what_the_stack_is_and_links_the_runbook():
    header = body(**SHADOW_BODY)["widgets"][0]
    markdown = header["properties"]["markdown"]
    assert (header["type"], header["x"], header["y"]) == ("text", 0, 0)
    assert "**shadow**" in markdown and "model version **7**" in markdown
    assert "`rate(1 hour)`" in markdown and "`rate(7 days)`" in markdown
    assert f"[runbook]({SHADOW_BODY['runbook_url']})" in markdown


def test_the_alarm_status_widget_lists_every_alarm_of_the_stack():
    specs = all_alarms(
        schema_name="customer-churn",
        stack="prod",
        feature_names=FEATURES,
        thresholds=AlarmThresholds(),
        endpoint="customer-churn-prod",
        variants=["champion", "challenger"],
    )
    (status,) = [
        w for w in body(**SHADOW_BODY)["widgets"] if w["properties"].get("title", "").startswith("Every")
    ]
    assert status["type"] == "alarm"
    assert status["properties"]["alarms"] == [
        f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{s.name}" for s in specs
    ]


def test_every_variant_has_its_traffic_latency_and_resources():
    shown = titles(body(**SHADOW_BODY))
    for variant in ("champion", "challenger"):
        for title in (
            "Invocations and errors",
            "Error rates",
            "Model latency (µs)",
            "CPU, memory and disk (%)",
        ):
            assert f"{title}: {variant}" in shown


def test_latency_is_drawn_at_the_alarms_p99_and_the_statistics_sagemaker_documents():
    (widget,) = [w for w in body()["widgets"] if w["properties"].get("title", "").startswith("Model latency")]
    drawn = [(m[1], m[-1]["stat"]) for m in widget["properties"]["metrics"]]
    (alarm,) = [s for s in all_alarms(schema_name="customer-churn", stack="prod", feature_names=FEATURES,
                thresholds=AlarmThresholds(), endpoint="customer-churn-prod", variants=["champion"])
                if s.name.endswith("latency-p99")]  # fmt: skip
    assert drawn[0] == (alarm.metric_name, alarm.extended_statistic)
    # SageMaker's developer guide: ModelLatency and OverheadLatency, "Valid statistics: Average,
    # Sum, Min, Max, Sample Count", in microseconds.
    assert set(drawn[1:]) <= {
        (m, s) for m in ("ModelLatency", "OverheadLatency") for s in ("Average", "Maximum")
    }


def test_error_rate_widgets_plot_each_alarms_own_threshold():
    (widget,) = [w for w in body()["widgets"] if w["properties"].get("title") == "Error rates: champion"]
    lines = {a["label"]: a["value"] for a in widget["properties"]["annotations"]["horizontal"]}
    assert lines == {
        "customer-churn-prod-champion-5xx-rate": 0.01,
        "customer-churn-prod-champion-4xx-rate": 0.05,
    }


def test_serverless_shows_concurrency_instead_of_instances():
    shown = titles(body(serverless=True))
    assert "Concurrency used: champion" in shown and not [t for t in shown if t.startswith("CPU")]


def test_retraining_row_counts_executions_as_sagemaker_publishes_them_and_runs_by_reason():
    widgets = {w["properties"].get("title"): w for w in body(**SHADOW_BODY)["widgets"]}
    training = widgets["Executions: training pipeline"]["properties"]["metrics"]
    # SageMaker's developer guide, "SageMaker pipelines metrics": AWS/Sagemaker/ModelBuildingPipeline,
    # by PipelineName.
    assert [m[:4] for m in training] == [
        ["AWS/Sagemaker/ModelBuildingPipeline", name, "PipelineName", "customer-churn-prod-training"]
        for name in ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped")
    ]
    reasons = widgets["Training runs started, by reason"]["properties"]["metrics"]
    assert {m[-1]["label"] for m in reasons} == {"manual", "drift", "quality", "data-volume", "schedule"}
    assert {m[3] for m in reasons} == {"customer-churn-prod-training"}


def test_no_traffic_share_widget_a_canary_could_not_move():
    shown = titles(body(**SHADOW_BODY))
    assert not [t for t in shown if "share" in t.lower()]
    assert "Invocations per variant, roll-outs marked" in shown


def test_a_drift_widget_shows_both_halves_of_the_rule():
    (widget,) = [w for w in body()["widgets"] if w["properties"].get("title") == "Drift: contract"]
    assert [m[1] for m in widget["properties"]["metrics"]] == [
        "FeaturePSI",
        "FeatureDriftPValue",
        "FeatureDrifted",
    ]
    lines = {a["label"]: a["value"] for a in widget["properties"]["annotations"]["horizontal"]}
    assert lines == {
        "PSI threshold": drift.DEFAULT_PSI_THRESHOLD,
        "p-value threshold": drift.DEFAULT_P_VALUE_THRESHOLD,
    }


def test_no_line_of_the_grid_leaves_empty_cells():
    widgets = body(**SHADOW_BODY, feature_names=[*FEATURES, "support_calls"])["widgets"]
    for y in {w["y"] for w in widgets}:
        assert sum(w["width"] for w in widgets if w["y"] == y) == GRID_WIDTH, y


def _announced(pipeline: str) -> list[dict]:
    """What the training step publishes inside ``pipeline``, once per trigger reason."""
    from model_code.training.train import announce

    class Client:
        def __init__(self):
            self.data = []

        def put_metric_data(self, Namespace, MetricData):
            assert Namespace == metrics.NAMESPACE
            self.data += MetricData

    client = Client()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(metrics.PIPELINE_NAME_ENV, pipeline)
        for reason in ("manual", "drift", "quality", "data-volume", "schedule"):
            assert announce(reason, client)
    return client.data


def _published(schema, stack: str) -> set[tuple]:
    """(metric name, dimensions) of every datum the monitoring steps publish, built by the
    publishers themselves on a small frame, with the dimensions the pipeline adds."""
    frame = rules.coerce(synthetic.generate(300, seed=3), schema)
    data = []
    for variant in ("champion", "challenger"):
        scored = frame.assign(**{drift.PREDICTION_COLUMN: [i / 300 for i in range(300)]})
        drift_data = drift.detect(scored, scored, schema).to_metrics(schema.name)
        predictions = frame.assign(probability=0.5, time=pd.Timestamp("2026-01-01", tz="UTC"))
        labels = frame.rename(columns={schema.target.column: "label"})
        quality_data = quality.evaluate_window(predictions, labels, schema).to_metrics(schema.name)
        data += metrics.with_dimensions([*drift_data, *quality_data], {"Variant": variant, "Stack": stack})
    report = {"agreement_rate": 1, "mean_abs_probability_difference": 0, "challenger_auc": 0.7}
    report |= {"production_auc": 0.8, "compared": 3, "labelled": 3}
    data += metrics.with_dimensions(shadow.to_metrics(report, schema.name, "challenger"), {"Stack": stack})
    data += metrics.with_dimensions(
        [metrics.metric_datum("NewRecordCount", 1, {"Model": schema.name})], {"Stack": stack}
    )
    data += _announced(f"{schema.name}-{stack}-training")
    return {(d["MetricName"], frozenset((x["Name"], x["Value"]) for x in d["Dimensions"])) for d in data}


def test_every_platform_series_drawn_is_one_the_monitoring_steps_publish(churn_schema):
    dashboard = body(**SHADOW_BODY, feature_names=churn_schema.feature_names)
    published = _published(churn_schema, "prod")
    drawn = set()
    for metric in _platform_series(dashboard):
        names = metric[:-1] if isinstance(metric[-1], dict) else metric
        drawn.add((names[1], frozenset(zip(names[2::2], names[3::2], strict=True))))
    assert drawn - published == set()
    # And every feature's drift, the prediction's, and the shadow comparison are among them.
    for feature in [*churn_schema.feature_names, "prediction"]:
        assert any(name == "FeatureDrifted" and ("Feature", feature) in dims for name, dims in drawn)
    assert {name for name, _ in drawn} >= {
        "ShadowAgreementRate",
        "ShadowChallengerAUC",
        "ShadowProductionAUC",
    }
