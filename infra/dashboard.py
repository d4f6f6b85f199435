"""The CloudWatch dashboard of one model in one stack, derived from the schema and the variants.

One dashboard an on-call engineer reads top to bottom, one row per question (:data:`ROWS`),
each opened by a text header, under a short text saying what the stack is (strategy, model
version, schedules, the runbook):

* is it up: the status of every alarm of the stack, traffic and errors per variant (with each
  error-rate alarm's own expression and threshold), model latency, CPU, memory and disk
  (concurrency when serverless);
* is it drifting: the prediction's drift, the drifted-feature count and one widget per schema
  feature, each with PSI, the test's p-value and the 0/1 flag the alarm watches (a feature
  drifts when both halves of the rule hold, ``model_code.monitoring.drift``);
* is it accurate: model quality from ground truth, invalid predictions and unmatched labels;
* did it retrain, and why: training runs started by trigger reason, new records against the
  retraining threshold, and SageMaker's execution counts per pipeline;
* what is serving: the rollback alarms, invocations per production variant and, for a shadow
  variant, its comparison with production (``model_code.monitoring.shadow``).

Roll-outs are not a series CloudWatch holds: ``mlops dashboard`` marks them (vertical lines from
``DescribeEndpoint``) on every widget of the endpoint's metrics. Every series is built from the
names the publishers use (``infra.alarms``, ``model_code.monitoring.*``, ``model_code.metrics``,
SageMaker's own), so what is drawn is what is published; nothing here names a feature or a
variant. Pure: ``dashboard_body`` makes no AWS call.
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
from infra.retraining import REASONS
from infra.rollout import CHAMPION, rollback_alarm_names
from model_code.metrics import NAMESPACE, RETRAINING_STARTED
from model_code.monitoring.drift import DEFAULT_P_VALUE_THRESHOLD, DEFAULT_PSI_THRESHOLD, PREDICTION_COLUMN
from model_code.monitoring.quality import COUNT_METRIC_NAMES, METRIC_NAMES
from model_code.monitoring.shadow import METRIC_NAMES as SHADOW_METRIC_NAMES

# SageMaker Pipelines publishes execution counts here, per PipelineName.
PIPELINE_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
ROWS = (
    "Is it up?",
    "Is it drifting?",
    "Is it accurate?",
    "Did it retrain, and why?",
    "What is serving?",
)
# How a training run can be started (infra.retraining.REASONS, and by hand).
TRIGGER_REASONS = ("manual", *REASONS)
# SageMaker Pipelines' execution metrics (its developer guide, "SageMaker pipelines metrics").
EXECUTION_METRICS = ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped")
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
    """Both halves of the drift rule against their lines (PSI at or above its threshold, the
    test's p-value below its own), and the 0/1 flag the alarm watches."""
    dims = [*flat(pipeline_dimensions(model, stack, CHAMPION)), "Feature", feature]
    title = "Prediction drift" if feature == PREDICTION_COLUMN else f"Drift: {feature}"
    return metric_widget(
        title,
        GRID_WIDTH // 3,
        [
            [NAMESPACE, "FeaturePSI", *dims, {"label": "PSI"}],
            [NAMESPACE, "FeatureDriftPValue", *dims, {"label": "p-value", "yAxis": "right"}],
            [NAMESPACE, "FeatureDrifted", *dims, {"label": "drifted (0/1)", "yAxis": "right"}],
        ],
        stat="Maximum",
        period=3600,
        lines=[
            ("PSI threshold", DEFAULT_PSI_THRESHOLD),
            ("p-value threshold", DEFAULT_P_VALUE_THRESHOLD, "right"),
        ],
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


def pipeline_widgets(pipelines: Mapping[str, str]) -> list[dict]:
    """SageMaker's execution counts per pipeline (kind → name), as SageMaker publishes them."""
    return [
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
                for metric in EXECUTION_METRICS
            ],
            stat="Sum",
            period=3600,
        )
        for kind, name in pipelines.items()
    ]


def retraining_widget(training_pipeline: str) -> dict[str, Any]:
    """Training runs that reached training, per trigger reason (``model_code.training.train``)."""
    return metric_widget(
        "Training runs started, by reason",
        GRID_WIDTH // 2,
        [
            [
                NAMESPACE,
                RETRAINING_STARTED,
                "PipelineName",
                training_pipeline,
                "TriggerReason",
                reason,
                {"label": reason},
            ]
            for reason in TRIGGER_REASONS
        ],
        stat="Sum",
        period=3600,
    )


