"""Model quality from feedback: captured predictions joined with ground truth, over a window.

Predictions (``id``, ``probability`` of the positive class, ``time``; a ``prediction``
column may be present and is not used) are joined by id with labels (``id``, ``label``,
optional ``time``), labels read by the data contract (``contract.rules``: only the schema's
two classes count, ``1.0`` being the class ``1``), and scored with
:func:`model_code.metrics.classification_metrics`, the function the registration gate
uses, so a quality alarm threshold means what the gate meant.

Nothing is lost silently: every prediction row ends up in exactly one of ``invalid``
(probability missing or outside [0, 1], or no time when a window is set), ``outside
window``, ``duplicate`` (an older prediction for the same id), ``without label`` or
``matched``; every label row in one of ``empty``, ``invalid`` (neither of the schema's
classes, e.g. ``garbage``: counted and published as ``InvalidLabelCount``, never read as a
negative), ``duplicate``, ``outside window`` (its id was predicted, but not in the window),
``without prediction`` or ``matched``. ``mlops quality`` reads its CSV files line by line
(``contract.table``) and counts the malformed lines of each file apart.

For sharded evaluation each report carries a :class:`QualitySummary`: confusion counts at
the threshold, sums of log loss and Brier terms, and per-class histograms of the scores in
``n_bins`` (100) equal-width bins. Summaries add up (``a + b``); from the total, precision,
recall, F1, accuracy, log loss and Brier score are exact, while ROC AUC and PR AUC come
from the binned scores (scores sharing a bin count as ties; off by ~1/n_bins at most in
practice, usually far less). Shard by id, so a prediction and its label land together.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_code import metrics
from model_code.contract import rules, table
from model_code.contract import schema as schema_mod
from model_code.contract.schema import Schema

ID_COLUMN = "id"
PROBABILITY_COLUMN = "probability"
LABEL_COLUMN = "label"
TIME_COLUMN = "time"
DEFAULT_THRESHOLD = 0.5
DEFAULT_SCORE_BINS = 100
# CloudWatch metric name for each metric this monitor publishes.
METRIC_NAMES = {
    "auc": "AUC",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "accuracy": "Accuracy",
    "log_loss": "LogLoss",
}
# CloudWatch metric name for each join count published: what was scored, and what could not be.
COUNT_METRIC_NAMES = {
    "matched": "LabelledCount",
    "invalid_predictions": "InvalidPredictionCount",
    "labels_without_prediction": "UnmatchedLabelCount",
    "invalid_labels": "InvalidLabelCount",
}


@dataclass(frozen=True, eq=False)
class QualitySummary:
    """What quality metrics need, in a form that adds up across shards."""

    threshold: float
    positives: np.ndarray  # score histogram of positive-class rows, equal-width bins on [0, 1]
    negatives: np.ndarray
    confusion: dict[str, int]  # tp, fp, tn, fn at the threshold
    log_loss_sum: float
    brier_sum: float
    counts: dict[str, int] = field(default_factory=dict)  # the join's accounting

    @classmethod
    def from_scores(
        cls,
        y_true: np.ndarray,
        proba: np.ndarray,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        n_bins: int = DEFAULT_SCORE_BINS,
        counts: dict[str, int] | None = None,
    ) -> QualitySummary:
        y = np.asarray(y_true, dtype=bool)
        p = np.asarray(proba, dtype="float64")
        which = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
        predicted = p >= threshold
        # Clip as sklearn's log_loss does, so the merged log loss equals the exact one.
        eps = np.finfo("float64").eps
        clipped = np.clip(p, eps, 1 - eps)
        return cls(
            threshold=threshold,
            positives=np.bincount(which[y], minlength=n_bins),
            negatives=np.bincount(which[~y], minlength=n_bins),
            confusion={
                "tp": int(np.sum(predicted & y)),
                "fp": int(np.sum(predicted & ~y)),
                "tn": int(np.sum(~predicted & ~y)),
                "fn": int(np.sum(~predicted & y)),
            },
            log_loss_sum=float(-np.sum(np.where(y, np.log(clipped), np.log1p(-clipped)))),
            brier_sum=float(np.sum((p - y) ** 2)),
            counts=dict(counts or {}),
        )

    def __add__(self, other: QualitySummary) -> QualitySummary:
        if (other.threshold, len(other.positives)) != (self.threshold, len(self.positives)):
            raise ValueError("cannot merge quality summaries with different thresholds or bins")
        return QualitySummary(
            threshold=self.threshold,
            positives=self.positives + other.positives,
            negatives=self.negatives + other.negatives,
            confusion={k: v + other.confusion[k] for k, v in self.confusion.items()},
            log_loss_sum=self.log_loss_sum + other.log_loss_sum,
            brier_sum=self.brier_sum + other.brier_sum,
            counts={
                k: self.counts.get(k, 0) + other.counts.get(k, 0) for k in {**self.counts, **other.counts}
            },
        )

    def metrics(self) -> dict[str, Any]:
        """Metrics named as in ``classification_metrics``; AUCs from the binned scores."""
        tp, fp, tn, fn = (self.confusion[k] for k in ("tp", "fp", "tn", "fn"))
        n = tp + fp + tn + fn
        if n == 0:
            return {}
        n_pos, n_neg = tp + fn, fp + tn
        auc = pr_auc = None
        if n_pos and n_neg:
            # Walk thresholds from the top bin down; a bin's own pairs count as ties (half).
            pos, neg = self.positives[::-1], self.negatives[::-1]
            pos_above = np.cumsum(pos) - pos
            auc = float(np.sum(neg * (pos_above + 0.5 * pos)) / (n_pos * n_neg))
            hits, seen = np.cumsum(pos), np.cumsum(pos + neg)
            keep = pos > 0
            pr_auc = float(np.sum(pos[keep] / n_pos * hits[keep] / seen[keep]))
        return {
            "auc": auc,
            "pr_auc": pr_auc,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
            "precision": tp / (tp + fp) if tp else 0.0,
            "recall": tp / n_pos if tp else 0.0,
            "accuracy": (tp + tn) / n,
            "log_loss": self.log_loss_sum / n,
            "brier": self.brier_sum / n,
            "n": n,
            "positive_rate": n_pos / n,
            "threshold": self.threshold,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "positives": self.positives.tolist(),
            "negatives": self.negatives.tolist(),
            "confusion": dict(self.confusion),
            "log_loss_sum": self.log_loss_sum,
            "brier_sum": self.brier_sum,
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualitySummary:
        arrays = {k: np.asarray(data[k], dtype=np.int64) for k in ("positives", "negatives")}
        return cls(**{**data, **arrays})


@dataclass(frozen=True, eq=False)
class QualityReport:
    model: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    counts: dict[str, int]
    metrics: dict[str, Any]  # empty when no prediction had a label
    summary: QualitySummary
    binned: bool = False  # metrics from merged summaries: AUCs from binned scores

    @property
    def matched(self) -> int:
        """Predictions in the window that have ground truth: the rows the metrics score."""
        return self.counts["matched"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window": {"start": _iso(self.start), "end": _iso(self.end)},
            "counts": dict(self.counts),
            "metrics": self.metrics,
            "binned": self.binned,
            "summary": self.summary.to_dict(),
        }

    def to_metrics(self, model_name: str | None = None) -> list[dict[str, Any]]:
        """CloudWatch MetricData (namespace ``metrics.NAMESPACE``, dimension Model)."""
        dims = {"Model": model_name or self.model}
        data = [
            metrics.metric_datum(name, self.metrics[key], dims)
            for key, name in METRIC_NAMES.items()
            if self.metrics.get(key) is not None
        ]
        counts = [
            metrics.metric_datum(name, self.counts.get(key, 0), dims, "Count")
            for key, name in COUNT_METRIC_NAMES.items()
        ]
        return [*data, *counts]


def merge(reports: list[QualityReport]) -> QualityReport:
    """One report for the shards' rows together (or for consecutive windows)."""
    if not reports:
        raise ValueError("merge: no quality reports given")
    summary = reports[0].summary
    for r in reports[1:]:
        summary = summary + r.summary
    starts, ends = [r.start for r in reports], [r.end for r in reports]
    return QualityReport(
        model=reports[0].model,
        start=None if None in starts else min(starts),
        end=None if None in ends else max(ends),
        counts=summary.counts,
        metrics=summary.metrics(),
        summary=summary,
        binned=True,
    )


