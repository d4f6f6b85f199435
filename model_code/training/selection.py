"""Model selection: stratified k-fold cross-validation over model types and a small grid each.

``mlops train --model-type auto`` (the default) scores every candidate below by its mean ROC
AUC over ``cv_folds`` stratified folds of the training rows (the whole pipeline, feature
selection included, is refitted inside each fold, so no fold sees its own validation rows)
and refits the best on all of them. A named model type is cross-validated too, as its one
candidate with the hyperparameters given, so every run records a cross-validated AUC even
without a validation channel.

The search (``search="grid"``), chosen to cover each family's main lever in few fits:

=================  ===============================================  ==========================
model type         candidates                                       why
=================  ===============================================  ==========================
logistic           c = 0.1, 1, 10                                   regularisation strength
gradient-boosting  (100 iterations, rate 0.1, depth 3),             shallow trees vs. deep
                   (100 iterations, rate 0.1, no depth limit)        ones (31 leaves at most)
random-forest      (100 trees, depth 8),                            bounded depth vs. grown
                   (100 trees, no depth limit, 5 rows a leaf)        trees with a leaf floor
=================  ===============================================  ==========================

``search="quick"`` keeps the first candidate of each type (three fits a fold), for tests and
quick experiments. Everything runs on one core (``n_jobs=1``).

The choice is the best mean AUC, with the one-standard-error rule (Breiman et al., 1984;
Hastie et al., *Elements of Statistical Learning*, 7.10): the first candidate, in the order
above (simplest first), whose mean AUC is within one standard error of the best one's
(its fold AUCs' standard deviation over the square root of the number of folds). A
difference smaller than that is fold noise, and the simpler model generalises at least as
well: on scikit-learn's breast-cancer data the plain best mean picked a random forest on one
split of five that lost 0.023 AUC to logistic regression on the held-out rows
(benchmarks/bench_model_selection.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from model_code.contract.schema import Schema
from model_code.training import features

AUTO = "auto"
MODEL_TYPES = (AUTO, *features.MODEL_TYPES)
SEARCHES = ("grid", "quick")
DEFAULT_CV_FOLDS = 5
GRID: dict[str, tuple[dict[str, Any], ...]] = {
    "logistic": ({"c": 0.1}, {"c": 1.0}, {"c": 10.0}),
    "gradient-boosting": (
        {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3},
        {"n_estimators": 100, "learning_rate": 0.1, "max_depth": None},
    ),
    "random-forest": (
        {"n_estimators": 100, "max_depth": 8},
        {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 5},
    ),
}


@dataclass(frozen=True)
class Candidate:
    """One model type with its hyperparameters, and its AUC on each validation fold."""

    model_type: str
    params: dict[str, Any]
    fold_aucs: tuple[float, ...]

    @property
    def cv_auc(self) -> float:
        return float(np.mean(self.fold_aucs))

    @property
    def cv_auc_std(self) -> float:
        return float(np.std(self.fold_aucs))

    @property
    def cv_auc_se(self) -> float:
        """The standard error of the mean fold AUC."""
        return self.cv_auc_std / float(np.sqrt(len(self.fold_aucs)))

    @property
    def name(self) -> str:
        """A short label, e.g. ``logistic c=0.1``, for run names and tables."""
        return " ".join([self.model_type, *(f"{k}={v}" for k, v in self.params.items())])

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "params": self.params,
            "cv_auc": self.cv_auc,
            "cv_auc_std": self.cv_auc_std,
            "fold_aucs": list(self.fold_aucs),
        }


@dataclass(frozen=True)
class Selection:
    """Every candidate's cross-validated AUC, and the best one."""

    candidates: tuple[Candidate, ...]
    cv_folds: int
    search: str

    @property
    def best_mean(self) -> Candidate:
        """The highest mean AUC (the first of equals)."""
        return max(self.candidates, key=lambda c: c.cv_auc)

    @property
    def best(self) -> Candidate:
        """The choice: the first candidate within one standard error of the best mean."""
        top = self.best_mean
        return next(c for c in self.candidates if c.cv_auc >= top.cv_auc - top.cv_auc_se)

    def to_dict(self) -> dict[str, Any]:
        """What metadata.json and features.json record of the choice."""
        return {
            "model_type": self.best.model_type,
            "params": self.best.params,
            "cv_auc": self.best.cv_auc,
            "cv_auc_std": self.best.cv_auc_std,
            "cv_folds": self.cv_folds,
            "search": self.search,
            "rule": "the simplest candidate within one standard error of the best mean AUC",
            "best_mean": {"model_type": self.best_mean.model_type, "params": self.best_mean.params},
            "candidates": [c.to_dict() for c in self.candidates],
        }


def candidates(model_type: str, params: dict[str, Any], search: str = "grid") -> list[tuple[str, dict]]:
    """The (model type, hyperparameters) pairs to cross-validate: the grid for ``auto``, else one."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model type: {model_type!r} is not one of {' | '.join(MODEL_TYPES)}")
    if search not in SEARCHES:
        raise ValueError(f"search: {search!r} is not one of {' | '.join(SEARCHES)}")
    if model_type != AUTO:
        relevant = {k: v for k, v in params.items() if k in _LEVERS[model_type]}
        return [(model_type, relevant)]
    keep = 1 if search == "quick" else None
    return [(t, dict(p)) for t, grid in GRID.items() for p in grid[:keep]]


# The hyperparameters each type reads; the others would only clutter its record.
_LEVERS = {
    "logistic": ("c",),
    "gradient-boosting": ("n_estimators", "learning_rate", "max_depth"),
    "random-forest": ("n_estimators", "max_depth", "min_samples_leaf"),
}


def cross_validate(
    frame: pd.DataFrame,
    y: np.ndarray,
    schema: Schema,
    *,
    model_type: str = AUTO,
    params: dict[str, Any] | None = None,
    search: str = "grid",
    cv_folds: int = DEFAULT_CV_FOLDS,
    random_state: int = 0,
    **pipeline_args: Any,
) -> Selection:
    """Each candidate's AUC on ``cv_folds`` stratified folds of ``frame`` (labels ``y``, 0/1).

    ``pipeline_args`` (selection, n_features, encoding) go to ``features.build_pipeline``
    unchanged, so every candidate is the pipeline that would be trained.
    """
    if cv_folds < 2:
        raise ValueError(f"cv_folds: expected an integer >= 2, got {cv_folds}")
    minority = int(min(np.sum(y == 1), np.sum(y == 0)))
    if minority < cv_folds:
        raise ValueError(
            f"{schema.target.column}: {cv_folds}-fold cross-validation needs at least {cv_folds} rows "
            f"of each class; the rarer class has {minority}"
        )
    folds = list(StratifiedKFold(cv_folds, shuffle=True, random_state=random_state).split(frame, y))
    scored = []
    for kind, hp in candidates(model_type, params or {}, search):
        aucs = []
        for train_rows, valid_rows in folds:
            pipeline = features.build_pipeline(
                schema, model_type=kind, model_params=hp, random_state=random_state, **pipeline_args
            )
            fitted = features.fit_pipeline(pipeline, frame.iloc[train_rows], y[train_rows])
            proba = fitted.predict_proba(frame.iloc[valid_rows])[:, 1]
            aucs.append(float(roc_auc_score(y[valid_rows], proba)))
        scored.append(Candidate(kind, hp, tuple(aucs)))
    return Selection(tuple(scored), cv_folds, search)
