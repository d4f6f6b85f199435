"""Experiment tracking: each training run is findable in MLflow with what made it, and comparable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from model_code.contract import synthetic
from model_code.training import experiments, tracking, train


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING", "MLOPS_TRIGGER_REASON", "MLOPS_EXECUTION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path / "config"))


def _channel(path: Path, rows: int, seed: int) -> Path:
    path.mkdir(parents=True)
    synthetic.generate(rows, seed=seed).to_csv(path / "data.csv", index=False)
    return path


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> dict:
    """One `mlops train` run with a validation channel, tracked in a fresh state folder."""
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as env:
        for name in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING"):
            env.delenv(name, raising=False)
        env.setenv("MLOPS_STATE_DIR", str(root / "state"))
        env.setenv("MLOPS_TRIGGER_REASON", "drift")
        env.setenv("MLOPS_EXECUTION_ID", "exec-42")
        env.setenv("SM_INPUT_CONFIG_DIR", str(root / "config"))
        args = [
            *("--train", str(_channel(root / "train", 600, 1))),
            *("--validation", str(_channel(root / "validation", 300, 2))),
            *("--model-dir", str(root / "model"), "--n-estimators", "25", "--selection", "univariate"),
            *("--model-type", "gradient-boosting", "--cv-folds", "2"),
        ]
        assert train.main(args) == 0
    client = MlflowClient(f"sqlite:///{root / 'state' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("customer-churn").experiment_id])
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    return {"root": root, "client": client, "runs": runs, "metadata": metadata}


def test_training_run_is_recorded_in_sqlite_under_the_state_dir(tracked):
    assert (tracked["root"] / "state" / "mlflow.db").is_file()
    assert len(tracked["runs"]) == 1
    assert tracked["runs"][0].info.status == "FINISHED"


def test_run_holds_the_hyperparameters_as_params(tracked):
    params = tracked["runs"][0].data.params
    assert params["selection"] == "univariate"
    assert params["n_estimators"] == "25"
    assert params["model_type"] == "gradient-boosting"


def test_run_holds_the_validation_metrics(tracked):
    metrics = tracked["runs"][0].data.metrics
    assert metrics["auc"] == pytest.approx(tracked["metadata"]["validation_metrics"]["auc"])
    assert metrics["rows_trained"] == 600


def test_run_is_tagged_with_data_and_code_versions_and_its_trigger(tracked):
    tags = tracked["runs"][0].data.tags
    assert tags["data_version"] == tracked["metadata"]["data_version"]
    assert tags["code_version"] == tracked["metadata"]["code_version"]
    assert (tags["trigger_reason"], tags["pipeline_execution_id"]) == ("drift", "exec-42")


def test_run_holds_the_model_folder_as_artifacts_in_the_state_dir(tracked):
    run = tracked["runs"][0]
    logged = {a.path for a in tracked["client"].list_artifacts(run.info.run_id, "model")}
    assert {"model/model.joblib", "model/features.json", "model/metadata.json"} <= logged
    assert run.info.artifact_uri.startswith((tracked["root"] / "state" / "mlartifacts").as_uri())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> str:
    """A store with two runs that differ in one param and in their metrics."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('compare') / 'mlflow.db'}"
    for selection, auc, loss in (("none", 0.81, 0.40), ("pca", 0.86, 0.45)):
        tracking.log_run(
            experiment="customer-churn",
            params={"selection": selection, "n_estimators": 50},
            metrics={"auc": auc, "log_loss": loss},
            tags={"data_version": "sha256:" + "a" * 64, "code_version": "git:" + "b" * 40},
            uri=uri,
        )
    return uri


def test_two_runs_compare_side_by_side_with_their_metrics_best_first(two_runs):
    frame = experiments.compare_runs("customer-churn", metric="auc", uri=two_runs)
    assert list(frame["metrics.auc"]) == [0.86, 0.81]
    assert list(frame["params.selection"]) == ["pca", "none"]
    assert list(frame["data_version"]) == ["sha256:" + "a" * 64] * 2


def test_comparison_shows_only_the_params_that_differ(two_runs):
    frame = experiments.compare_runs("customer-churn", uri=two_runs)
    assert "params.selection" in frame.columns
    assert "params.n_estimators" not in frame.columns


def test_loss_metrics_sort_lowest_first(two_runs):
    frame = experiments.compare_runs("customer-churn", metric="log_loss", uri=two_runs)
    assert list(frame["metrics.log_loss"]) == [0.40, 0.45]


def test_experiments_command_prints_the_runs_side_by_side(two_runs, capsys):
    assert experiments.main(["--tracking-uri", two_runs, "--metric", "auc"]) == 0
    out = capsys.readouterr().out
    run_ids = experiments.compare_runs("customer-churn", uri=two_runs)["run_id"]
    assert all(run_id[:8] in out for run_id in run_ids)
    assert "0.8600" in out
    assert "selection" in out
    assert "sha256:aaaaaaaaaaaa" in out


def test_experiments_command_with_nothing_tracked_says_so(tmp_path, capsys):
    assert experiments.main(["--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"]) == 1
    assert "train a model first" in capsys.readouterr().err


def test_mlflow_tracking_uri_env_is_respected(tmp_path, monkeypatch):
    other = tmp_path / "server" / "other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    tracking.log_run(experiment="customer-churn", params={"selection": "none"}, metrics={"auc": 0.8})
    client = MlflowClient(f"sqlite:///{other}")
    assert len(client.search_runs([client.get_experiment_by_name("customer-churn").experiment_id])) == 1
    assert not (tmp_path / "state" / "mlflow.db").exists()


def test_a_new_store_is_created_quietly(tmp_path, capfd):
    tracking.log_run(experiment="quiet", params={"a": 1}, uri=f"sqlite:///{tmp_path / 'new.db'}")
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_tracking_off_writes_no_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_TRACKING", "off")
    channel = _channel(tmp_path / "train", 300, 3)
    assert (
        train.main(["--train", str(channel), "--model-dir", str(tmp_path / "m"), "--n-estimators", "10"]) == 0
    )
    assert not (tmp_path / "state").exists()
