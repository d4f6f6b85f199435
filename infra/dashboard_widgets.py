"""Dashboard widget primitives and the endpoint's rows: traffic and errors, latency, resources.

Split from :mod:`infra.dashboard` (which lays out the whole body) to keep each file readable;
every series here is named as SageMaker publishes it, per endpoint variant, and the error-rate
widgets plot the alarms' own expressions and thresholds (``infra.alarms``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.alarms import INSTANCE_NAMESPACE, SAGEMAKER_NAMESPACE, AlarmSpec, AlarmThresholds, cpu_cores

GRID_WIDTH = 24  # CloudWatch's dashboard grid
HEIGHT = 6


def metric_widget(
    title: str,
    width: int,
    metrics: list[list[Any]],
    *,
    stat: str = "Average",
    period: int = 300,
    lines: Sequence[tuple[str, float] | tuple[str, float, str]] = (),
) -> dict[str, Any]:
    """A time-series widget; ``lines`` are horizontal annotations (label, value[, "right" axis])."""
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
            "horizontal": [
                {"label": line[0], "value": line[1], **({"yAxis": line[2]} if len(line) > 2 else {})}
                for line in lines
            ]
        }
    return {"type": "metric", "width": width, "height": HEIGHT, "properties": properties}


def text_widget(markdown: str, height: int = 1) -> dict[str, Any]:
    return {"type": "text", "width": GRID_WIDTH, "height": height, "properties": {"markdown": markdown}}


def alarm_widget(title: str, arns: Sequence[str], width: int = GRID_WIDTH) -> dict[str, Any]:
    # On the full width three alarms fit a row of height 1 (fewer on a narrower widget); one
    # row more for the title.
    per_row = max(1, 3 * width // GRID_WIDTH)
    return {
        "type": "alarm",
        "width": width,
        "height": 1 + max(1, -(-len(arns) // per_row)),
        "properties": {"title": title, "alarms": list(arns), "sortBy": "stateUpdatedTimestamp"},
    }


def row_header(name: str) -> dict[str, Any]:
    return text_widget(f"## {name}")


def flat(dimensions: Mapping[str, str]) -> list[str]:
    return [part for item in dimensions.items() for part in item]


def _from_query(query: Mapping[str, Any], suffix: str) -> list[Any]:
    """A dashboard series for one of an alarm's metric queries (``infra.alarms`` shape)."""
    if "expression" in query:
        ids = [q for q in ("errors", "invocations") if q in query["expression"]]
        expression = query["expression"]
        for q in ids:
            expression = expression.replace(q, f"{q}{suffix}")
        return [{"expression": expression, "label": query.get("label", ""), "id": f"{query['id']}{suffix}"}]
    metric = query["metric"]
    return [
        metric["namespace"],
        metric["metric_name"],
        *flat(metric["dimensions"]),
        {"id": f"{query['id']}{suffix}", "stat": metric["stat"], "visible": False},
    ]


def traffic_widgets(endpoint: str, variants: Sequence[str], specs: Sequence[AlarmSpec]) -> list[dict]:
    """Per variant: invocations and error counts, then the error-rate alarms' expressions."""
    widgets = []
    for variant in variants:
        dims = ["EndpointName", endpoint, "VariantName", variant]
        widgets.append(
            metric_widget(
                f"Invocations and errors: {variant}",
                GRID_WIDTH // 2,
                [
                    [SAGEMAKER_NAMESPACE, "Invocations", *dims],
                    [SAGEMAKER_NAMESPACE, "Invocation4XXErrors", *dims, {"yAxis": "right"}],
                    [SAGEMAKER_NAMESPACE, "Invocation5XXErrors", *dims, {"yAxis": "right"}],
                ],
                stat="Sum",
                period=60,
            )
        )
        rates = [s for s in specs if s.metric_queries and s.key.startswith(f"{variant}-")]
        widgets.append(
            metric_widget(
                f"Error rates: {variant}",
                GRID_WIDTH // 2,
                [
                    series
                    for n, spec in enumerate(rates)
                    for query in spec.metric_queries
                    for series in [_from_query(query, str(n))]
                ],
                period=60,
                lines=[(spec.name, spec.threshold) for spec in rates],
            )
        )
    return widgets


# ModelLatency at the alarm's statistic, then the statistics SageMaker's developer guide lists
# for it (Average, Sum, Min, Max, Sample Count); OverheadLatency beside it, both microseconds.
LATENCY_SERIES = (
    ("ModelLatency", "p99", "model p99 (the alarm's)"),
    ("ModelLatency", "Average", "model average"),
    ("ModelLatency", "Maximum", "model maximum"),
    ("OverheadLatency", "Average", "overhead average"),
)


def latency_widgets(endpoint: str, variants: Sequence[str], thresholds: AlarmThresholds) -> list[dict]:
    width = GRID_WIDTH // min(len(variants), 2)
    return [
        metric_widget(
            f"Model latency (µs): {variant}",
            width,
            [
                [
                    SAGEMAKER_NAMESPACE,
                    metric,
                    "EndpointName",
                    endpoint,
                    "VariantName",
                    variant,
                    {"stat": stat, "label": label},
                ]
                for metric, stat, label in LATENCY_SERIES
            ],
            period=60,
            lines=[("p99 alarm", thresholds.latency_p99_ms * 1000)],
        )
        for variant in variants
    ]


def resource_widgets(
    endpoint: str,
    variants: Sequence[str],
    thresholds: AlarmThresholds,
    *,
    serverless: bool,
    instance_type: str,
) -> list[dict]:
    """CPU, memory and disk per variant; a serverless endpoint has no instances, only concurrency."""
    widgets = []
    for variant in variants:
        dims = ["EndpointName", endpoint, "VariantName", variant]
        if serverless:
            metrics = [[SAGEMAKER_NAMESPACE, "ServerlessConcurrentExecutionsUtilization", *dims]]
            widgets.append(metric_widget(f"Concurrency used: {variant}", GRID_WIDTH // 2, metrics))
            continue
        widgets.append(
            metric_widget(
                f"CPU, memory and disk (%): {variant}",
                GRID_WIDTH // min(len(variants), 2),
                [
                    [INSTANCE_NAMESPACE, "CPUUtilization", *dims, {"label": "CPU (sum over cores)"}],
                    [INSTANCE_NAMESPACE, "MemoryUtilization", *dims],
                    [INSTANCE_NAMESPACE, "DiskUtilization", *dims],
                ],
                lines=[
                    ("CPU alarm", thresholds.cpu_percent * cpu_cores(instance_type)),
                    ("memory alarm", thresholds.memory_percent),
                ],
            )
        )
    return widgets
