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
quick experiments.

Every core: the (candidate, fold) fits are independent, so they run in parallel worker
processes, as many as the training instance has cores (``n_jobs=0``, ``mlops train``'s
default; 1 is the serial search in this process), each worker's math libraries held to its share of the cores
(``model_code.training.cores``). Each fit is seeded and given the same rows as in the serial
search, and the results are gathered in the order above, so the choice does not depend on
the number of workers.

Not every row: the choice between seven candidates is settled long before a million rows.
Above ``search_rows`` labelled rows (``DEFAULT_SEARCH_ROWS``), the search runs on a
stratified sample of that many rows (:func:`search_sample`: the class shares of the whole,
seeded) and only the chosen candidate is refitted on every row, so the search's cost stops
growing with the data while the model still learns from all of it. The candidates' fold AUCs
and the choice are those of the sample; ``rows_searched`` and ``rows_total`` record it.

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from model_code.contract.schema import Schema
from model_code.training import cores, features

AUTO = "auto"
MODEL_TYPES = (AUTO, *features.MODEL_TYPES)
SEARCHES = ("grid", "quick")
DEFAULT_CV_FOLDS = 5
# Above this many labelled rows the search runs on a stratified sample of this size. At 50,000
# churn rows (a quarter positive) the mean fold AUC's standard error is about 0.0025 (Hanley
# and McNeil, 1982), the scale of the one-standard-error rule; benchmarks/README.md compares
# the held-out AUC of sampled and full searches.
DEFAULT_SEARCH_ROWS = 50_000
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
    rows_searched: int = 0
    rows_total: int = 0
    parallel: dict[str, int] | None = None

    @property
    def sampled(self) -> bool:
        """True when the search saw a sample of the rows, not all of them."""
        return self.rows_searched < self.rows_total

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
            "rows_searched": self.rows_searched,
            "rows_total": self.rows_total,
            "sampled": self.sampled,
            "parallel": self.parallel,
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


def search_sample(
    y: np.ndarray, search_rows: int, random_state: int = 0, min_per_class: int = 1
) -> np.ndarray:
    """The positions of the rows the search runs on: all of them up to ``search_rows``, else a
    seeded sample of ``search_rows`` with the class shares of the whole (stratified), in order.

    Each class keeps its share of the sample, rounded by largest remainder, but at least
    ``min_per_class`` rows (the folds need some of each). ``search_rows`` 0 means every row.
    """
    if search_rows < 0:
        raise ValueError(
            f"search_rows: expected 0 (every row) or a positive number of rows, got {search_rows}"
        )
    positions = np.arange(len(y))
    if not search_rows or len(y) <= search_rows:
        return positions
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * search_rows / len(y)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: search_rows - take.sum()]:
        take[i] += 1
    take = np.minimum(np.maximum(take, min_per_class), counts)
    rng = np.random.default_rng(random_state)
    chosen = [
        rng.choice(positions[y == c], size=k, replace=False) for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def _fit_fold(
    frame: pd.DataFrame,
    y: np.ndarray,
    schema: Schema,
    kind: str,
    hp: dict[str, Any],
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    random_state: int,
    pipeline_args: dict[str, Any],
) -> float:
    """One candidate fitted on one fold's training rows; its AUC on the fold's validation rows."""
    pipeline = features.build_pipeline(
        schema, model_type=kind, model_params=hp, random_state=random_state, **pipeline_args
    )
    fitted = features.fit_pipeline(pipeline, frame.iloc[train_rows], y[train_rows])
    proba = fitted.predict_proba(frame.iloc[valid_rows])[:, 1]
    return float(roc_auc_score(y[valid_rows], proba))


# Rough relative cost of one fit of each type, so the slowest start first and the workers
# finish together (longest-processing-time-first scheduling).
_COST = {"random-forest": 3, "gradient-boosting": 2, "logistic": 1}


def _run_fits(calls: Sequence[tuple], plan: cores.Plan) -> list[float]:
    """``_fit_fold(*call)`` for each call, in order: in this process, or in ``plan.workers``."""
    from threadpoolctl import threadpool_limits

    if plan.workers == 1:
        with threadpool_limits(limits=plan.threads):
            return [_fit_fold(*call) for call in calls]
    from joblib import Parallel, delayed, parallel_config

    # inner_max_num_threads caps OpenMP/BLAS threads in each loky worker (joblib sets their
    # thread variables before the worker starts), so workers x threads <= cores. Each task
    # carries the (sampled) frame, at most search_rows rows by default, so sending it is cheap.
    with parallel_config(backend="loky", inner_max_num_threads=plan.threads):
        return Parallel(n_jobs=plan.workers, batch_size=1)(delayed(_fit_fold)(*call) for call in calls)


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
    n_jobs: int = 1,
    search_rows: int = 0,
    **pipeline_args: Any,
) -> Selection:
    """Each candidate's AUC on ``cv_folds`` stratified folds of ``frame`` (labels ``y``, 0/1).

    ``pipeline_args`` (selection, n_features, encoding) go to ``features.build_pipeline``
    unchanged, so every candidate is the pipeline that would be trained. ``n_jobs`` workers
    run the fits (0: one per core; ``mlops train``'s default, while callers here get the
    serial search unless they ask); above ``search_rows`` rows (0: never) the search runs on
    :func:`search_sample`'s rows.
    """
    if cv_folds < 2:
        raise ValueError(f"cv_folds: expected an integer >= 2, got {cv_folds}")
    minority = int(min(np.sum(y == 1), np.sum(y == 0)))
    if minority < cv_folds:
        raise ValueError(
            f"{schema.target.column}: {cv_folds}-fold cross-validation needs at least {cv_folds} rows "
            f"of each class; the rarer class has {minority}"
        )
    rows_total = len(y)
    sample = search_sample(y, search_rows, random_state, min_per_class=cv_folds)
    if len(sample) < rows_total:
        frame, y = frame.iloc[sample], y[sample]
    folds = list(StratifiedKFold(cv_folds, shuffle=True, random_state=random_state).split(frame, y))
    grid = candidates(model_type, params or {}, search)
    tasks = sorted(
        ((c, f) for c in range(len(grid)) for f in range(len(folds))),
        key=lambda task: -_COST.get(grid[task[0]][0], 1),
    )
    plan = cores.plan(n_jobs, len(tasks))
    calls = [(frame, y, schema, *grid[c], *folds[f], random_state, pipeline_args) for c, f in tasks]
    aucs = dict(zip(tasks, _run_fits(calls, plan), strict=True))
    scored = tuple(
        Candidate(kind, hp, tuple(aucs[(c, f)] for f in range(len(folds))))
        for c, (kind, hp) in enumerate(grid)
    )
    return Selection(scored, cv_folds, search, len(y), rows_total, plan.to_dict())
