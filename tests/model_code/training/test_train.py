"""The training step under SageMaker's contract: channels in, one self-contained artifact out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from model_code.contract import synthetic
from model_code.training import artifact, train

# One candidate of each model type on two folds: model selection's own tests search the grid.
FAST = ["--search", "quick", "--cv-folds", "2", "--n-estimators", "30"]


@pytest.fixture(autouse=True)
def sagemaker_env(tmp_path, monkeypatch) -> Path:
    """A training job's environment in a temp dir; the failure file is returned."""
    failure = tmp_path / "output" / "failure"
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MLOPS_TRACKING", "off")  # tracking has its own tests
    for name in ("SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_CHANNEL_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    return failure


def _channel(path: Path, rows: int = 800, seed: int = 3, **columns) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    frame = synthetic.generate(rows, seed=seed)
    for name, value in columns.items():
        frame[name] = value
    frame.to_csv(path / "part-0.csv", index=False)
    return path


@pytest.fixture
def train_channel(tmp_path, monkeypatch) -> Path:
    channel = _channel(tmp_path / "data" / "train")
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(channel))
    return channel


def _metadata(model_dir: Path) -> dict:
    return json.loads((model_dir / artifact.METADATA_FILE).read_text())


def test_main_writes_the_artifact_into_the_sagemaker_model_dir(train_channel, tmp_path):
    assert train.main(FAST) == 0
    written = {p.name for p in (tmp_path / "model").iterdir()}
    assert written == {"model.joblib", "schema.yaml", "features.json", "metadata.json", "run.json"}


def test_metadata_records_params_data_and_code_versions_and_rows(train_channel, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_CODE_VERSION", "git:abc123")
    train.main([*FAST, "--model-type", "random-forest", "--max-depth", "6"])
    meta = _metadata(tmp_path / "model")
    assert meta["params"]["model_type"] == "random-forest"
    assert meta["params"]["max_depth"] == 6
    assert meta["params"]["n_estimators"] == 30
    assert meta["data_version"] == train.data_version([train_channel / "part-0.csv"])
    assert meta["code_version"] == "git:abc123"
    assert meta["rows_trained"] == 800


def test_features_json_lists_the_chosen_features_and_their_scores(train_channel, tmp_path):
    train.main([*FAST, "--selection", "univariate", "--n-features", "5"])
    chosen = json.loads((tmp_path / "model" / "features.json").read_text())
    assert chosen["method"] == "univariate"
    assert len(chosen["selected"]) == 5
    assert set(chosen["selected"]) <= set(chosen["scores"])


def test_the_artifact_alone_scores_new_customers(train_channel, tmp_path):
    train.main(FAST)
    bundle = artifact.load(tmp_path / "model")
    proba = bundle.pipeline.predict_proba(synthetic.generate(5, seed=9))[:, 1]
    assert ((proba >= 0) & (proba <= 1)).all()


def test_same_seed_twice_gives_identical_predictions(train_channel, tmp_path):
    for name in ("a", "b"):
        args = [*FAST, "--selection", "model", "--random-state", "3", "--model-dir", str(tmp_path / name)]
        assert train.main(args) == 0
    rows = synthetic.generate(200, seed=11)
    first, second = (artifact.load(tmp_path / n).pipeline.predict_proba(rows) for n in ("a", "b"))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("--learning-rate", "-1"),
        ("--n-features", "0"),
        ("--n-estimators", "many"),
        ("--selection", "lasso"),
        ("--model-type", "svm"),
        ("--cv-folds", "1"),
        ("--search", "everything"),
        ("--search-rows", "-5"),
        ("--n-jobs", "-2"),
    ],
)
def test_bad_hyperparameter_exits_1_naming_the_argument(train_channel, sagemaker_env, argument, value):
    assert train.main([argument, value]) == 1
    message = sagemaker_env.read_text()
    assert argument in message
    assert value in message


