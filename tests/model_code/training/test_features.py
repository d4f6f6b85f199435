"""The feature pipeline: selection keeps what was asked, and odd inputs at inference do not crash it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model_code.training import features


@pytest.fixture(scope="module")
def small(churn_frame, churn_schema) -> tuple[pd.DataFrame, np.ndarray]:
    """600 customers and their labels: enough to fit every selector in well under a second."""
    frame = churn_frame.iloc[:600]
    return frame, churn_schema.is_positive(frame["churned"]).to_numpy(dtype=int)


def _fit(schema, frame, y, **params):
    params.setdefault("model_type", "logistic")
    return features.fit_pipeline(features.build_pipeline(schema, **params), frame, y)


@pytest.fixture(scope="module", params=["correlation", "univariate", "model", "rfe", "pca"])
def four_of(request, small, churn_schema) -> tuple[str, dict]:
    """Each selection method asked to keep 4 features, and its selection report."""
    frame, y = small
    pipeline = _fit(churn_schema, frame, y, selection=request.param, n_features=4)
    return request.param, features.selection_report(pipeline)


def test_each_selection_method_keeps_the_requested_number_of_features(four_of):
    method, report = four_of
    assert report["method"] == method
    assert len(report["selected"]) == 4


def test_each_selection_method_reports_a_score_for_what_it_kept(four_of):
    _, report = four_of
    assert set(report["selected"]) <= set(report["scores"])
    assert all(np.isfinite(report["scores"][name]) for name in report["selected"])


def test_univariate_selection_keeps_the_best_scored_features(small, churn_schema):
    frame, y = small
    report = features.selection_report(_fit(churn_schema, frame, y, selection="univariate", n_features=3))
    best = sorted(report["scores"], key=report["scores"].get, reverse=True)[:3]
    assert sorted(report["selected"]) == sorted(best)


def test_asking_for_more_features_than_exist_keeps_them_all(small, churn_schema):
    frame, y = small
    pipeline = _fit(churn_schema, frame, y, selection="univariate", n_features=500)
    report = features.selection_report(pipeline)
    assert len(report["selected"]) == len(pipeline.named_steps["preprocess"].get_feature_names_out())


@pytest.mark.parametrize("encoding", features.ENCODINGS)
def test_unseen_category_at_inference_still_gets_a_probability(small, churn_schema, encoding):
    frame, y = small
    pipeline = _fit(churn_schema, frame, y, encoding=encoding)
    unseen = frame.iloc[:3].copy()
    unseen["contract"] = pd.array(["lifetime", "weekly", None], dtype="string")
    proba = pipeline.predict_proba(unseen)[:, 1]
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()


def test_ratio_with_a_zero_denominator_is_missing_not_infinite(churn_schema):
    engineer = features.EngineeredFeatures((("per_month", "ratio", ("total_charges", "tenure_months")),))
    out = engineer.transform(pd.DataFrame({"total_charges": [100.0, 100.0], "tenure_months": [0.0, 4.0]}))
    assert np.isnan(out["per_month"].iloc[0])
    assert out["per_month"].iloc[1] == 25.0


def test_zero_tenure_customer_is_scored(small, churn_schema):
    frame, y = small
    pipeline = _fit(churn_schema, frame, y)
    row = frame.iloc[:1].copy()
    row["tenure_months"] = pd.array([0], dtype="Int64")
    row["total_charges"] = 100.0  # charges_per_month is 100 / 0
    assert np.isfinite(pipeline.predict_proba(row)).all()


def test_unknown_selection_method_names_the_allowed_ones(churn_schema):
    with pytest.raises(ValueError, match="lasso") as error:
        features.build_pipeline(churn_schema, selection="lasso")
    assert all(method in str(error.value) for method in features.SELECTION_METHODS)


def test_unknown_model_type_names_the_allowed_ones(churn_schema):
    with pytest.raises(ValueError) as error:
        features.build_pipeline(churn_schema, model_type="svm")
    assert all(kind in str(error.value) for kind in features.MODEL_TYPES)
