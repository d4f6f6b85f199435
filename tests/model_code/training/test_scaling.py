"""Training at scale: the search on every core, on a sample above a row count, refit on all rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from numpy.testing import assert_allclose

from model_code.contract import rules, synthetic
from model_code.contract import schema as schema_mod
from model_code.training import artifact, cores, features, selection, tracking, train

QUICK = ["--search", "quick", "--cv-folds", "2", "--n-estimators", "30"]


@pytest.fixture(autouse=True)
def job_env(tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING", "TRAINING_JOB_NAME", "SM_OUTPUT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, np.ndarray, schema_mod.Schema]:
    contract = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    frame = synthetic.generate(600, seed=5)
    return frame, frame["churned"].to_numpy(int), contract


def _channel(path: Path, rows: int, seed: int = 3) -> Path:
    path.mkdir(parents=True)
    synthetic.generate(rows, seed=seed).to_csv(path / "part-0.csv", index=False)
    return path


def test_the_parallel_search_gives_the_same_scores_and_choice_as_the_serial_one(churn):
    frame, y, contract = churn
    kwargs = {"search": "grid", "cv_folds": 3, "random_state": 7}

    serial = selection.cross_validate(frame, y, contract, n_jobs=1, **kwargs)
    parallel = selection.cross_validate(frame, y, contract, n_jobs=2, **kwargs)

    assert serial.parallel["workers"] == 1
    assert parallel.parallel["workers"] == min(2, cores.available_cores())
    assert [c.name for c in parallel.candidates] == [c.name for c in serial.candidates]
    for a, b in zip(parallel.candidates, serial.candidates, strict=True):
        assert_allclose(a.fold_aucs, b.fold_aucs, rtol=0, atol=1e-12)
    assert parallel.best.name == serial.best.name


def test_workers_times_their_math_threads_never_exceed_the_cores():
    for n_cores in (1, 2, 4, 16, 96):
        for n_jobs in (0, 1, 3, 200):
            plan = cores.plan(n_jobs, n_tasks=35, cores=n_cores)
            assert 1 <= plan.workers <= n_cores
            assert plan.workers * plan.threads <= n_cores
    assert cores.plan(0, n_tasks=35, cores=4) == cores.Plan(cores=4, workers=4, threads=1)
    # The serial search gives its one process every core's thread.
    assert cores.plan(1, n_tasks=35, cores=4) == cores.Plan(cores=4, workers=1, threads=4)
    # Never more workers than fits: a named model type on 2 folds is 2 fits.
    assert cores.plan(0, n_tasks=2, cores=8) == cores.Plan(cores=8, workers=2, threads=4)


def test_the_training_instance_type_is_read_from_sagemakers_resource_config(tmp_path):
    # The fields of a training job's resourceconfig.json, as SageMaker documents them.
    config = {
        "current_host": "algo-1",
        "current_instance_type": "ml.m5.xlarge",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1"],
        "network_interface_name": "eth0",
    }
    (tmp_path / "resourceconfig.json").write_text(json.dumps(config))
    assert cores.instance_type(tmp_path) == "ml.m5.xlarge"
    assert cores.instance_type(tmp_path / "absent") is None


def test_at_most_search_rows_the_search_sees_every_row_and_above_a_stratified_sample():
    y = np.array([1] * 100 + [0] * 900)
    assert list(selection.search_sample(y, 1000)) == list(range(1000))
    assert list(selection.search_sample(y, 0)) == list(range(1000))

    sample = selection.search_sample(y, 999, random_state=1)
    assert len(sample) == 999 and len(set(sample)) == 999
    sample = selection.search_sample(y, 200, random_state=1)
    assert len(sample) == 200
    assert y[sample].sum() == 20  # the class shares of the whole: 10% positive
    assert list(sample) == sorted(sample)
    assert list(selection.search_sample(y, 200, random_state=1)) == list(sample)  # seeded


def test_a_sampled_search_records_what_it_saw(churn):
    frame, y, contract = churn
    choice = selection.cross_validate(frame, y, contract, search="quick", cv_folds=2, search_rows=250)
    assert (choice.rows_searched, choice.rows_total, choice.sampled) == (250, 600, True)
    record = choice.to_dict()
    assert (record["rows_searched"], record["rows_total"], record["sampled"]) == (250, 600, True)

    whole = selection.cross_validate(frame, y, contract, search="quick", cv_folds=2, search_rows=600)
    assert (whole.rows_searched, whole.rows_total, whole.sampled) == (600, 600, False)


def test_the_choice_of_a_sampled_search_is_refitted_on_every_row(tmp_path):
    channel = _channel(tmp_path / "train", rows=700)
    model_dir = tmp_path / "m"
    args = ["--train", str(channel), "--model-dir", str(model_dir), "--search-rows", "300", *QUICK]

    assert train.main(args) == 0

    bundle = artifact.load(model_dir)
    chosen = bundle.metadata["model_selection"]
    assert (chosen["rows_searched"], chosen["rows_total"], chosen["sampled"]) == (300, 700, True)
    assert bundle.metadata["rows_trained"] == 700
    # The saved model is the chosen pipeline fitted on all 700 rows, not on the sample.
    contract = bundle.schema
    frame = train.compact(train.read_channel(channel, contract), contract)
    y = frame["churned"].to_numpy(int)
    params = {"model_type": chosen["model_type"], "model_params": chosen["params"], "random_state": 0}
    on_all = features.fit_pipeline(features.build_pipeline(contract, **params), frame, y)
    sample = selection.search_sample(y, 300, random_state=0)
    on_sample = features.fit_pipeline(
        features.build_pipeline(contract, **params), frame.iloc[sample], y[sample]
    )
    probe = synthetic.generate(200, seed=11)
    saved = bundle.pipeline.predict_proba(probe)[:, 1]
    assert_allclose(saved, on_all.predict_proba(probe)[:, 1])
    assert not np.allclose(saved, on_sample.predict_proba(probe)[:, 1])


def test_the_tracked_run_records_the_sample_the_search_ran_on(tmp_path):
    channel = _channel(tmp_path / "train", rows=700)
    args = ["--train", str(channel), "--model-dir", str(tmp_path / "m"), "--search-rows", "300", *QUICK]

    assert train.main(args) == 0

    record = json.loads((tmp_path / "m" / tracking.RUN_FILE).read_text())
    assert record["metrics"]["rows_searched"] == 300
    assert record["metrics"]["rows_trained"] == 700
    assert record["params"]["search_rows"] == 300
    assert record["params"]["search_sampled"] is True
    client = MlflowClient(f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
    [run] = [
        r
        for r in client.search_runs([client.get_experiment_by_name("customer-churn").experiment_id])
        if tracking.PARENT_TAG not in r.data.tags
    ]
    assert run.data.metrics["rows_searched"] == 300
    assert run.data.metrics["rows_trained"] == 700
    assert run.data.params["search_sampled"] == "True"


def test_a_forest_fitted_on_every_core_is_saved_to_predict_on_one(churn):
    frame, y, contract = churn
    pipeline = features.build_pipeline(
        contract,
        model_type="random-forest",
        model_params={"n_estimators": 20},
        selection="model",
        n_features=4,
    )
    fitted = features.fit_pipeline(pipeline, frame, y, n_jobs=2)
    assert fitted.named_steps["model"].n_jobs == 1
    assert fitted.named_steps["select"].estimator_.n_jobs == 1


def test_training_reads_only_the_columns_it_learns_from_in_compact_types():
    contract = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    frame = synthetic.generate(300, seed=2).assign(note="not in the contract")
    compacted = train.compact(rules.coerce(frame, contract), contract)
    assert list(compacted.columns) == [*contract.feature_names, "churned"]
    assert str(compacted["contract"].dtype) == "category"
    assert compacted["tenure_months"].dtype == np.float32
    assert compacted["monthly_charges"].dtype == np.float64
    assert_allclose(compacted["tenure_months"].to_numpy(float), frame["tenure_months"].to_numpy(float))