def evaluate_window(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    schema: Schema,
    *,
    start: Any = None,
    end: Any = None,
    id_column: str | None = None,
    label_column: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    n_bins: int = DEFAULT_SCORE_BINS,
) -> QualityReport:
    """Quality of the predictions made in ``[start, end)`` that have ground truth.

    ``id_column`` defaults to the schema's entity id, or ``id`` if the predictions lack it;
    ``label_column`` to ``label``, or the schema's target column if the labels lack it.
    Of several predictions (labels) for one id, the latest by time, else by row, counts.
    """
    id_col = id_column or (schema.entity_id if schema.entity_id in predictions.columns else ID_COLUMN)
    label_col = label_column or (LABEL_COLUMN if LABEL_COLUMN in labels.columns else schema.target.column)
    _require(predictions, [id_col, PROBABILITY_COLUMN], "predictions")
    _require(labels, [id_col, label_col], "labels")
    start, end = _timestamp(start), _timestamp(end)
    if (start is not None or end is not None) and TIME_COLUMN not in predictions.columns:
        raise ValueError(f"predictions: a window needs a {TIME_COLUMN!r} column")

    preds = pd.DataFrame(
        {
            "id": predictions[id_col].astype("string"),
            "proba": pd.to_numeric(predictions[PROBABILITY_COLUMN], errors="coerce"),
            "time": _times(predictions),
        }
    )
    valid = preds["proba"].between(0.0, 1.0)
    if start is not None or end is not None:
        valid &= preds["time"].notna()
    in_window = valid.copy()
    if start is not None:
        in_window &= preds["time"] >= start
    if end is not None:
        in_window &= preds["time"] < end
    windowed = _latest(preds[in_window])

    # Labels as the contract reads them: a schema class, or null (empty, or no class at all).
    typed, invalid, _ = rules.Rule.of_target(schema).check_column(labels[label_col])
    labs = pd.DataFrame({"id": labels[id_col].astype("string"), "label": typed, "time": _times(labels)})
    filled = labs[labs["label"].notna()]
    latest_labels = _latest(filled)
    joined = windowed.merge(latest_labels, on="id", suffixes=("", "_label"))
    predicted_ids = set(preds.loc[valid, "id"])
    unmatched = latest_labels[~latest_labels["id"].isin(windowed["id"])]
    counts = {
        "predictions": len(preds),
        "invalid_predictions": int((~valid).sum()),
        "predictions_outside_window": int((valid & ~in_window).sum()),
        "duplicate_predictions": int(in_window.sum()) - len(windowed),
        "predictions_without_label": len(windowed) - len(joined),
        "matched": len(joined),
        "labels": len(labs),
        "empty_labels": len(labs) - len(filled) - int(invalid.notna().sum()),
        "invalid_labels": int(invalid.notna().sum()),
        "duplicate_labels": len(filled) - len(latest_labels),
        "labels_outside_window": int(unmatched["id"].isin(predicted_ids).sum()),
        "labels_without_prediction": int((~unmatched["id"].isin(predicted_ids)).sum()),
    }
    y = schema.is_positive(joined["label"]).to_numpy(dtype=int)
    proba = joined["proba"].to_numpy(dtype="float64")
    summary = QualitySummary.from_scores(y, proba, threshold=threshold, n_bins=n_bins, counts=counts)
    scores = metrics.classification_metrics(y, proba, threshold) if len(joined) else {}
    return QualityReport(schema.name, start, end, counts, scores, summary)


