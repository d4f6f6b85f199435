"""Model-quality metrics and their CloudWatch form, shared by evaluation and monitoring.

Evaluation (before registration) and the quality monitor (after deployment, on captured
predictions joined with ground truth) compute the same numbers with the same function, so
a quality alarm threshold means what the registration gate meant.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

# One CloudWatch namespace for everything the platform publishes; dimensions tell apart
# the model (schema name), the stack, the feature and the endpoint variant.
NAMESPACE = "MLOps"
# Every pipeline job finds its stack here (set in the definition's Environment): stacks that
# share an account publish apart, so staging's drift never fires prod's alarm.
STACK_ENV = "MLOPS_STACK"
# A training run that reaches its training step publishes 1 here, by PipelineName (one per stack)
# and TriggerReason: "did it retrain, and why" on the dashboard (model_code.training.train).
RETRAINING_STARTED = "RetrainingStarted"
PIPELINE_NAME_ENV = "MLOPS_PIPELINE_NAME"


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> tuple[float, list]:
    """ECE over equal-width probability bins, and the reliability table behind it."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(proba, edges[1:-1]), 0, n_bins - 1)
    table, ece = [], 0.0
    for b in range(n_bins):
        mask = which == b
        if not mask.any():
            continue
        mean_p, rate = float(proba[mask].mean()), float(y_true[mask].mean())
        ece += mask.mean() * abs(mean_p - rate)
        table.append(
            {
                "bin": [float(edges[b]), float(edges[b + 1])],
                "count": int(mask.sum()),
                "mean_probability": mean_p,
                "positive_rate": rate,
            }
        )
    return float(ece), table


def classification_metrics(y_true, proba, threshold: float = 0.5) -> dict[str, Any]:
    """ROC AUC, PR AUC, F1, precision, recall, log loss, Brier score and calibration error.

    ``y_true`` is 1 for the positive class, ``proba`` the positive-class probability. With
    a single class present, the ranking metrics are undefined and reported as None.
    """
    # Here, not at import: the Pulumi program imports this module for NAMESPACE alone, and
    # scikit-learn would add 1.4 s to every deploy.
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y_true = np.asarray(y_true, dtype=int)
    proba = np.clip(np.asarray(proba, dtype="float64"), 0.0, 1.0)
    if len(y_true) == 0:
        raise ValueError("metrics: no labelled rows to score")
    predicted = (proba >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    ece, reliability = expected_calibration_error(y_true, proba)
    return {
        "auc": float(roc_auc_score(y_true, proba)) if both else None,
        "pr_auc": float(average_precision_score(y_true, proba)) if both else None,
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "accuracy": float((predicted == y_true).mean()),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, proba)),
        "calibration_error": ece,
        "reliability": reliability,
        "n": len(y_true),
        "positive_rate": float(y_true.mean()),
        "threshold": threshold,
    }


def metric_datum(name: str, value: float, dimensions: dict[str, str], unit: str = "None") -> dict[str, Any]:
    """One CloudWatch ``MetricData`` entry as PutMetricData takes it."""
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": str(v)} for k, v in dimensions.items()],
        "Value": float(value),
        "Unit": unit,
    }


def with_dimensions(metric_data: list[dict[str, Any]], extra: Mapping[str, str]) -> list[dict[str, Any]]:
    """``metric_data`` with ``extra`` dimensions set on every datum (replacing same-named ones)."""
    out = []
    for datum in metric_data:
        kept = [d for d in datum.get("Dimensions", []) if d["Name"] not in extra]
        added = [{"Name": k, "Value": str(v)} for k, v in extra.items()]
        out.append({**datum, "Dimensions": kept + added})
    return out


def stack_dimension() -> dict[str, str]:
    """``{"Stack": <stack>}`` from the job's environment; empty outside a stack's pipeline."""
    stack = os.environ.get(STACK_ENV, "").strip()
    return {"Stack": stack} if stack else {}
