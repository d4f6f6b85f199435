"""The quality monitor: joins predictions with ground truth, accounts for every row, shards exactly."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from mlops.cli import main as mlops
from model_code.contract import rules, synthetic
from model_code.monitoring import quality
from model_code.training.train import fit_model

PREDICTION_COUNTS = (
    "invalid_predictions",
    "predictions_outside_window",
    "duplicate_predictions",
    "predictions_without_label",
    "matched",
)
LABEL_COUNTS = (
    "empty_labels",
    "invalid_labels",
    "duplicate_labels",
    "labels_outside_window",
    "labels_without_prediction",
    "matched",
)


def _frames(
    labels: np.ndarray, proba: np.ndarray, start: str = "2026-01-01"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Captured predictions an hour apart, and their ground truth, for customers C0, C1, ..."""
    ids = [f"C{i}" for i in range(len(labels))]
    times = pd.date_range(start, periods=len(labels), freq="h", tz="UTC")
    predictions = pd.DataFrame({"customer_id": ids, "probability": proba, "time": times})
    return predictions, pd.DataFrame({"customer_id": ids, "label": labels})


@pytest.fixture(scope="module")
def scored() -> tuple[pd.DataFrame, pd.DataFrame]:
    """2,000 noisy but informative predictions."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    return _frames(labels, np.clip(0.3 * labels + rng.uniform(0, 0.7, 2000), 0, 1))


def test_perfect_predictions_score_auc_one(churn_schema):
    labels = np.array([0, 1] * 50)
    report = quality.evaluate_window(*_frames(labels, labels * 0.8 + 0.1), churn_schema)
    assert report.metrics["auc"] == 1.0
    assert report.metrics["accuracy"] == 1.0


def test_unmatched_ids_are_counted_on_both_sides(churn_schema):
    predictions, labels = _frames(np.array([0, 1, 0, 1]), np.array([0.2, 0.9, 0.4, 0.6]))
    labels = pd.concat([labels.iloc[1:], pd.DataFrame({"customer_id": ["X1", "X2"], "label": [1, 0]})])
    counts = quality.evaluate_window(predictions, labels, churn_schema).counts
    assert counts["matched"] == 3
    assert counts["predictions_without_label"] == 1
    assert counts["labels_without_prediction"] == 2


def test_window_keeps_only_predictions_made_inside_it(scored, churn_schema):
    report = quality.evaluate_window(*scored, churn_schema, start="2026-01-02", end="2026-01-03")
    assert report.counts["matched"] == 24
    assert report.counts["predictions_outside_window"] == 2000 - 24
    assert report.counts["labels_outside_window"] == 2000 - 24


def test_a_window_without_a_time_column_is_refused(scored, churn_schema):
    predictions, labels = scored
    with pytest.raises(ValueError, match="a window needs a 'time' column"):
        quality.evaluate_window(predictions.drop(columns="time"), labels, churn_schema, end="2026-01-02")


def test_latest_prediction_for_an_id_is_the_one_scored(churn_schema):
    predictions, labels = _frames(np.array([1]), np.array([0.9]))
    earlier = predictions.assign(probability=0.1, time=predictions["time"] - pd.Timedelta("1D"))
    report = quality.evaluate_window(pd.concat([predictions, earlier]), labels, churn_schema)
    assert report.counts["duplicate_predictions"] == 1
    assert report.metrics["recall"] == 1.0


def test_every_row_is_accounted_for(scored, churn_schema):
    predictions, labels = scored
    predictions = pd.concat([predictions, predictions.iloc[1990:]])  # ten customers scored twice
    predictions.loc[7, "probability"] = np.nan
    labels = pd.concat([labels, labels.iloc[:3]]).astype({"label": "Int64"})  # three labelled twice
    labels.loc[9, "label"] = pd.NA
    counts = quality.evaluate_window(predictions, labels, churn_schema, start="2026-01-03").counts
    assert (counts["invalid_predictions"], counts["duplicate_predictions"], counts["empty_labels"]) == (
        1,
        10,
        1,
    )
    assert counts["duplicate_labels"] == 3
    assert sum(counts[k] for k in PREDICTION_COUNTS) == counts["predictions"] == 2010
    assert sum(counts[k] for k in LABEL_COUNTS) == counts["labels"] == 2003


def test_merged_shards_give_the_quality_of_the_whole(scored, churn_schema):
    predictions, labels = scored
    shards = [
        quality.evaluate_window(predictions.iloc[i::3], labels.iloc[i::3], churn_schema, end="2026-02-01")
        for i in range(3)
    ]
    merged = quality.merge(shards)
    whole = quality.evaluate_window(predictions, labels, churn_schema, end="2026-02-01")
    assert merged.counts == whole.counts
    for key in ("f1", "precision", "recall", "accuracy", "log_loss", "brier"):
        assert_allclose(merged.metrics[key], whole.metrics[key], err_msg=key)
    assert merged.metrics["auc"] == pytest.approx(whole.metrics["auc"], abs=2e-3)
    assert merged.metrics["pr_auc"] == pytest.approx(whole.metrics["pr_auc"], abs=5e-3)


def test_summary_survives_a_json_round_trip(scored, churn_schema):
    summary = quality.evaluate_window(*scored, churn_schema).summary
    restored = quality.QualitySummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert restored.metrics() == summary.metrics()


def test_concept_drift_lowers_auc_of_a_model_trained_before_it(churn_frame, churn_schema):
    model = fit_model(churn_frame, churn_schema, model_params={"n_estimators": 50}).pipeline

    def auc(concept_drift: float) -> float:
        frame = rules.coerce(synthetic.generate(5000, seed=11, concept_drift=concept_drift), churn_schema)
        predictions = frame.assign(probability=model.predict_proba(frame)[:, 1])
        labels = frame.rename(columns={"churned": "label"})
        return quality.evaluate_window(predictions, labels, churn_schema).metrics["auc"]

    assert auc(1.0) < auc(0.0) - 0.05


def test_metrics_name_the_model_and_count_the_labelled_rows(scored, churn_schema):
    data = quality.evaluate_window(*scored, churn_schema).to_metrics(churn_schema.name)
    names = [d["MetricName"] for d in data]
    assert names == [
        "AUC", "F1", "Precision", "Recall", "Accuracy", "LogLoss",
        "LabelledCount", "InvalidPredictionCount", "UnmatchedLabelCount", "InvalidLabelCount",
    ]  # fmt: skip
    assert all(d["Dimensions"] == [{"Name": "Model", "Value": "customer-churn"}] for d in data)
    counts = {d["MetricName"]: d["Value"] for d in data[-4:]}
    report = quality.evaluate_window(*scored, churn_schema)
    assert counts == {
        "LabelledCount": 2000,
        "InvalidPredictionCount": report.counts["invalid_predictions"],
        "UnmatchedLabelCount": report.counts["labels_without_prediction"],
        "InvalidLabelCount": 0,
    }


def test_invalid_predictions_and_unmatched_labels_are_published(scored, churn_schema):
    predictions, labels = scored
    broken = predictions.copy()
    broken.loc[broken.index[:3], "probability"] = 1.5  # outside [0, 1]
    extra = pd.DataFrame({"customer_id": ["nobody-1", "nobody-2"], "label": [1, 0]})
    data = quality.evaluate_window(broken, pd.concat([labels, extra]), churn_schema).to_metrics()
    counts = {d["MetricName"]: d["Value"] for d in data}
    assert counts["InvalidPredictionCount"] == 3
    # The two strangers, and the three customers whose only prediction was invalid.
    assert counts["UnmatchedLabelCount"] == 2 + 3


def test_no_labelled_rows_publishes_only_the_count(scored, churn_schema):
    report = quality.evaluate_window(*scored, churn_schema, start="2030-01-01")
    assert report.metrics == {}
    assert [(d["MetricName"], d["Value"]) for d in report.to_metrics()] == [
        ("LabelledCount", 0.0),
        ("InvalidPredictionCount", 0.0),
        ("UnmatchedLabelCount", 0.0),
        ("InvalidLabelCount", 0.0),
    ]


def test_quality_command_prints_a_table(scored, tmp_path, capsys):
    predictions, labels = scored
    predictions.to_csv(tmp_path / "p.csv", index=False)
    labels.to_csv(tmp_path / "l.csv", index=False)
    args = ["--predictions", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "l.csv")]
    assert mlops(["quality", *args, "--start", "2026-01-02", "--json", str(tmp_path / "q.json")]) == 0
    out = capsys.readouterr().out
    assert "auc" in out
    assert "matched" in out
    assert json.loads((tmp_path / "q.json").read_text())["counts"]["matched"] == 2000 - 24


def test_labels_that_are_neither_class_are_counted_as_invalid_not_as_negatives(scored, churn_schema):
    predictions, labels = scored
    clean = quality.evaluate_window(predictions, labels, churn_schema)
    garbage = labels.astype({"label": object})
    garbage.loc[:99, "label"] = "garbage"  # 100 labels that are no class
    garbage.loc[100, "label"] = f"{labels.loc[100, 'label']}.0"  # its class, spelt otherwise
    report = quality.evaluate_window(predictions, garbage, churn_schema)
    assert report.counts["invalid_labels"] == 100
    assert sum(report.counts[k] for k in LABEL_COUNTS) == report.counts["labels"]
    assert report.matched == clean.matched - 100
    scored_alike = quality.evaluate_window(predictions.iloc[100:], labels.iloc[100:], churn_schema)
    assert report.metrics["auc"] == pytest.approx(scored_alike.metrics["auc"])
    assert ("InvalidLabelCount", 100) in [(d["MetricName"], d["Value"]) for d in report.to_metrics()]


def test_mlops_quality_accounts_for_every_line_of_hostile_files(scored, churn_schema, tmp_path):
    predictions, labels = scored
    predictions.head(50).to_csv(tmp_path / "p.csv", index=False)
    text = labels.head(50).to_csv(index=False).replace("\n", "\r\n", 3).split("\n")
    text[5] += ",extra"  # ragged
    text[6] = text[6].split(",")[0] + ",garbage"
    (tmp_path / "l.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(text).encode())
    out = tmp_path / "q.json"
    assert quality.main(["--predictions", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "l.csv"),
                         "--json", str(out)]) == 0  # fmt: skip
    counts = json.loads(out.read_text())["counts"]
    assert counts["malformed_label_lines"] == 1 and counts["invalid_labels"] == 1
    assert counts["labels"] + counts["malformed_label_lines"] == 50
    assert sum(counts[k] for k in LABEL_COUNTS) == counts["labels"]


def test_metrics_carry_the_model_name_the_caller_gives_and_counts_in_count_units(scored, churn_schema):
    """The monitor publishes under the deployed model's name, which need not be the schema's."""
    data = quality.evaluate_window(*scored, churn_schema).to_metrics("churn-endpoint-v2")
    assert {d["Dimensions"][0]["Value"] for d in data} == {"churn-endpoint-v2"}
    units = {d["MetricName"]: d["Unit"] for d in data}
    assert [units[n] for n in quality.COUNT_METRIC_NAMES.values()] == ["Count"] * 4
    assert units["AUC"] == "None"


def _exact_and_merged(churn_schema, labels, proba) -> list[dict]:
    """One window's metrics as the monitor reports them: exact, and merged from its shard's summary."""
    report = quality.evaluate_window(*_frames(np.asarray(labels), np.asarray(proba)), churn_schema)
    return [report.metrics, quality.merge([report]).metrics]


def test_a_model_that_flags_no_one_scores_zero_precision_recall_and_f1(churn_schema):
    for m in _exact_and_merged(churn_schema, [1, 0, 1, 0, 0], [0.1] * 5):
        assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
        assert (m["n"], m["positive_rate"], m["threshold"]) == (5, 0.4, quality.DEFAULT_THRESHOLD)
        assert m["accuracy"] == pytest.approx(0.6)


def test_one_class_only_has_no_auc_but_the_other_metrics(churn_schema):
    for m in _exact_and_merged(churn_schema, [1] * 4, [0.9] * 4):
        assert m["auc"] is None and m["pr_auc"] is None
        assert (m["precision"], m["recall"], m["positive_rate"]) == (1.0, 1.0, 1.0)
    report = quality.evaluate_window(*_frames(np.ones(4, dtype=int), np.full(4, 0.9)), churn_schema)
    assert [d["MetricName"] for d in report.to_metrics()][:4] == ["F1", "Precision", "Recall", "Accuracy"]


def test_a_window_of_negatives_all_called_negative_scores_zero_and_does_not_fail(churn_schema):
    for m in _exact_and_merged(churn_schema, [0, 0, 0], [0.1, 0.2, 0.3]):
        assert (m["precision"], m["recall"], m["f1"], m["accuracy"]) == (0.0, 0.0, 0.0, 1.0)


def test_a_single_labelled_row_is_scored(churn_schema):
    for m in _exact_and_merged(churn_schema, [1], [0.8]):
        assert m["n"] == 1 and m["accuracy"] == 1.0


def test_pr_auc_of_a_perfect_ranking_is_one_whatever_empty_bins_lie_between(churn_schema):
    labels = np.array([1, 1, 0, 0])
    merged = quality.merge(
        [quality.evaluate_window(*_frames(labels, np.array([0.95, 0.9, 0.2, 0.05])), churn_schema)]
    )
    assert merged.metrics["pr_auc"] == pytest.approx(1.0)
    assert merged.metrics["auc"] == pytest.approx(1.0)


def test_merged_windows_report_the_span_the_model_and_binned_metrics(churn_schema):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 48)
    predictions, truth = _frames(labels, rng.uniform(0, 1, 48))
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    reports = [
        quality.evaluate_window(predictions, truth, churn_schema, start=a, end=b)
        for a, b in itertools.pairwise(days)
    ]
    merged = json.loads(json.dumps(quality.merge(reports).to_dict()))
    assert merged["model"] == churn_schema.name == reports[1].model
    assert merged["window"] == {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-03T00:00:00+00:00"}
    assert merged["binned"] is True
    assert merged["counts"]["matched"] == 48
    assert merged["metrics"]["n"] == 48
    assert quality.QualitySummary.from_dict(merged["summary"]).metrics() == merged["metrics"]
    # An open end on any window leaves the merged window open there.
    open_ended = quality.merge(
        [*reports, quality.evaluate_window(predictions, truth, churn_schema, start=days[2])]
    )
    assert (open_ended.start, open_ended.end) == (pd.Timestamp(days[0], tz="UTC"), None)


def test_merging_nothing_or_unlike_summaries_is_refused_saying_why(scored, churn_schema):
    with pytest.raises(ValueError) as refused:
        quality.merge([])
    assert str(refused.value) == "merge: no quality reports given"
    summary = quality.evaluate_window(*scored, churn_schema).summary
    other = quality.QualitySummary.from_scores(np.array([1]), np.array([0.5]), threshold=0.3)
    with pytest.raises(ValueError) as refused:
        summary + other
    assert str(refused.value) == "cannot merge quality summaries with different thresholds or bins"


def test_counts_only_one_shard_has_are_kept_when_merged():
    a = quality.QualitySummary.from_scores(
        np.array([1]), np.array([0.9]), counts={"matched": 1, "invalid_labels": 2}
    )
    b = quality.QualitySummary.from_scores(
        np.array([0]), np.array([0.1]), counts={"matched": 1, "empty_labels": 3}
    )
    assert (a + b).counts == {"matched": 2, "invalid_labels": 2, "empty_labels": 3}


def test_the_quality_command_names_the_options_it_lacks(capsys):
    with pytest.raises(SystemExit) as exit_:
        quality.main([])
    assert exit_.value.code == 2
    assert "mlops quality: error: the following arguments are required: --predictions, --labels" in (
        capsys.readouterr().err
    )


def test_the_quality_command_reports_an_unreadable_file_as_a_usage_error(scored, tmp_path, capsys):
    scored[0].to_csv(tmp_path / "p.csv", index=False)
    missing = tmp_path / "no-labels.csv"
    with pytest.raises(SystemExit) as exit_:
        quality.main(["--predictions", str(tmp_path / "p.csv"), "--labels", str(missing)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mlops quality") and str(missing) in err


def test_the_quality_command_scores_only_its_window_and_says_so_in_the_json(scored, tmp_path):
    predictions, labels = scored
    predictions.to_csv(tmp_path / "p.csv", index=False)
    labels.to_csv(tmp_path / "l.csv", index=False)
    out = tmp_path / "q.json"
    args = ["--predictions", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "l.csv"), "--json", str(out)]
    assert quality.main([*args, "--start", "2026-01-02", "--end", "2026-01-03"]) == 0
    report = json.loads(out.read_text())
    assert report["window"] == {"start": "2026-01-02T00:00:00+00:00", "end": "2026-01-03T00:00:00+00:00"}
    assert report["counts"]["matched"] == 24  # predictions are an hour apart
    assert report["counts"]["malformed_prediction_lines"] == report["counts"]["malformed_label_lines"] == 0


def test_summaries_without_join_counts_publish_zero_counts():
    """A summary made from scores alone (``from_scores`` without ``counts``) carries no join
    accounting: its merged report still publishes every count metric, as zero."""
    summary = quality.QualitySummary.from_scores(np.array([1, 0]), np.array([0.9, 0.2]))
    report = quality.QualityReport("churn", None, None, {}, summary.metrics(), summary)
    counts = {
        d["MetricName"]: d["Value"] for d in quality.merge([report]).to_metrics() if d["Unit"] == "Count"
    }
    assert counts == dict.fromkeys(quality.COUNT_METRIC_NAMES.values(), 0.0)