def _require(frame: pd.DataFrame, columns: list[str], which: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{which}: missing columns {missing}; it has {list(frame.columns)}")


def _times(frame: pd.DataFrame) -> pd.Series:
    if TIME_COLUMN not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    return pd.to_datetime(frame[TIME_COLUMN], utc=True, errors="coerce", format="ISO8601")


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    # Stable sort: equal or missing times keep row order, so "latest" falls back to "last".
    ordered = frame.sort_values("time", kind="stable", na_position="first")
    return ordered.drop_duplicates("id", keep="last")


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat()


def print_report(report: QualityReport, sources: tuple[table.RawFile, ...] = ()) -> None:
    """The report as a terminal table, then each malformed line of ``sources`` with its reason
    (what ``mlops quality`` shows; the JSON is what machines read)."""
    from rich.console import Console
    from rich.table import Table

    shown = Table(title=f"Quality of {report.model}")
    shown.add_column("Metric", no_wrap=True)
    shown.add_column("Value", justify="right")
    for key in (*METRIC_NAMES, "pr_auc", "brier", "positive_rate"):
        value = report.metrics.get(key)
        shown.add_row(key, "n/a" if value is None else f"{value:.4f}")
    shown.add_section()
    for key, value in report.counts.items():
        shown.add_row(key.replace("_", " "), str(value))
    console = Console(width=max(Console().width, 100))
    console.print(f"predictions from {_iso(report.start) or 'the first'} to {_iso(report.end) or 'the last'}")
    console.print(shown)
    for raw in sources:
        for _, _, reason, _ in raw.rejected:
            console.print(f"{raw.path.name}: {reason}", markup=False)


def main(argv: list[str] | None = None) -> int:
    # Help text alone on its lines: `make mutation` leaves it be (pyproject's text_lines).
    parser = argparse.ArgumentParser(
        prog="mlops quality",
        description="Join captured predictions with ground truth and report quality.",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="CSV: id, probability, time",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="CSV: id, label[, time]",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        default=schema_mod.EXAMPLE_SCHEMA,
        help="schema YAML",
    )
    parser.add_argument(
        "--start",
        help="first prediction time to include (ISO-8601; UTC if no zone)",
    )
    parser.add_argument(
        "--end",
        help="prediction time to stop before (ISO-8601; UTC if no zone)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="also write the report as JSON to this file",
    )
    args = parser.parse_args(argv)
    try:
        schema = schema_mod.load(args.schema)
        predictions, labels = table.read_csv_lines(args.predictions), table.read_csv_lines(args.labels)
        report = evaluate_window(predictions.records, labels.records, schema, start=args.start, end=args.end)
        # A malformed line is no row of either table: counted apart, so every line is accounted for.
        report.counts.update(
            malformed_prediction_lines=len(predictions.rejected), malformed_label_lines=len(labels.rejected)
        )
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    print_report(report, (predictions, labels))
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0
