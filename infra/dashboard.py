"""The CloudWatch dashboard of one model in one stack, derived from the schema and the variants.

Top to bottom: the endpoint's health per variant (traffic and errors, latency, CPU and
memory), drift (predictions, then one widget per schema feature), model quality from
feedback, and the new-data volume that triggers retraining. Thresholds appear as
horizontal lines, drawn from the same values the alarms use. A feature added to the schema
gets its widget on the next ``pulumi up``; nothing here names a feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.alarms import (
    INSTANCE_NAMESPACE,
    SAGEMAKER_NAMESPACE,
    AlarmThresholds,
    cpu_cores,
    pipeline_dimensions,
)
from infra.rollout import CHAMPION
from model_code.metrics import NAMESPACE
from model_code.monitoring.drift import DEFAULT_PSI_THRESHOLD, PREDICTION_COLUMN
from model_code.monitoring.quality import METRIC_NAMES

GRID_WIDTH = 24  # CloudWatch's dashboard grid
HEIGHT = 6
# LogLoss is unbounded; on the right axis it does not squash the 0..1 scores.
_RIGHT_AXIS_QUALITY = {"LogLoss"}


def dashboard_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"


def _metric_widget(
    title: str,
    width: int,
    metrics: list[list[Any]],
    *,
    stat: str = "Average",
    period: int = 300,
    lines: Sequence[tuple[str, float]] = (),
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title,
        "view": "timeSeries",
        "stacked": False,
        "stat": stat,
        "period": period,
        "metrics": metrics,
    }
    if lines:
        properties["annotations"] = {
            "horizontal": [{"label": label, "value": value} for label, value in lines]
        }
    return {"type": "metric", "width": width, "height": HEIGHT, "properties": properties}


def _text_widget(markdown: str, height: int = 2) -> dict[str, Any]:
    return {"type": "text", "width": GRID_WIDTH, "height": height, "properties": {"markdown": markdown}}


def endpoint_widgets(
    endpoint: str,
    variants: Sequence[str],
    thresholds: AlarmThresholds,
    *,
    serverless: bool,
    instance_type: str,
) -> list[dict[str, Any]]:
    """A row per variant: traffic and errors, latency, and (real-time only) CPU and memory."""
    widgets = [_text_widget(f"## Endpoint `{endpoint}`\nTraffic, errors and latency per variant.")]
    width = GRID_WIDTH // (2 if serverless else 3)
    for variant in variants:
        dims = ["EndpointName", endpoint, "VariantName", variant]
        widgets.append(
            _metric_widget(
                f"Invocations and errors: {variant}",
                width,
                [
                    [SAGEMAKER_NAMESPACE, "Invocations", *dims],
                    [SAGEMAKER_NAMESPACE, "Invocation4XXErrors", *dims, {"yAxis": "right"}],
                    [SAGEMAKER_NAMESPACE, "Invocation5XXErrors", *dims, {"yAxis": "right"}],
                ],
                stat="Sum",
                period=60,
            )
        )
        widgets.append(
            _metric_widget(
                f"Model latency (µs): {variant}",
                width,
                [
                    [SAGEMAKER_NAMESPACE, "ModelLatency", *dims, {"stat": "p50", "label": "p50"}],
                    [SAGEMAKER_NAMESPACE, "ModelLatency", *dims, {"stat": "p99", "label": "p99"}],
                ],
                period=60,
                lines=[("p99 alarm", thresholds.latency_p99_ms * 1000)],
            )
        )
        if not serverless:
            widgets.append(
                _metric_widget(
                    f"CPU and memory (%): {variant}",
                    width,
                    [
                        [INSTANCE_NAMESPACE, "CPUUtilization", *dims, {"label": "CPU (sum over cores)"}],
                        [INSTANCE_NAMESPACE, "MemoryUtilization", *dims],
                    ],
                    lines=[
                        ("CPU alarm", thresholds.cpu_percent * cpu_cores(instance_type)),
                        ("memory alarm", thresholds.memory_percent),
                    ],
                )
            )
    return widgets


def _flat(dimensions: dict[str, str]) -> list[str]:
    return [part for item in dimensions.items() for part in item]


def drift_widget(model: str, feature: str, stack: str) -> dict[str, Any]:
    """PSI against the line the drift monitor uses, and the 0/1 flag the alarm watches."""
    dims = [*_flat(pipeline_dimensions(model, stack, CHAMPION)), "Feature", feature]
    title = "Prediction drift" if feature == PREDICTION_COLUMN else f"Drift: {feature}"
    return _metric_widget(
        title,
        GRID_WIDTH // 3,
        [
            [NAMESPACE, "FeaturePSI", *dims, {"label": "PSI"}],
            [NAMESPACE, "FeatureDrifted", *dims, {"label": "drifted (0/1)", "yAxis": "right"}],
        ],
        stat="Maximum",
        period=3600,
        lines=[("PSI threshold", DEFAULT_PSI_THRESHOLD)],
    )


def dashboard_body(
    *,
    schema_name: str,
    stack: str,
    feature_names: Sequence[str],
    region: str,
    thresholds: AlarmThresholds,
    endpoint: str | None = None,
    variants: Sequence[str] = (),
    serverless: bool = False,
    instance_type: str = "ml.m5.large",
    drift_monitoring: bool = True,
) -> dict[str, Any]:
    """The dashboard's body (serialise with ``json.dumps``), laid out on CloudWatch's 24-column grid."""
    # This stack's series only, as the alarms watch them: drift and quality of the production
    # variant; a shadow challenger's quality is drawn beside it for comparison.
    model = _flat(pipeline_dimensions(schema_name, stack))
    production = _flat(pipeline_dimensions(schema_name, stack, CHAMPION))
    compared = [v for v in variants if v != CHAMPION] if endpoint is not None else []
    widgets = [_text_widget(f"# {schema_name}\nEndpoint health, drift, model quality and new data.")]
    if endpoint is not None:
        widgets += endpoint_widgets(
            endpoint, variants, thresholds, serverless=serverless, instance_type=instance_type
        )
    if drift_monitoring:
        widgets.append(_text_widget("## Drift\nFrom the monitoring pipeline, against the training baseline."))
        widgets.append(drift_widget(schema_name, PREDICTION_COLUMN, stack))
        widgets.append(
            _metric_widget(
                "Drifted features",
                GRID_WIDTH // 3,
                [[NAMESPACE, "DriftedFeatureCount", *production]],
                stat="Maximum",
                period=3600,
            )
        )
        widgets.append(_text_widget("### Input features (schema)", height=1))
        widgets += [drift_widget(schema_name, feature, stack) for feature in feature_names]
    widgets.append(
        _text_widget("## Quality and data\nFeedback joined with captured predictions; new records.")
    )
    widgets.append(
        _metric_widget(
            "Model quality",
            GRID_WIDTH // 3,
            [
                [NAMESPACE, name, *production, *([{"yAxis": "right"}] if name in _RIGHT_AXIS_QUALITY else [])]
                for name in METRIC_NAMES.values()
            ]
            + [
                [
                    NAMESPACE,
                    "AUC",
                    *_flat(pipeline_dimensions(schema_name, stack, v)),
                    {"label": f"AUC ({v})"},
                ]
                for v in compared
            ],
            stat="Minimum",
            period=3600,
            lines=[("minimum AUC", thresholds.min_auc)],
        )
    )
    widgets.append(
        _metric_widget(
            "Labelled feedback",
            GRID_WIDTH // 3,
            [[NAMESPACE, "LabelledCount", *production]],
            stat="Sum",
            period=3600,
        )
    )
    widgets.append(
        _metric_widget(
            "New records since last training",
            GRID_WIDTH // 3,
            [[NAMESPACE, "NewRecordCount", *model]],
            stat="Maximum",
            period=3600,
            lines=[("retraining threshold", thresholds.new_records_threshold)],
        )
    )
    return {"start": "-P7D", "periodOverride": "inherit", "widgets": _lay_out(widgets, region)}


def _lay_out(widgets: list[dict[str, Any]], region: str) -> list[dict[str, Any]]:
    """Left to right, wrapping at the grid's edge; every metric widget gets the region it reads."""
    placed, x, y, row_height = [], 0, 0, 0
    for widget in widgets:
        if x + widget["width"] > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        if widget["type"] == "metric":
            widget = {**widget, "properties": {**widget["properties"], "region": region}}
        placed.append({**widget, "x": x, "y": y})
        x, row_height = x + widget["width"], max(row_height, widget["height"])
    return placed
