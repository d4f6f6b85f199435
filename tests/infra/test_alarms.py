"""Alarm definitions as plain data: names, thresholds and what each alarm watches."""

from __future__ import annotations

import pytest

from infra.alarms import (
    COMPUTATIONAL,
    AlarmThresholds,
    all_alarms,
    cpu_cores,
    data_volume_alarm,
    drift_alarms,
    endpoint_alarms,
)
from infra.endpoint import CHALLENGER, CHAMPION, rollback_alarm_names

THRESHOLDS = AlarmThresholds()


@pytest.mark.parametrize(
    ("instance_type", "cores"),
    [
        ("ml.t2.medium", 2),
        ("ml.m5.large", 2),
        ("ml.c5.xlarge", 4),
        ("ml.m5.2xlarge", 8),
        ("ml.g4dn.12xlarge", 48),
    ],
)
def test_cpu_cores_from_the_instance_size(instance_type, cores):
    assert cpu_cores(instance_type) == cores


def test_cpu_cores_refuses_an_unknown_size():
    with pytest.raises(ValueError, match=r"instance_type: cannot tell the vCPUs of 'ml\.m5\.metal'"):
        cpu_cores("ml.m5.metal")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("error_rate_5xx", 5, "error_rate_5xx: 5 is out of range"),
        ("cpu_percent", 0, "cpu_percent: 0 is out of range"),
        ("min_auc", 1.5, "min_auc: 1.5 is out of range"),
        ("new_records_threshold", 0, "new_records_threshold: 0 must be above 0"),
    ],
)
def test_thresholds_name_the_bad_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        AlarmThresholds(**{key: value})


def test_endpoint_alarm_names_follow_endpoint_variant_kind():
    names = [s.name for s in endpoint_alarms("e", [CHAMPION], THRESHOLDS)]
    assert names == [f"e-{CHAMPION}-{k}" for k in ("5xx-rate", "4xx-rate", "latency-p99", "cpu", "memory")]


def test_every_rollback_alarm_has_a_definition():
    specs = all_alarms(
        schema_name="customer-churn",
        stack="prod",
        feature_names=["a"],
        thresholds=THRESHOLDS,
        endpoint="customer-churn-prod",
        variants=[CHAMPION, CHALLENGER],
    )
    defined = {s.name for s in specs if s.group == COMPUTATIONAL}
    assert set(rollback_alarm_names("customer-churn-prod", [CHAMPION, CHALLENGER])) <= defined


def test_drift_alarms_keep_missing_data_from_changing_the_verdict():
    # Between monitoring runs there is no data; a retraining trigger must not re-fire on each gap.
    assert {s.treat_missing_data for s in drift_alarms("p", "m", ["a", "b"], THRESHOLDS, "prod")} == {
        "ignore"
    }


def test_drift_alarms_refuse_a_feature_named_like_the_predictions():
    with pytest.raises(ValueError, match="features: 'prediction' is the drift monitor's name"):
        drift_alarms("p", "m", ["prediction"], THRESHOLDS, "prod")


def test_data_volume_compares_the_running_count_not_a_sum():
    spec = data_volume_alarm("p", "m", AlarmThresholds(new_records_threshold=500), "prod")
    assert (spec.statistic, spec.threshold, spec.comparison_operator) == (
        "Maximum",
        500,
        "GreaterThanOrEqualToThreshold",
    )


def _pipeline_alarm_dimensions(stack: str) -> dict[str, dict]:
    specs = all_alarms(
        schema_name="customer-churn",
        stack=stack,
        feature_names=["a"],
        thresholds=THRESHOLDS,
        endpoint=f"customer-churn-{stack}",
        variants=[CHAMPION, CHALLENGER],
    )
    return {s.metric_name: s.dimensions for s in specs if s.group != COMPUTATIONAL}


def test_pipeline_alarms_watch_only_their_own_stacks_metrics():
    # Stacks sharing an account: staging's drift must not put prod's alarm into ALARM.
    prod, staging = _pipeline_alarm_dimensions("prod"), _pipeline_alarm_dimensions("staging")
    assert set(prod) == {"FeatureDrifted", "DriftedFeatureCount", "AUC", "NewRecordCount"}
    for metric, dims in prod.items():
        assert dims["Stack"] == "prod" and staging[metric]["Stack"] == "staging", metric


def test_drift_and_quality_alarms_watch_the_production_variant_only():
    dims = _pipeline_alarm_dimensions("staging")
    assert dims["FeatureDrifted"]["Variant"] == CHAMPION and dims["AUC"]["Variant"] == CHAMPION
    assert "Variant" not in dims["NewRecordCount"]  # counted over the feature group, not a variant


def test_alarm_args_leave_out_what_is_unset():
    (spec,) = [s for s in endpoint_alarms("e", [CHAMPION], THRESHOLDS) if s.name.endswith("5xx-rate")]
    args = spec.alarm_args()
    assert "metric_name" not in args and "statistic" not in args
    assert args["metric_queries"][-1]["expression"] == "FILL(errors, 0) / invocations"
    assert args["alarm_description"]


def test_the_drift_episode_alarm_watches_the_count_the_drift_check_publishes():
    from infra.alarms import DRIFT_EPISODE, drift_episode_alarm
    from model_code import metrics
    from model_code.monitoring.drift import DriftReport, FeatureDrift

    flagged = FeatureDrift("numeric", "ks", 0.5, 1e-9, 1.2, True, 0.0, 0.0)
    published = metrics.with_dimensions(
        DriftReport("m", 10, 10, 0.05, 0.01, {"a": flagged, "b": flagged}).to_metrics(),
        {"Variant": CHAMPION, "Stack": "prod"},
    )
    (count,) = [d for d in published if d["MetricName"] == "DriftedFeatureCount"]
    spec = drift_episode_alarm("p", "m", "prod")
    assert (spec.group, spec.metric_name, spec.statistic) == (DRIFT_EPISODE, "DriftedFeatureCount", "Maximum")
    assert spec.dimensions == {d["Name"]: d["Value"] for d in count["Dimensions"]}
    # Any flagged column is an episode; between runs the verdict stands (no re-fire per gap).
    assert (spec.comparison_operator, spec.threshold, spec.treat_missing_data) == (
        "GreaterThanOrEqualToThreshold",
        1,
        "ignore",
    )
    # Not among the per-column alarms, which the scenario and `mlops verify` list by this prefix.
    assert not spec.name.startswith("p-drift-")


def test_one_drift_episode_alarm_whatever_the_number_of_features():
    names = [f"f{n}" for n in range(150)]
    specs = all_alarms(schema_name="m", stack="prod", feature_names=names, thresholds=THRESHOLDS)
    assert [s.name for s in specs if s.metric_name == "DriftedFeatureCount"] == ["m-prod-drifted-features"]
    assert not [
        s
        for s in all_alarms(
            schema_name="m", stack="prod", feature_names=names, thresholds=THRESHOLDS, drift_monitoring=False
        )
        if s.metric_name == "DriftedFeatureCount"
    ]
