"""The CloudWatch dashboard of one model in one stack, derived from the schema and the variants.

One dashboard answers "is it healthy, is the data changing, is the model still right, what
is retraining doing, how is the rollout going". Top to bottom: a text widget saying what the
stack is (strategy, model version, schedules, the runbook), the status of every alarm of the
stack, then one row per question (:data:`ROWS`), each opened by a text header:

* traffic and errors per variant, with each error-rate alarm's own expression and threshold;
* model latency p50/p90/p99 per variant; CPU, memory and disk (concurrency when serverless);
* data drift: the prediction, the drifted-feature count and one widget per schema feature;
* model quality from ground truth, invalid predictions and unmatched labels;
* new records against the retraining threshold;
* pipeline executions succeeded and failed, and the retraining rules triggered per reason;
* rollouts: each production variant's share of invocations, the rollback alarms, and for a
  shadow variant its comparison with production (``model_code.monitoring.shadow``).

Every series is built from the names the publishers use (``infra.alarms``,
``model_code.monitoring.*``), so what is drawn is what is published; nothing here names a
feature or a variant. Pure: ``dashboard_body`` makes no AWS call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.alarms import SAGEMAKER_NAMESPACE, AlarmThresholds, all_alarms, pipeline_dimensions
from infra.dashboard_widgets import (
    GRID_WIDTH,
    alarm_widget,
    flat,
    latency_widgets,
    metric_widget,
    resource_widgets,
    row_header,
    text_widget,
    traffic_widgets,
)
from infra.rollout import CHAMPION, rollback_alarm_names
from model_code.metrics import NAMESPACE
from model_code.monitoring.drift import DEFAULT_PSI_THRESHOLD, PREDICTION_COLUMN
from model_code.monitoring.quality import COUNT_METRIC_NAMES, METRIC_NAMES
from model_code.monitoring.shadow import METRIC_NAMES as SHADOW_METRIC_NAMES

# SageMaker Pipelines publishes execution counts here, per PipelineName.
PIPELINE_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
# EventBridge counts each rule's matches here, per RuleName.
EVENTS_NAMESPACE = "AWS/Events"
ROWS = (
    "Traffic and errors",
    "Latency",
    "Resources",
    "Data drift",
    "Model quality",
    "Data volume",
    "Pipelines",
    "Rollouts",
)
# LogLoss is unbounded; on the right axis it does not squash the 0..1 scores.
_RIGHT_AXIS_QUALITY = {"LogLoss"}


def dashboard_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"


def alarm_arn(partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}"


def model_version(model_package_arn: str | None) -> str:
    """The registry version of a model package ARN (``.../model-package/group/3`` → ``3``)."""
    return model_package_arn.rsplit("/", 1)[-1] if model_package_arn else "none deployed"


def drift_widget(model: str, feature: str, stack: str) -> dict[str, Any]:
    """PSI against the line the drift monitor uses, and the 0/1 flag the alarm watches."""
    dims = [*flat(pipeline_dimensions(model, stack, CHAMPION)), "Feature", feature]
    title = "Prediction drift" if feature == PREDICTION_COLUMN else f"Drift: {feature}"
    return metric_widget(
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


def quality_widgets(model: str, stack: str, variants: Sequence[str], thresholds: AlarmThresholds) -> list:
    production = flat(pipeline_dimensions(model, stack, CHAMPION))
    compared = [v for v in variants if v != CHAMPION]
    scores = [
        [NAMESPACE, name, *production, *([{"yAxis": "right"}] if name in _RIGHT_AXIS_QUALITY else [])]
        for name in METRIC_NAMES.values()
    ]
    scores += [
        [NAMESPACE, "AUC", *flat(pipeline_dimensions(model, stack, v)), {"label": f"AUC ({v})"}]
        for v in compared
    ]
    return [
        metric_widget(
            "Model quality",
            GRID_WIDTH // 2,
            scores,
            stat="Minimum",
            period=3600,
            lines=[("minimum AUC", thresholds.min_auc)],
        ),
        metric_widget(
            "Labelled, invalid and unmatched",
            GRID_WIDTH // 2,
            [[NAMESPACE, name, *production] for name in COUNT_METRIC_NAMES.values()],
            stat="Sum",
            period=3600,
        ),
    ]


def pipeline_widgets(pipelines: Mapping[str, str], retrain_rules: Mapping[str, str]) -> list[dict]:
    """Executions per pipeline (kind → name), and matches of each retraining rule (reason → name)."""
    widgets = [
        metric_widget(
            f"Executions: {kind} pipeline",
            GRID_WIDTH // max(len(pipelines), 1),
            [
                [
                    PIPELINE_NAMESPACE,
                    metric,
                    "PipelineName",
                    name,
                    {"label": metric.removeprefix("Execution")},
                ]
                for metric in ("ExecutionSucceeded", "ExecutionFailed")
            ],
            stat="Sum",
            period=3600,
        )
        for kind, name in pipelines.items()
    ]
    if retrain_rules:
        widgets.append(
            metric_widget(
                "Retraining triggered, by reason",
                GRID_WIDTH,
                [
                    [EVENTS_NAMESPACE, "TriggeredRules", "RuleName", rule, {"label": reason}]
                    for reason, rule in retrain_rules.items()
                ],
                stat="Sum",
                period=3600,
            )
        )
    return widgets


def rollout_widgets(
    model: str, stack: str, endpoint: str, variants: Sequence[str], shadow_variants: Sequence[str]
) -> list[dict]:
    """Each production variant's share of invocations, and each shadow's comparison with production."""
    production = [v for v in variants if v not in shadow_variants]
    series: list[list[Any]] = []
    for n, variant in enumerate(production):
        series.append(
            [SAGEMAKER_NAMESPACE, "Invocations", "EndpointName", endpoint, "VariantName", variant,
             {"id": f"i{n}", "stat": "Sum", "visible": False}]
        )  # fmt: skip
    total = " + ".join(f"FILL(i{n}, 0)" for n in range(len(production)))
    series += [
        [{"expression": f"100 * FILL(i{n}, 0) / ({total})", "label": f"{v} (%)", "id": f"w{n}"}]
        for n, v in enumerate(production)
    ]
    widgets = [metric_widget("Traffic share by variant (%)", GRID_WIDTH // 2, series, period=60)]
    for variant in shadow_variants:
        dims = flat(pipeline_dimensions(model, stack, variant))
        names = SHADOW_METRIC_NAMES
        widgets.append(
            metric_widget(
                f"Shadow {variant} against production",
                GRID_WIDTH // 2,
                [
                    [NAMESPACE, names["agreement_rate"], *dims, {"label": "agreement of predicted classes"}],
                    [
                        NAMESPACE,
                        names["mean_abs_probability_difference"],
                        *dims,
                        {"label": "mean |Δ probability|"},
                    ],
                    [NAMESPACE, names["challenger_auc"], *dims, {"label": f"AUC ({variant})"}],
                    [NAMESPACE, names["production_auc"], *dims, {"label": "AUC (production, same requests)"}],
                ],
                stat="Average",
                period=3600,
            )
        )
    return widgets


def header_markdown(
    schema_name: str,
    stack: str,
    *,
    strategy: str,
    model_package_arn: str | None,
    schedules: Mapping[str, str],
    runbook_url: str,
) -> str:
    lines = [
        f"# {schema_name} · stack `{stack}`",
        f"Deployment strategy **{strategy}** · model version **{model_version(model_package_arn)}**"
        + (f" (`{model_package_arn}`)" if model_package_arn else ""),
        " · ".join(f"{what}: `{expression}`" for what, expression in schedules.items()),
        f"What to do when an alarm fires: [runbook]({runbook_url})",
    ]
    return "\n\n".join(line for line in lines if line)


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
    account: str = "000000000000",
    partition: str = "aws",
    strategy: str = "all-at-once",
    model_package_arn: str | None = None,
    schedules: Mapping[str, str] | None = None,
    runbook_url: str = "README.md#runbook",
    pipelines: Mapping[str, str] | None = None,
    retrain_rules: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The dashboard's body (serialise with ``json.dumps``), laid out on CloudWatch's 24-column grid.

    ``variants`` are the endpoint's, production first; with the ``shadow`` strategy the ones
    after the first are shadows. ``pipelines`` maps a kind (training, monitoring...) to the
    pipeline's name, ``retrain_rules`` a retraining reason to its EventBridge rule.
    """
    specs = all_alarms(
        schema_name=schema_name,
        stack=stack,
        feature_names=feature_names,
        thresholds=thresholds,
        endpoint=endpoint,
        variants=variants,
        serverless=serverless,
        instance_type=instance_type,
        drift_monitoring=drift_monitoring,
    )
    arn = {s.name: alarm_arn(partition, region, account, s.name) for s in specs}
    header = header_markdown(
        schema_name,
        stack,
        strategy=strategy,
        model_package_arn=model_package_arn,
        schedules=schedules or {},
        runbook_url=runbook_url,
    )
    widgets = [text_widget(header, height=4), alarm_widget("Every alarm of the stack", list(arn.values()))]
    model = flat(pipeline_dimensions(schema_name, stack))
    shadows = [v for v in variants if v != CHAMPION] if strategy == "shadow" else []
    if endpoint is not None:
        widgets += [row_header(ROWS[0]), *traffic_widgets(endpoint, variants, specs)]
        widgets += [row_header(ROWS[1]), *latency_widgets(endpoint, variants, thresholds)]
        widgets += [row_header(ROWS[2])]
        widgets += resource_widgets(
            endpoint, variants, thresholds, serverless=serverless, instance_type=instance_type
        )
    if drift_monitoring:
        production = flat(pipeline_dimensions(schema_name, stack, CHAMPION))
        widgets += [
            row_header(ROWS[3]),
            drift_widget(schema_name, PREDICTION_COLUMN, stack),
            metric_widget(
                "Drifted features",
                GRID_WIDTH // 3,
                [[NAMESPACE, "DriftedFeatureCount", *production]],
                stat="Maximum",
                period=3600,
            ),
            *[drift_widget(schema_name, feature, stack) for feature in feature_names],
        ]
    widgets += [row_header(ROWS[4]), *quality_widgets(schema_name, stack, variants or [CHAMPION], thresholds)]
    widgets += [
        row_header(ROWS[5]),
        metric_widget(
            "New records since last training",
            GRID_WIDTH,
            [[NAMESPACE, "NewRecordCount", *model]],
            stat="Maximum",
            period=3600,
            lines=[("retraining threshold", thresholds.new_records_threshold)],
        ),
    ]
    widgets += [row_header(ROWS[6]), *pipeline_widgets(pipelines or {}, retrain_rules or {})]
    if endpoint is not None:
        rollback = [arn[name] for name in rollback_alarm_names(endpoint, variants)]
        widgets += [row_header(ROWS[7]), *rollout_widgets(schema_name, stack, endpoint, variants, shadows)]
        widgets.append(alarm_widget("Rollback alarms (a rollout rolls back when one fires)", rollback))
    return {"start": "-P7D", "periodOverride": "inherit", "widgets": _lay_out(widgets, region)}


def _lay_out(widgets: list[dict[str, Any]], region: str) -> list[dict[str, Any]]:
    """Left to right, wrapping at the grid's edge; every metric widget gets the region it reads."""
    placed, x, y, row_height = [], 0, 0, 0
    for widget in widgets:
        # A row header always starts a line of its own.
        if x + widget["width"] > GRID_WIDTH or (widget["type"] == "text" and x):
            x, y, row_height = 0, y + row_height, 0
        if widget["type"] == "metric":
            widget = {**widget, "properties": {**widget["properties"], "region": region}}
        placed.append({**widget, "x": x, "y": y})
        x, row_height = x + widget["width"], max(row_height, widget["height"])
    return placed
