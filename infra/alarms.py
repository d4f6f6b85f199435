"""The platform's CloudWatch alarms as plain data: names, metrics, thresholds, missing-data rules.

Four kinds, each from the metrics someone else publishes:

* computational, per endpoint variant, from SageMaker (``AWS/SageMaker`` and
  ``/aws/sagemaker/Endpoints``): 5XX and 4XX error rates, p99 model latency, CPU, memory;
* statistical, from the monitoring pipeline (``model_code.monitoring.drift``): one alarm per schema
  feature and one for the predictions, on the 0/1 ``FeatureDrifted`` flag, for people (which
  feature moved); and one drift-episode alarm on the run's ``DriftedFeatureCount``, the one
  retraining listens to (``infra.retraining`` says why one alarm, not a composite);
* feedback, from the monitoring pipeline (``model_code.monitoring.quality``): AUC below a floor;
* data volume, from the monitoring pipeline: new feature-store records since the last
  training run at or above a threshold.

:class:`Monitoring` turns each :class:`AlarmSpec` into an ``aws.cloudwatch.MetricAlarm``;
the endpoint's auto-rollback refers to two of them by the names built here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.rollout import CHAMPION, endpoint_alarm_name, endpoint_name
from model_code.metrics import NAMESPACE
from model_code.monitoring.drift_profile import PREDICTION_COLUMN  # (drift.py loads SciPy)

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
COMPUTATIONAL, DRIFT, QUALITY, DATA_VOLUME = "computational", "drift", "quality", "data-volume"
DRIFT_EPISODE = "drift-episode"
# Endpoint metrics arrive every minute; three bad minutes out of five is a trend, not a blip,
# and still fires well inside a rollout's default 10-minute bake.
ENDPOINT_PERIOD, ENDPOINT_PERIODS, ENDPOINT_DATAPOINTS = 60, 5, 3
# Instance metrics are smoother and slower to matter.
INSTANCE_PERIOD, INSTANCE_PERIODS = 300, 3
# The monitoring pipeline publishes once a run (hourly by default). An alarm on an hour keeps
# the last run's verdict; between runs there is no data, which must not change the verdict.
PIPELINE_PERIOD = 3600
# vCPUs by instance size (the part after the family): m5, c5, r5, g4dn, t2/t3 all follow it.
_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}


@dataclass(frozen=True)
class AlarmThresholds:
    """Where each alarm fires. Defaults suit a small real-time classifier."""

    error_rate_5xx: float = 0.01
    """Share of invocations answered with a 5XX (model or container failures)."""
    error_rate_4xx: float = 0.05
    """Share of invocations answered with a 4XX (callers sending what the contract refuses)."""
    latency_p99_ms: float = 500
    """p99 of ModelLatency, in milliseconds (the alarm compares microseconds, as SageMaker reports)."""
    cpu_percent: float = 80
    """Average CPU per core; SageMaker reports the sum over cores, so the alarm scales by them."""
    memory_percent: float = 80
    drift_psi_alarm: float = 1
    """FeatureDrifted (0/1: PSI and p-value both past their limits) at or above this fires the
    feature's alarm; 1 means the latest monitoring run flagged the feature."""
    min_auc: float = 0.7
    """AUC on labelled feedback below this fires the quality alarm."""
    new_records_threshold: float = 10000
    """New feature-store records since the last training run at or above this fire the data-volume alarm."""

    def __post_init__(self) -> None:
        for key in ("error_rate_5xx", "error_rate_4xx", "min_auc"):
            value = getattr(self, key)
            if not 0 < value <= 1:
                raise ValueError(f"{key}: {value} is out of range; it must be above 0 and at most 1")
        for key in ("cpu_percent", "memory_percent"):
            value = getattr(self, key)
            if not 0 < value <= 100:
                raise ValueError(f"{key}: {value} is out of range; it must be above 0 and at most 100")
        for key in ("latency_p99_ms", "drift_psi_alarm", "new_records_threshold"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: {getattr(self, key)} must be above 0")


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm, in ``aws.cloudwatch.MetricAlarm``'s terms (actions and tags are added by Monitoring)."""

    key: str
    """Kebab-case suffix of the alarm's logical resource name."""
    group: str
    name: str
    description: str
    comparison_operator: str
    threshold: float
    evaluation_periods: int
    treat_missing_data: str
    datapoints_to_alarm: int | None = None
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: dict[str, str] | None = None
    statistic: str | None = None
    extended_statistic: str | None = None
    period: int | None = None
    metric_queries: tuple[dict[str, Any], ...] = ()

    def alarm_args(self) -> dict[str, Any]:
        """Keyword arguments for ``aws.cloudwatch.MetricAlarm`` (unset fields left out)."""
        fields = (
            "name",
            "comparison_operator",
            "threshold",
            "evaluation_periods",
            "treat_missing_data",
            "datapoints_to_alarm",
            "namespace",
            "metric_name",
            "dimensions",
            "statistic",
            "extended_statistic",
            "period",
        )
        args = {f: getattr(self, f) for f in fields if getattr(self, f) is not None}
        if self.metric_queries:
            args["metric_queries"] = [dict(q) for q in self.metric_queries]
        return {**args, "alarm_description": self.description}


def alarm_prefix(schema_name: str, stack: str) -> str:
    """Prefix of the model-level alarms: the same as the endpoint's name, so they sort together."""
    return endpoint_name(schema_name, stack)


def kebab(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_cores(instance_type: str) -> int:
    """vCPUs of a SageMaker instance type, from its size: ``ml.m5.2xlarge`` → 8."""
    size = instance_type.rsplit(".", 1)[-1]
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    match = re.fullmatch(r"(\d+)xlarge", size)
    if not match:
        raise ValueError(
            f"instance_type: cannot tell the vCPUs of {instance_type!r} (expected ml.<family>.<size>)"
        )
    return 4 * int(match.group(1))


def _error_rate(endpoint: str, variant: str, code: str, threshold: float) -> AlarmSpec:
    dims = {"EndpointName": endpoint, "VariantName": variant}

    def metric(query_id: str, metric_name: str) -> dict[str, Any]:
        return {
            "id": query_id,
            "metric": {
                "namespace": SAGEMAKER_NAMESPACE,
                "metric_name": metric_name,
                "dimensions": dims,
                "period": ENDPOINT_PERIOD,
                "stat": "Sum",
            },
            "return_data": False,
        }

    return AlarmSpec(
        key=f"{variant}-{code.lower()}-rate",
        group=COMPUTATIONAL,
        name=endpoint_alarm_name(endpoint, variant, f"{code.lower()}-rate"),
        description=(
            f"More than {threshold:.1%} of {endpoint}/{variant} invocations answered {code}. "
            + (
                "Check the container logs."
                if code == "5XX"
                else "Check what callers send against the schema."
            )
        ),
        comparison_operator="GreaterThanThreshold",
        threshold=threshold,
        evaluation_periods=ENDPOINT_PERIODS,
        datapoints_to_alarm=ENDPOINT_DATAPOINTS,
        # No traffic is no errors: a quiet endpoint (or a canary yet to be called) is healthy.
        treat_missing_data="notBreaching",
        metric_queries=(
            metric("errors", f"Invocation{code}Errors"),
            metric("invocations", "Invocations"),
            # The error metric may be absent in a minute with invocations: count it as 0.
            {
                "id": "rate",
                "expression": "FILL(errors, 0) / invocations",
                "label": f"{code} rate",
                "return_data": True,
            },
        ),
    )


def endpoint_alarms(
    endpoint: str,
    variants: Sequence[str],
    thresholds: AlarmThresholds,
    *,
    serverless: bool = False,
    instance_type: str = "ml.m5.large",
) -> list[AlarmSpec]:
    """Computational alarms for every variant (the shadow's too: it is worth knowing it fails)."""
    specs = []
    for variant in variants:
        dims = {"EndpointName": endpoint, "VariantName": variant}
        specs += [
            _error_rate(endpoint, variant, "5XX", thresholds.error_rate_5xx),
            _error_rate(endpoint, variant, "4XX", thresholds.error_rate_4xx),
            AlarmSpec(
                key=f"{variant}-latency-p99",
                group=COMPUTATIONAL,
                name=endpoint_alarm_name(endpoint, variant, "latency-p99"),
                description=f"p99 model latency of {endpoint}/{variant} above {thresholds.latency_p99_ms:g} ms.",
                namespace=SAGEMAKER_NAMESPACE,
                metric_name="ModelLatency",
                dimensions=dims,
                extended_statistic="p99",
                period=ENDPOINT_PERIOD,
                comparison_operator="GreaterThanThreshold",
                threshold=thresholds.latency_p99_ms * 1000,  # SageMaker reports microseconds
                evaluation_periods=ENDPOINT_PERIODS,
                datapoints_to_alarm=ENDPOINT_DATAPOINTS,
                treat_missing_data="notBreaching",
            ),
        ]
        if serverless:
            continue  # serverless endpoints have no instances to report CPU and memory for
        cores = cpu_cores(instance_type)
        for kind, metric_name, limit in (
            ("cpu", "CPUUtilization", thresholds.cpu_percent * cores),
            ("memory", "MemoryUtilization", thresholds.memory_percent),
        ):
            specs.append(
                AlarmSpec(
                    key=f"{variant}-{kind}",
                    group=COMPUTATIONAL,
                    name=endpoint_alarm_name(endpoint, variant, kind),
                    description=f"{metric_name} of {endpoint}/{variant} above {limit:g}% on average.",
                    namespace=INSTANCE_NAMESPACE,
                    metric_name=metric_name,
                    dimensions=dims,
                    statistic="Average",
                    period=INSTANCE_PERIOD,
                    comparison_operator="GreaterThanThreshold",
                    threshold=limit,
                    evaluation_periods=INSTANCE_PERIODS,
                    # Instances always report: silence means no endpoint, shown as INSUFFICIENT_DATA.
                    treat_missing_data="missing",
                )
            )
    return specs


def pipeline_dimensions(model: str, stack: str, variant: str | None = None) -> dict[str, str]:
    """The dimensions the monitoring pipeline publishes a stack's metrics with.

    ``Stack`` keeps stacks sharing an account apart; drift and quality are per endpoint
    variant, and the alarms watch the production variant (a shadow challenger's numbers are
    published beside it, for comparison, and page nobody).
    """
    return {"Model": model, "Stack": stack, **({"Variant": variant} if variant else {})}


def _pipeline_alarm(key: str, group: str, name: str, description: str, **metric: Any) -> AlarmSpec:
    return AlarmSpec(
        key=key,
        group=group,
        name=name,
        description=description,
        namespace=NAMESPACE,
        period=PIPELINE_PERIOD,
        evaluation_periods=1,
        # Between monitoring runs there is no data: keep the last run's verdict, so a retraining
        # trigger listening for "to ALARM" fires once per incident, not once per gap.
        treat_missing_data="ignore",
        **metric,
    )


def drift_alarms(
    prefix: str, model: str, feature_names: Sequence[str], thresholds: AlarmThresholds, stack: str
) -> list[AlarmSpec]:
    """One alarm per schema feature, then one for the predictions (``Feature=prediction``)."""
    if PREDICTION_COLUMN in feature_names:
        raise ValueError(
            f"features: {PREDICTION_COLUMN!r} is the drift monitor's name for the predictions; rename the feature"
        )
    return [
        _pipeline_alarm(
            f"drift-{kebab(feature)}",
            DRIFT,
            f"{prefix}-drift-{feature}",
            (
                f"The monitoring pipeline found {model}'s predictions drifting from the training baseline."
                if feature == PREDICTION_COLUMN
                else f"The monitoring pipeline found feature {feature} of {model} drifting from the training baseline."
            ),
            metric_name="FeatureDrifted",
            dimensions={**pipeline_dimensions(model, stack, CHAMPION), "Feature": feature},
            statistic="Maximum",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=thresholds.drift_psi_alarm,
        )
        for feature in [*feature_names, PREDICTION_COLUMN]
    ]


def drift_episode_alarm(prefix: str, model: str, stack: str) -> AlarmSpec:
    """ALARM while the latest monitoring run flagged at least one column (a feature or the predictions).

    The run publishes ``DriftedFeatureCount`` beside the per-column flags, from the same
    comparison, so this alarm is in ALARM exactly when one of :func:`drift_alarms` is: it goes
    to ALARM once when an episode starts, however many columns drift and in whatever order,
    and back to OK once no column drifts. Its name does not start with ``<prefix>-drift-``,
    which names the per-column alarms only.
    """
    return _pipeline_alarm(
        "drifted-features",
        DRIFT_EPISODE,
        f"{prefix}-drifted-features",
        f"The monitoring pipeline found at least one column of {model} (a feature or the predictions) "
        "drifting from the training baseline; the drift alarms name which.",
        metric_name="DriftedFeatureCount",
        dimensions=pipeline_dimensions(model, stack, CHAMPION),
        statistic="Maximum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=1,
    )


def quality_alarm(prefix: str, model: str, thresholds: AlarmThresholds, stack: str) -> AlarmSpec:
    return _pipeline_alarm(
        "quality-auc",
        QUALITY,
        f"{prefix}-quality-auc",
        f"AUC of {model} on labelled feedback below {thresholds.min_auc:g}.",
        metric_name="AUC",
        dimensions=pipeline_dimensions(model, stack, CHAMPION),
        statistic="Minimum",
        comparison_operator="LessThanThreshold",
        threshold=thresholds.min_auc,
    )


def data_volume_alarm(prefix: str, model: str, thresholds: AlarmThresholds, stack: str) -> AlarmSpec:
    # NewRecordCount is a running count since the last training run, so its Maximum (not a
    # Sum, which would add up successive counts of the same records) is compared.
    return _pipeline_alarm(
        "new-records",
        DATA_VOLUME,
        f"{prefix}-new-records",
        f"At least {thresholds.new_records_threshold:g} new {model} records since the last training run.",
        metric_name="NewRecordCount",
        dimensions=pipeline_dimensions(model, stack),
        statistic="Maximum",
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=thresholds.new_records_threshold,
    )


def all_alarms(
    *,
    schema_name: str,
    stack: str,
    feature_names: Sequence[str],
    thresholds: AlarmThresholds,
    endpoint: str | None = None,
    variants: Sequence[str] = (),
    serverless: bool = False,
    instance_type: str = "ml.m5.large",
    drift_monitoring: bool = True,
) -> list[AlarmSpec]:
    """Every alarm of one model in one stack.

    No endpoint alarms while no endpoint is deployed; no drift alarms when the monitoring
    pipeline checks no drift (they would wait for data forever). The rollback alarms
    (:func:`infra.rollout.rollback_alarm_names`) are among the endpoint alarms.
    """
    prefix = alarm_prefix(schema_name, stack)
    specs = []
    if endpoint is not None:
        specs += endpoint_alarms(
            endpoint, variants, thresholds, serverless=serverless, instance_type=instance_type
        )
    if drift_monitoring:
        specs += drift_alarms(prefix, schema_name, feature_names, thresholds, stack)
        specs.append(drift_episode_alarm(prefix, schema_name, stack))
    return [
        *specs,
        quality_alarm(prefix, schema_name, thresholds, stack),
        data_volume_alarm(prefix, schema_name, thresholds, stack),
    ]
