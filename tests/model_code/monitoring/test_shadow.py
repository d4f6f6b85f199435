"""The shadow comparison on small in-memory captures: pairing, agreement, difference, AUCs."""

from __future__ import annotations

import pandas as pd
import pytest

from model_code.monitoring import shadow

TIME = pd.Timestamp("2026-02-01T10:00:00Z")


def records(probabilities: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": list(probabilities),
            "time": [TIME] * len(probabilities),
            "probability": list(probabilities.values()),
        }
    )


def labels(values: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"id": list(values), "label": list(values.values())})


def test_only_requests_both_variants_answered_are_compared(churn_schema):
    production = records({"a": 0.9, "b": 0.2, "c": 0.6, "only-prod": 0.5})
    challenger = records({"a": 0.8, "b": 0.7, "c": 0.6, "only-shadow": 0.1})
    report = shadow.compare(production, challenger, labels({}), churn_schema)
    assert report["compared"] == 3
    assert report["agreement_rate"] == pytest.approx(2 / 3)  # b flips class
    assert report["mean_abs_probability_difference"] == pytest.approx((0.1 + 0.5 + 0.0) / 3)
    assert report["challenger_auc"] is None and report["labelled"] == 0


def test_both_aucs_are_on_the_same_labelled_requests(churn_schema):
    production = records({"a": 0.9, "b": 0.2, "c": 0.6, "d": 0.4})
    challenger = records({"a": 0.3, "b": 0.7, "c": 0.6, "d": 0.4})
    truth = labels({"a": 1, "b": 0, "c": 1, "d": 0, "not-served": 1})
    report = shadow.compare(production, challenger, truth, churn_schema)
    assert report["labelled"] == 4
    assert report["production_auc"] == 1.0
    assert report["challenger_auc"] == pytest.approx(0.25)


def test_nothing_paired_publishes_no_figure(churn_schema):
    report = shadow.compare(records({"a": 0.5}), records({"b": 0.5}), labels({"a": 1}), churn_schema)
    assert report["compared"] == 0
    data = shadow.to_metrics(report, "customer-churn", "challenger")
    assert [(d["MetricName"], d["Value"]) for d in data] == [
        ("ShadowComparedCount", 0),
        ("ShadowLabelledCount", 0),
    ]


def test_the_production_variants_own_run_compares_nothing(tmp_path, churn_schema):
    from model_code.contract import schema as schema_mod

    report_dir = tmp_path / "report"
    code = shadow.main(["--schema", str(schema_mod.EXAMPLE_SCHEMA), "--variant", "champion",
                        "--report-dir", str(report_dir)])  # fmt: skip
    assert code == 0
    assert (report_dir / "shadow.json").read_text().count('"published": []') == 1