def test_bad_choice_lists_the_allowed_values(train_channel, sagemaker_env):
    train.main(["--selection", "lasso"])
    assert "univariate" in sagemaker_env.read_text()


def test_one_class_training_data_fails_with_a_clear_error(tmp_path, sagemaker_env):
    channel = _channel(tmp_path / "one-class", churned=0)
    assert train.main(["--train", str(channel), *FAST]) == 1
    message = sagemaker_env.read_text()
    assert "churned" in message
    assert "two classes" in message


def test_data_without_a_required_column_fails_naming_it(tmp_path, sagemaker_env):
    channel = tmp_path / "no-contract"
    channel.mkdir()
    synthetic.generate(100, seed=1).drop(columns="contract").to_csv(channel / "x.csv", index=False)
    assert train.main(["--train", str(channel)]) == 1
    assert "contract" in sagemaker_env.read_text()


def test_empty_channel_fails_naming_it(tmp_path, sagemaker_env):
    (tmp_path / "empty").mkdir()
    assert train.main(["--train", str(tmp_path / "empty")]) == 1
    assert "no CSV or Parquet files" in sagemaker_env.read_text()


def test_hyperparameters_json_from_sagemaker_is_read_and_the_command_line_wins(train_channel, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    # SageMaker writes every value as a string, with the keys the pipeline chose.
    hps = {
        **{"n_estimators": "20", "selection": "univariate", "n_features": "3", "sagemaker_region": "x"},
        **{"search": "quick", "cv_folds": "2"},
    }
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    assert train.main(["--n-features", "4"]) == 0
    params = _metadata(tmp_path / "model")["params"]
    assert (params["n_estimators"], params["selection"], params["n_features"]) == (20, "univariate", 4)


def test_validation_channel_metrics_are_recorded(train_channel, tmp_path):
    validation = _channel(tmp_path / "data" / "validation", rows=300, seed=5)
    train.main([*FAST, "--validation", str(validation)])
    scores = _metadata(tmp_path / "model")["validation_metrics"]
    assert 0.5 < scores["auc"] <= 1.0
    assert {"pr_auc", "f1", "log_loss", "calibration_error"} <= set(scores)


def test_parquet_and_csv_files_of_a_channel_are_all_read(train_channel, tmp_path):
    synthetic.generate(200, seed=4, id_prefix="P").to_parquet(train_channel / "part-1.parquet")
    train.main(FAST)
    assert _metadata(tmp_path / "model")["rows_trained"] == 1000


def test_schema_in_the_train_channel_is_the_contract_used(train_channel, tmp_path, churn_schema):
    raw = {**churn_schema.to_dict(), "name": "churn-v2"}
    (train_channel / "schema.yaml").write_text(yaml.safe_dump(raw))
    train.main(FAST)
    assert _metadata(tmp_path / "model")["schema_name"] == "churn-v2"


def test_data_version_follows_the_bytes_not_the_file_names(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    a.write_text("x\n1\n")
    b.write_text("x\n1\n")
    c.write_text("x\n2\n")
    assert train.data_version([a]) == train.data_version([b])
    assert train.data_version([a]) != train.data_version([c])


def test_code_version_without_git_is_a_hash_of_the_sources(monkeypatch):
    monkeypatch.delenv("MLOPS_CODE_VERSION", raising=False)
    monkeypatch.setenv("PATH", "")  # no git binary, as in a training container
    first, second = train.code_version(), train.code_version()
    assert first.startswith("sha256:")
    assert first == second


def test_importing_train_does_not_import_mlflow():
    code = "import sys, model_code.training.train; print('mlflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def _hostile_channel(path: Path) -> Path:
    """800 rows in which a few break the contract: inf, text in a number, 1.5 months, a third
    label, a ragged line, latin-1 bytes; and one blank label."""
    channel = _channel(path)
    lines = (channel / "part-0.csv").read_bytes().split(b"\n")
    header = lines[0].decode().split(",")

    def edit(line: int, column: str, value: bytes) -> None:
        cells = lines[line].split(b",")
        cells[header.index(column)] = value
        lines[line] = b",".join(cells)

    edit(1, "total_charges", b"inf")
    edit(2, "total_charges", b"1e400")
    edit(3, "monthly_charges", b"abc")
    edit(4, "tenure_months", b"1.5")
    edit(5, "churned", b"yes")
    edit(6, "churned", b"")  # unlabelled, not wrong
    lines[7] += b",extra"
    edit(8, "contract", "caf\u00e9".encode("latin-1"))
    (channel / "part-0.csv").write_bytes(b"\n".join(lines))
    return channel


def test_training_never_fits_on_values_the_contract_refuses_and_counts_them(tmp_path):
    channel = _hostile_channel(tmp_path / "hostile")
    assert train.main(["--train", str(channel), *FAST]) == 0
    meta = _metadata(tmp_path / "model")
    assert (meta["rows_trained"], meta["rows_unlabelled"], meta["rows_rejected"]) == (792, 1, 7)
    assert meta["rejected_reasons"] == {
        "total_charges: not a finite number": 2,
        "monthly_charges: not a number": 1,
        "tenure_months: not a whole number": 1,
        "churned: not one of 0 | 1": 1,
        "malformed line: wrong number of fields": 1,
        "malformed line: not valid UTF-8": 1,
    }


def test_a_blank_label_keeps_the_classes_as_the_schema_spells_them(tmp_path):
    channel = _channel(tmp_path / "blank")
    frame = synthetic.generate(800, seed=3).astype({"churned": object})
    frame.loc[0, "churned"] = ""
    frame.to_csv(channel / "part-0.csv", index=False)
    assert train.main(["--train", str(channel), *FAST]) == 0
    text = (tmp_path / "model" / artifact.METADATA_FILE).read_text()
    assert '"negative_label": 0,' in text and '"positive_label": 1,' in text  # never 0.0


def test_a_column_of_which_nothing_parses_fails_training_naming_it(tmp_path, sagemaker_env):
    channel = _channel(tmp_path / "na", total_charges="n/a")
    assert train.main(["--train", str(channel), *FAST]) == 1
    assert "no value of total_charges reads as its type" in sagemaker_env.read_text()


class _CloudWatch:
    def __init__(self, fail: bool = False):
        self.fail, self.calls = fail, []

    def put_metric_data(self, Namespace, MetricData):
        if self.fail:
            raise RuntimeError("AccessDenied")
        self.calls.append((Namespace, MetricData))


def test_a_run_inside_a_pipeline_announces_itself_by_pipeline_and_reason(monkeypatch):
    from model_code import metrics
    from model_code.training.train import announce

    monkeypatch.setenv(metrics.PIPELINE_NAME_ENV, "customer-churn-prod-training")
    client = _CloudWatch()
    assert announce("drift", client)
    ((namespace, (datum,)),) = client.calls
    assert (namespace, datum["MetricName"], datum["Value"], datum["Unit"]) == (
        "MLOps",
        "RetrainingStarted",
        1.0,
        "Count",
    )
    assert datum["Dimensions"] == [
        {"Name": "PipelineName", "Value": "customer-churn-prod-training"},
        {"Name": "TriggerReason", "Value": "drift"},
    ]


def test_outside_a_pipeline_nothing_is_announced_and_a_failure_to_publish_stops_no_training(
    monkeypatch, capsys
):
    from model_code import metrics
    from model_code.training.train import announce

    monkeypatch.delenv(metrics.PIPELINE_NAME_ENV, raising=False)
    client = _CloudWatch()
    assert not announce("manual", client) and client.calls == []
    monkeypatch.setenv(metrics.PIPELINE_NAME_ENV, "p")
    assert not announce("manual", _CloudWatch(fail=True))
    assert "could not publish RetrainingStarted: AccessDenied" in capsys.readouterr().err
