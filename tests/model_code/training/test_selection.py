"""Model selection: cross-validation picks the model type, and the choice is recorded and tracked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from model_code.contract import schema as schema_mod
from model_code.contract import synthetic
from model_code.training import experiments, selection, tracking, train

QUICK = ["--search", "quick", "--cv-folds", "2"]


@pytest.fixture(autouse=True)
def job_env(tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING", "TRAINING_JOB_NAME", "SM_OUTPUT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path / "config"))


def _churn(path: Path, rows: int = 500, seed: int = 3) -> Path:
    path.mkdir(parents=True)
    synthetic.generate(rows, seed=seed).to_csv(path / "part-0.csv", index=False)
    return path


def _metadata(model_dir: Path) -> dict:
    return json.loads((model_dir / "metadata.json").read_text())


def test_auto_is_the_default_and_searches_every_type_of_the_documented_grid(tmp_path):
    args = [
        "--train",
        str(_churn(tmp_path / "train", rows=300)),
        "--model-dir",
        str(tmp_path / "m"),
        "--cv-folds",
        "2",
    ]
    assert train.main(args) == 0
    chosen = _metadata(tmp_path / "m")["model_selection"]
    searched = [(c["model_type"], c["params"]) for c in chosen["candidates"]]
    assert searched == [(t, p) for t, grid in selection.GRID.items() for p in grid]
    assert all(len(c["fold_aucs"]) == 2 for c in chosen["candidates"])
    [record] = [
        c
        for c in chosen["candidates"]
        if (c["model_type"], c["params"]) == (chosen["model_type"], chosen["params"])
    ]
    assert chosen["cv_auc"] == record["cv_auc"]


def test_the_simplest_candidate_within_one_standard_error_of_the_best_mean_wins():
    logistic = selection.Candidate("logistic", {"c": 1.0}, (0.80, 0.82))
    noisy_forest = selection.Candidate("random-forest", {}, (0.79, 0.85))  # mean 0.82, SE 0.021
    assert selection.Selection((logistic, noisy_forest), 2, "grid").best is logistic
    clear_forest = selection.Candidate("random-forest", {}, (0.90, 0.92))  # mean 0.91, SE 0.007
    assert selection.Selection((logistic, clear_forest), 2, "grid").best is clear_forest


def test_a_relation_no_line_can_draw_is_given_to_a_tree_model():
    # The label is the sign of x1 * x2: logistic regression can do no better than chance.
    contract = schema_mod.parse(
        {
            "name": "xor",
            "entity_id": "id",
            "target": {"column": "y", "positive": 1},
            "features": [{"name": "x1", "type": "fractional"}, {"name": "x2", "type": "fractional"}],
        }
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2))
    frame = pd.DataFrame({"id": range(600), "x1": x[:, 0], "x2": x[:, 1]})
    y = (x[:, 0] * x[:, 1] > 0).astype(int)

    chosen = selection.cross_validate(frame, y, contract, search="quick", cv_folds=3)

    assert chosen.best.model_type != "logistic"
    assert chosen.best.cv_auc > 0.9
    assert next(c.cv_auc for c in chosen.candidates if c.model_type == "logistic") < 0.65


def test_the_choice_and_cv_scores_go_into_features_json_and_metadata_json(tmp_path):
    args = ["--train", str(_churn(tmp_path / "train")), "--model-dir", str(tmp_path / "m"), *QUICK]
    assert train.main(args) == 0
    features = json.loads((tmp_path / "m" / "features.json").read_text())
    chosen = _metadata(tmp_path / "m")["model_selection"]
    assert features["model"] == {k: chosen[k] for k in ("model_type", "params", "cv_auc")}
    assert {c["model_type"] for c in chosen["candidates"]} == {
        "logistic",
        "gradient-boosting",
        "random-forest",
    }
    assert (chosen["cv_folds"], chosen["search"]) == (2, "quick")


def test_a_named_model_type_is_cross_validated_alone_with_its_hyperparameters(tmp_path):
    args = ["--train", str(_churn(tmp_path / "train")), "--model-dir", str(tmp_path / "m")]
    assert (
        train.main([*args, "--model-type", "random-forest", "--n-estimators", "20", "--cv-folds", "3"]) == 0
    )
    [candidate] = _metadata(tmp_path / "m")["model_selection"]["candidates"]
    assert candidate["model_type"] == "random-forest"
    assert candidate["params"] == {"n_estimators": 20, "max_depth": None}
    assert 0.5 < candidate["cv_auc"] <= 1.0


def test_too_few_rows_of_a_class_for_the_folds_fails_naming_the_target(tmp_path):
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    frame = synthetic.generate(200, seed=1)
    frame["churned"] = 0
    frame.loc[:2, "churned"] = 1  # three positives for five folds
    frame.to_csv(train_dir / "x.csv", index=False)
    assert train.main(["--train", str(train_dir), "--model-dir", str(tmp_path / "m")]) == 1
    message = (tmp_path / "opt_ml" / "output" / "failure").read_text()
    assert "churned" in message and "5-fold" in message and "has 3" in message


def test_every_candidate_is_a_nested_run_and_experiments_list_only_the_training_run(tmp_path):
    args = ["--train", str(_churn(tmp_path / "train")), "--model-dir", str(tmp_path / "m"), *QUICK]
    assert train.main(args) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("customer-churn").experiment_id])
    [parent] = [r for r in runs if tracking.PARENT_TAG not in r.data.tags]
    children = [r for r in runs if r.data.tags.get(tracking.PARENT_TAG) == parent.info.run_id]
    assert sorted(r.data.params["model_type"] for r in children) == [
        "gradient-boosting",
        "logistic",
        "random-forest",
    ]
    assert all(0.5 < r.data.metrics["cv_auc"] <= 1.0 for r in children)
    # No validation channel, yet the training run has a figure to compare.
    [chosen] = [r for r in children if r.data.params["model_type"] == parent.data.params["chosen_model_type"]]
    assert parent.data.metrics["cv_auc"] == chosen.data.metrics["cv_auc"]
    listed = experiments.compare_runs("customer-churn", uri=f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
    assert list(listed["run_id"]) == [parent.info.run_id]
    assert "metrics.cv_auc" in listed.columns


def test_a_training_job_without_a_tracking_server_keeps_its_run_in_the_artifact(tmp_path, monkeypatch):
    # dev and staging: no MLFLOW_TRACKING_URI, a working directory the job cannot keep.
    monkeypatch.delenv("MLOPS_STATE_DIR")
    monkeypatch.setenv("TRAINING_JOB_NAME", "customer-churn-TrainModel-abc")
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output" / "data"))
    workdir = tmp_path / "container-root"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    args = ["--train", str(_churn(tmp_path / "train")), "--model-dir", str(tmp_path / "m"), *QUICK]

    assert train.main(args) == 0

    assert list(workdir.iterdir()) == []  # nothing on the throwaway disk
    for folder in (tmp_path / "m", tmp_path / "output" / "data"):
        record = json.loads((folder / tracking.RUN_FILE).read_text())
        assert record["experiment"] == "customer-churn"
        assert 0.5 < record["metrics"]["cv_auc"] <= 1.0
        assert record["params"]["model_type"] == "auto"
        assert len(record["candidates"]) == 3
