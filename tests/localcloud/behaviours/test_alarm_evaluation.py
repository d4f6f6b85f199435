"""One period's statistic, one metric-math expression and one alarm decision, without a clock.

Expected values follow CloudWatch's documentation: the statistics' definitions (SampleCount,
Sum, Average = Sum / SampleCount, Minimum, Maximum; percentiles need the raw values, so data
published only as statistic sets has none), metric math's arithmetic (a missing operand makes
the point missing, FILL supplies a value for it), the comparison operators, and how an alarm
treats missing data (``missing``: all unknown is INSUFFICIENT_DATA; ``ignore``: the state stays;
``breaching`` / ``notBreaching``: a missing point counts as that).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from localcloud.behaviours.alarms import decide, evaluate_expression, statistic


def raw(*values: float) -> list[SimpleNamespace]:
    return [SimpleNamespace(value=v) for v in values]


def statistic_set(count: float, total: float, low: float, high: float) -> SimpleNamespace:
    return SimpleNamespace(sample_count=count, sum=total, min=low, max=high)


@pytest.mark.parametrize(
    ("stat", "expected"),
    [("SampleCount", 7.0), ("Sum", 1 + 9 + 20.0), ("Average", 30 / 7), ("Minimum", 0.5), ("Maximum", 9.0)],
)
def test_statistics_of_raw_values_and_statistic_sets_together(stat, expected):
    datums = [*raw(1.0, 9.0), statistic_set(count=5, total=20.0, low=0.5, high=8.0)]
    assert statistic(stat, datums) == pytest.approx(expected)


def test_percentiles_are_of_the_raw_values():
    values = raw(*[float(v) for v in range(100, 0, -1)])  # 1..100, in no order
    assert [statistic(p, values) for p in ("p50", "p90", "p99", "p100")] == [50.0, 90.0, 99.0, 100.0]
    assert statistic("p0", values) == 1.0
    assert statistic("p99.9", raw(*[float(v) for v in range(1, 1001)])) == 999.0


def test_a_period_without_data_or_a_percentile_of_statistic_sets_has_no_value():
    assert statistic("Sum", []) is None
    assert statistic("p99", [statistic_set(count=3, total=3.0, low=1.0, high=1.0)]) is None
    assert statistic("Average", [statistic_set(count=0, total=0.0, low=0.0, high=0.0)]) is None


def test_metric_math_arithmetic_and_its_missing_points():
    values = {"errors": 5.0, "requests": 200.0, "none": None, "zero": 0.0}
    assert evaluate_expression("errors / requests * 100", values) == 2.5
    assert evaluate_expression("requests - errors + 1", values) == 196.0
    assert evaluate_expression("-errors", values) == -5.0
    assert evaluate_expression("errors / none", values) is None
    assert evaluate_expression("none - errors", values) is None
    assert evaluate_expression("-none", values) is None
    assert evaluate_expression("errors / zero", values) is None  # dropped, as CloudWatch drops it
    assert evaluate_expression("FILL(none, 0) + errors", values) == 5.0
    assert evaluate_expression("FILL(errors, 0)", values) == 5.0


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("errors / other", "unknown id 'other'"),
        ("SUM(METRICS())", "cannot evaluate"),
        ("errors ** 2", "cannot"),
    ],
)
def test_an_expression_the_emulator_cannot_evaluate_is_named(expression, named):
    with pytest.raises(
        ValueError, match=re.escape(f"Metrics: expression {expression!r} uses ") + f".*{named}"
    ):
        evaluate_expression(expression, {"errors": 1.0})


def alarm(operator="GreaterThanThreshold", threshold=10.0, periods=5, to_alarm=3, missing=None):
    return SimpleNamespace(
        comparison_operator=operator,
        threshold=threshold,
        evaluation_periods=periods,
        datapoints_to_alarm=to_alarm,
        treat_missing_data=missing,
    )


def points(*values: float | None) -> list[tuple[float, float | None]]:
    """Newest first, one a minute, as the alarm's periods are given."""
    return [(1_700_000_000 - 60 * i, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("operator", "at_threshold", "below", "above"),
    [
        ("GreaterThanThreshold", "OK", "OK", "ALARM"),
        ("GreaterThanOrEqualToThreshold", "ALARM", "OK", "ALARM"),
        ("LessThanThreshold", "OK", "ALARM", "OK"),
        ("LessThanOrEqualToThreshold", "ALARM", "ALARM", "OK"),
    ],
)
def test_each_comparison_at_below_and_above_its_threshold(operator, at_threshold, below, above):
    judged = alarm(operator, threshold=10.0, periods=1, to_alarm=1)
    assert [decide(judged, points(v))[0] for v in (10.0, 9.0, 11.0)] == [at_threshold, below, above]


def test_m_of_n_needs_m_breaching_points_and_says_so_in_aws_words():
    judged = alarm(threshold=10.0, periods=5, to_alarm=3)
    state, reason = decide(judged, points(20.0, 1.0, 20.0, 1.0, 20.0))
    assert state == "ALARM"
    assert reason == (
        "Threshold Crossed: 3 out of the last 5 datapoints [20.0 (14/11/23 22:13:20), 1.0 (14/11/23 22:12:20), "
        "20.0 (14/11/23 22:11:20), 1.0 (14/11/23 22:10:20), 20.0 (14/11/23 22:09:20)] were greater than the "
        "threshold (10.0) (minimum 3 datapoints for OK -> ALARM transition)."
    )
    state, reason = decide(judged, points(20.0, 1.0, 20.0, 1.0, 1.0))
    assert state == "OK" and reason.startswith("Threshold Crossed: 2 out of the last 5 datapoints [")
    assert "were not greater than the threshold" in reason
    # Without DatapointsToAlarm, every evaluated period must breach.
    assert decide(alarm(periods=2, to_alarm=None), points(20.0, 1.0))[0] == "OK"
    assert decide(alarm(periods=2, to_alarm=None), points(20.0, 20.0))[0] == "ALARM"


@pytest.mark.parametrize(
    ("treatment", "expected"),
    [
        (None, "INSUFFICIENT_DATA"),
        ("missing", "INSUFFICIENT_DATA"),
        ("ignore", None),
        ("breaching", "ALARM"),
        ("notBreaching", "OK"),
    ],
)
def test_all_points_missing_is_treated_as_the_alarm_says(treatment, expected):
    outcome = decide(alarm(periods=3, to_alarm=2, missing=treatment), points(None, None, None))
    assert (outcome and outcome[0]) == expected
    if expected == "INSUFFICIENT_DATA":
        assert outcome[1] == "Insufficient Data: 3 datapoints were unknown."


@pytest.mark.parametrize(
    ("treatment", "expected", "judged"),
    [
        ("missing", "OK", "1 out of the last 1 datapoints"),
        ("breaching", "ALARM", "3 out of the last 3 datapoints"),
        ("notBreaching", "OK", "1 out of the last 3 datapoints"),
    ],
)
def test_some_points_missing(treatment, expected, judged):
    state, reason = decide(alarm(periods=3, to_alarm=2, missing=treatment), points(None, 20.0, None))
    assert state == expected
    assert reason.startswith(f"Threshold Crossed: {judged} [20.0 (")