def rollout_widgets(
    model: str, stack: str, endpoint: str, variants: Sequence[str], shadow_variants: Sequence[str]
) -> list[dict]:
    """Invocations per production variant (the drawing marks each roll-out on it), and each
    shadow's comparison with production.

    Not a traffic share: blue/green fleets keep the variant's name, so a share per variant
    stays at 100% through a canary; the roll-out's steps show as marks and as its outcome.
    """
    production = [v for v in variants if v not in shadow_variants]
    widgets = [
        metric_widget(
            "Invocations per variant, roll-outs marked",
            GRID_WIDTH // 2,
            [
                [SAGEMAKER_NAMESPACE, "Invocations", "EndpointName", endpoint, "VariantName", v, {"label": v}]
                for v in production
            ],
            stat="Sum",
            period=60,
        )
    ]
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
    facts = [
        f"deployment strategy **{strategy}**",
        f"model version **{model_version(model_package_arn)}**",
        *(f"{what} `{expression}`" for what, expression in schedules.items()),
        f"when an alarm fires: [runbook]({runbook_url})",
    ]
    return f"# {schema_name} · stack `{stack}`\n\n" + " · ".join(facts)


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
) -> dict[str, Any]:
    """The dashboard's body (serialise with ``json.dumps``), laid out on CloudWatch's 24-column grid.

    ``variants`` are the endpoint's, production first; with the ``shadow`` strategy the ones
    after the first are shadows. ``pipelines`` maps a kind (training, monitoring...) to the
    pipeline's name.
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
    widgets = [text_widget(header, height=2), row_header(ROWS[0])]
    widgets.append(alarm_widget("Every alarm of the stack", list(arn.values())))
    shadows = [v for v in variants if v != CHAMPION] if strategy == "shadow" else []
    if endpoint is not None:
        widgets += traffic_widgets(endpoint, variants, specs)
        widgets += latency_widgets(endpoint, variants, thresholds)
        widgets += resource_widgets(
            endpoint, variants, thresholds, serverless=serverless, instance_type=instance_type
        )
    if drift_monitoring:
        production = flat(pipeline_dimensions(schema_name, stack, CHAMPION))
        widgets += [
            row_header(ROWS[1]),
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
    widgets += [row_header(ROWS[2]), *quality_widgets(schema_name, stack, variants or [CHAMPION], thresholds)]
    pipelines = dict(pipelines or {})
    widgets.append(row_header(ROWS[3]))
    if "training" in pipelines:
        widgets.append(retraining_widget(pipelines["training"]))
    widgets.append(
        metric_widget(
            "New records since last training",
            GRID_WIDTH // 2,
            [[NAMESPACE, "NewRecordCount", *flat(pipeline_dimensions(schema_name, stack))]],
            stat="Maximum",
            period=3600,
            lines=[("retraining threshold", thresholds.new_records_threshold)],
        )
    )
    widgets += pipeline_widgets(pipelines)
    if endpoint is not None:
        rollback = [arn[name] for name in rollback_alarm_names(endpoint, variants)]
        widgets += [row_header(ROWS[4]), *rollout_widgets(schema_name, stack, endpoint, variants, shadows)]
        widgets.append(
            alarm_widget("Rollback alarms (a roll-out rolls back when one fires)", rollback, GRID_WIDTH // 2)
        )
    return {"start": "-P7D", "periodOverride": "inherit", "widgets": _lay_out(widgets, region)}


def _lay_out(widgets: list[dict[str, Any]], region: str) -> list[dict[str, Any]]:
    """Left to right, wrapping at the grid's edge; the last widget of a line widens to the edge
    (no empty cells beside it); every metric widget gets the region it reads."""
    lines: list[list[dict[str, Any]]] = [[]]
    for widget in widgets:
        # A text widget (a row header) always starts a line of its own.
        used = sum(w["width"] for w in lines[-1])
        if lines[-1] and (used + widget["width"] > GRID_WIDTH or widget["type"] == "text"):
            lines.append([])
        if widget["type"] == "metric":
            widget = {**widget, "properties": {**widget["properties"], "region": region}}
        lines[-1].append(dict(widget))
    placed, y = [], 0
    for line in lines:
        line[-1]["width"] += GRID_WIDTH - sum(w["width"] for w in line)
        x = 0
        for widget in line:
            placed.append({**widget, "x": x, "y": y})
            x += widget["width"]
        y += max(w["height"] for w in line)
    return placed
