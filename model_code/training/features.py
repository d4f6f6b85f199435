"""Feature engineering and selection, as one scikit-learn pipeline built from the schema.

The model artifact is this pipeline with a classifier at its end, so what runs at inference
is exactly what ran in training::

    ContractColumns ─► EngineeredFeatures ─► preprocess ─► select ─► classifier
    (schema columns,   (declared ratios,     (impute, scale,  (one of SELECTION_METHODS)
     typed)             products, logs)       encode strings)

Unseen categories at inference are tolerated: one-hot encoding ignores them, ordinal
encoding maps them to -1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import RFE, SelectFromModel, SelectKBest, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from model_code.contract.schema import Schema

SELECTION_METHODS = ("none", "correlation", "univariate", "model", "rfe", "pca")
ENCODINGS = ("onehot", "ordinal")
MODEL_TYPES = ("gradient-boosting", "logistic", "random-forest")


class ContractColumns(BaseEstimator, TransformerMixin):
    """Select the schema's feature columns in order, numerics as float64 (nulls as NaN)."""

    def __init__(self, numeric: tuple[str, ...] = (), categorical: tuple[str, ...] = ()):
        self.numeric = numeric
        self.categorical = categorical

    def fit(self, X, y=None):
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        data = {
            c: pd.to_numeric(X[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            for c in self.numeric
        }
        for c in self.categorical:
            data[c] = X[c].astype(object).where(X[c].notna(), np.nan).to_numpy()
        return pd.DataFrame(data, index=X.index)


class EngineeredFeatures(BaseEstimator, TransformerMixin):
    """Add the schema's declared derived features; undefined results (x/0) become NaN."""

    def __init__(self, specs: tuple[tuple[str, str, tuple[str, ...]], ...] = ()):
        self.specs = specs

    def fit(self, X, y=None):
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        if not self.specs:
            return X
        X = X.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            for name, op, inputs in self.specs:
                a = X[inputs[0]].to_numpy(dtype="float64")
                b = X[inputs[1]].to_numpy(dtype="float64") if len(inputs) > 1 else None
                if op == "ratio":
                    value = a / b
                elif op == "product":
                    value = a * b
                elif op == "difference":
                    value = a - b
                elif op == "sum":
                    value = a + b
                else:  # log1p
                    value = np.log1p(np.where(a > -1, a, np.nan))
                X[name] = np.where(np.isfinite(value), value, np.nan)
        return X


class CorrelationFilter(BaseEstimator, TransformerMixin):
    """Keep up to ``k`` features by |correlation with the target|, skipping near-duplicates.

    A feature whose |Pearson correlation| with an already kept one exceeds ``threshold``
    adds little and is dropped, which is the classic correlation filter.
    """

    def __init__(self, k: int = 10, threshold: float = 0.9):
        self.k = k
        self.threshold = threshold

    def fit(self, X, y):
        X = np.asarray(X, dtype="float64")
        y = np.asarray(y, dtype="float64")
        std = X.std(axis=0)
        safe = np.where(std > 0, std, 1.0)
        z = (X - X.mean(axis=0)) / safe
        target = (y - y.mean()) / (y.std() or 1.0)
        self.scores_ = np.where(std > 0, np.abs(z.T @ target) / len(y), 0.0)
        corr = np.abs(z.T @ z) / len(y)
        kept: list[int] = []
        for j in np.argsort(-self.scores_, kind="stable"):
            if len(kept) >= self.k:
                break
            if std[j] > 0 and all(corr[j, i] <= self.threshold for i in kept):
                kept.append(int(j))
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[kept] = True
        return self

    def get_support(self) -> np.ndarray:
        return self.support_

    def transform(self, X):
        return np.asarray(X)[:, self.support_]


def _selector(method: str, k: int, random_state: int) -> Any:
    if method == "none":
        return "passthrough"
    if method == "correlation":
        return CorrelationFilter(k=k)
    if method == "univariate":
        return SelectKBest(f_classif, k=k)
    if method == "model":
        forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=random_state, n_jobs=1)
        return SelectFromModel(forest, max_features=k, threshold=-np.inf)
    if method == "rfe":
        return RFE(LogisticRegression(max_iter=2000), n_features_to_select=k)
    if method == "pca":
        return PCA(n_components=k, random_state=random_state)
    raise ValueError(f"selection method: {method!r} is not one of {' | '.join(SELECTION_METHODS)}")


def _classifier(model_type: str, params: dict[str, Any], random_state: int) -> Any:
    if model_type == "gradient-boosting":
        return HistGradientBoostingClassifier(
            max_iter=int(params.get("n_estimators", 200)),
            learning_rate=float(params.get("learning_rate", 0.05)),
            max_depth=params.get("max_depth") and int(params["max_depth"]),
            random_state=random_state,
        )
    if model_type == "random-forest":
        return RandomForestClassifier(
            n_estimators=int(params.get("n_estimators", 200)),
            max_depth=params.get("max_depth") and int(params["max_depth"]),
            min_samples_leaf=int(params.get("min_samples_leaf", 1)),
            random_state=random_state,
            n_jobs=1,
        )
    if model_type == "logistic":
        return LogisticRegression(C=float(params.get("c", 1.0)), max_iter=2000)
    raise ValueError(f"model type: {model_type!r} is not one of {' | '.join(MODEL_TYPES)}")


def build_pipeline(
    schema: Schema,
    *,
    selection: str = "none",
    n_features: int = 10,
    encoding: str = "onehot",
    model_type: str = "gradient-boosting",
    model_params: dict[str, Any] | None = None,
    random_state: int = 0,
) -> Pipeline:
    """The untrained pipeline for a schema: raw feature columns in, class probabilities out."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding: {encoding!r} is not one of {' | '.join(ENCODINGS)}")
    if selection not in SELECTION_METHODS:
        raise ValueError(f"selection method: {selection!r} is not one of {' | '.join(SELECTION_METHODS)}")
    if n_features < 1:
        raise ValueError(f"n_features: expected a positive number of features to keep, got {n_features}")
    numeric = [*schema.numeric_features, *(e.name for e in schema.engineered)]
    categorical = schema.categorical_features
    if encoding == "onehot":
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    preprocess = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("encode", encoder),
                    ]
                ),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )
    specs = tuple((e.name, e.op, e.inputs) for e in schema.engineered)
    return Pipeline(
        [
            ("contract", ContractColumns(tuple(schema.numeric_features), tuple(categorical))),
            ("engineer", EngineeredFeatures(specs)),
            ("preprocess", preprocess),
            ("select", _selector(selection, n_features, random_state)),
            ("model", _classifier(model_type, model_params or {}, random_state)),
        ]
    )


def fit_pipeline(pipeline: Pipeline, frame: pd.DataFrame, y: np.ndarray, *, n_jobs: int = 1) -> Pipeline:
    """Fit, capping the number of features to keep at the number the preprocessing yields.

    ``n_jobs`` above 1 fits on that many cores: random forests build their trees in as many
    threads, and the math libraries (OpenMP, BLAS) get as many threads. The forests are set
    back to one thread afterwards, so the saved model predicts on one, as the model server's
    workers expect (``model_code.serving.workers``).
    """
    n_out = len(pipeline[:3].fit(frame, y).named_steps["preprocess"].get_feature_names_out())
    select = pipeline.named_steps["select"]
    for attr in ("k", "max_features", "n_features_to_select", "n_components"):
        if hasattr(select, attr) and isinstance(getattr(select, attr), int) and getattr(select, attr) > n_out:
            select.set_params(**{attr: n_out})
    if n_jobs <= 1:
        return pipeline.fit(frame, y)
    from threadpoolctl import threadpool_limits

    forests = [p for p in pipeline.get_params().values() if isinstance(p, RandomForestClassifier)]
    for forest in forests:
        forest.set_params(n_jobs=n_jobs)
    try:
        with threadpool_limits(limits=n_jobs):
            pipeline.fit(frame, y)
    finally:
        for forest in forests:
            forest.set_params(n_jobs=1)
    # set_params on the unfitted estimator does not reach fitted copies (SelectFromModel's
    # estimator_): set theirs too.
    select = pipeline.named_steps["select"]
    if isinstance(getattr(select, "estimator_", None), RandomForestClassifier):
        select.estimator_.set_params(n_jobs=1)
    return pipeline


def selection_report(pipeline: Pipeline) -> dict[str, Any]:
    """Which features the fitted pipeline kept, with the selection method's score for each."""
    names = list(pipeline.named_steps["preprocess"].get_feature_names_out())
    select = pipeline.named_steps["select"]
    if select == "passthrough":
        return {"method": "none", "selected": names, "scores": {}}
    if isinstance(select, PCA):
        components = [f"pc{i + 1}" for i in range(select.n_components_)]
        loadings = {
            comp: dict(sorted(zip(names, map(float, row), strict=True), key=lambda kv: -abs(kv[1]))[:5])
            for comp, row in zip(components, select.components_, strict=True)
        }
        return {
            "method": "pca",
            "selected": components,
            "scores": dict(zip(components, map(float, select.explained_variance_ratio_), strict=True)),
            "top_loadings": loadings,
        }
    if isinstance(select, SelectKBest):
        method, scores = "univariate", select.scores_
    elif isinstance(select, SelectFromModel):
        method, scores = "model", select.estimator_.feature_importances_
    elif isinstance(select, RFE):
        # Ranking 1 is kept; a score of 1/rank keeps "higher is better" across methods.
        method, scores = "rfe", 1.0 / select.ranking_
    else:
        method, scores = "correlation", select.scores_
    support = select.get_support()
    return {
        "method": method,
        "selected": [n for n, keep in zip(names, support, strict=True) if keep],
        "scores": {n: float(np.nan_to_num(s)) for n, s in zip(names, scores, strict=True)},
    }
