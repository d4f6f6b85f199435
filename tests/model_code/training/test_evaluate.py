"""The evaluation step: a property file the pipeline's condition reads, and a gate that says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_code.contract import synthetic
from model_code.training import artifact, evaluate, train


@pytest.fixture(autouse=True)
def failure_file(tmp_path, monkeypatch) -> Path:
    """Where a processing step's reason goes: its /opt/ml/output/message."""
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml" / "output" / "message"


@pytest.fixture(scope="module")
def test_dir(tmp_path_factory) -> Path:
    """A held-out split the session's model never saw (another seed)."""
    path = tmp_path_factory.mktemp("test")
    synthetic.generate(800, seed=21).to_csv(path / "test.csv", index=False)
    return path


@pytest.fixture(scope="module")
def baseline(model_dir, test_dir) -> dict:
    """The session model's evaluation with no champion and the default bar."""
    bundle = artifact.load(model_dir)
    frame = evaluate.read_channel(test_dir, bundle.schema)
    return evaluate.evaluate_model(bundle, frame, min_auc=0.7, max_regression=0.01)


def json_get(document: dict, path: str):
    """What a SageMaker JsonGet on a property file returns for a dotted path."""
    for key in path.split("."):
        document = document[key]
    return document


def run(tmp_path: Path, model_dir, test_dir, *extra: str) -> dict:
    out = tmp_path / "evaluation"
    code = evaluate.main(
        ["--model-dir", str(model_dir), "--test-dir", str(test_dir), "--output-dir", str(out), *extra]
    )
    assert code == 0
    return json.loads((out / "evaluation.json").read_text())


def champion_file(tmp_path: Path, auc: float) -> Path:
    path = tmp_path / "champion" / "evaluation.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"binary_classification_metrics": {"auc": {"value": auc}}}))
    return path


def test_evaluation_json_has_the_paths_the_condition_step_reads(tmp_path, model_dir, test_dir):
    report = run(tmp_path, model_dir, test_dir)
    assert 0.7 < json_get(report, "binary_classification_metrics.auc.value") <= 1.0
    assert json_get(report, "decision.passed") is True
    assert json_get(report, "decision.failed_metric") is None


def test_evaluation_json_has_every_quality_metric_in_model_quality_shape(baseline):
    metrics = baseline["binary_classification_metrics"]
    expected = {"auc", "pr_auc", "f1", "precision", "recall", "log_loss", "calibration_error", "accuracy"}
    assert expected <= set(metrics)
    assert all(m["standard_deviation"] == "NaN" and isinstance(m["value"], float) for m in metrics.values())


def test_no_champion_passes_when_auc_reaches_min_auc(baseline):
    assert baseline["champion"] is None
    assert baseline["decision"]["passed"] is True
    assert baseline["decision"]["reasons"] == []


@pytest.mark.parametrize("min_auc", ["1.01", "0.999"])
def test_impossible_min_auc_fails_on_auc_with_a_reason_naming_it(tmp_path, model_dir, test_dir, min_auc):
    decision = run(tmp_path, model_dir, test_dir, "--min-auc", min_auc)["decision"]
    assert decision["passed"] is False
    assert decision["failed_metric"] == "auc"
    assert any("min_auc" in reason and "auc" in reason for reason in decision["reasons"])


def test_champion_better_by_more_than_max_regression_fails(tmp_path, model_dir, test_dir, baseline):
    auc = baseline["binary_classification_metrics"]["auc"]["value"]
    champion = champion_file(tmp_path, auc + 0.02)
    report = run(tmp_path, model_dir, test_dir, "--champion", str(champion), "--max-regression", "0.01")
    assert report["decision"]["passed"] is False
    assert report["decision"]["failed_metric"] == "auc"
    assert any("champion" in reason for reason in report["decision"]["reasons"])


def test_champion_better_by_less_than_max_regression_passes(tmp_path, model_dir, test_dir, baseline):
    auc = baseline["binary_classification_metrics"]["auc"]["value"]
    champion = champion_file(tmp_path, auc + 0.005)
    report = run(tmp_path, model_dir, test_dir, "--champion", str(champion.parent))
    assert report["decision"]["passed"] is True
    assert report["champion"]["auc"] == pytest.approx(auc + 0.005)


def test_champion_model_is_scored_on_the_same_test_rows(tmp_path, model_dir, test_dir, baseline):
    report = run(tmp_path, model_dir, test_dir, "--champion", str(model_dir), "--max-regression", "0")
    # The same model as champion: equal AUCs, so it passes even with no regression allowed.
    assert report["champion"]["auc"] == baseline["binary_classification_metrics"]["auc"]["value"]
    assert report["decision"]["passed"] is True


def test_empty_champion_folder_means_no_champion_yet(tmp_path, model_dir, test_dir):
    (tmp_path / "champion").mkdir()
    report = run(tmp_path, model_dir, test_dir, "--champion", str(tmp_path / "champion"))
    assert report["champion"] is None


def test_failed_decision_still_exits_0_for_the_condition_step(tmp_path, model_dir, test_dir, failure_file):
    report = run(tmp_path, model_dir, test_dir, "--min-auc", "1.01")
    assert report["decision"]["passed"] is False
    assert not failure_file.exists()


def test_sagemaker_model_tar_gz_is_evaluated(tmp_path, model_dir, test_dir, baseline):
    packed = tmp_path / "packed"
    packed.mkdir()
    artifact.pack(model_dir, packed / "model.tar.gz")
    report = run(tmp_path, packed, test_dir)
    assert report["binary_classification_metrics"] == baseline["binary_classification_metrics"]


def test_no_test_rows_fails_the_step_with_the_reason(tmp_path, model_dir, test_dir, failure_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "test.csv").write_text((test_dir / "test.csv").read_text().splitlines()[0] + "\n")
    code = evaluate.main(
        ["--model-dir", str(model_dir), "--test-dir", str(empty), "--output-dir", str(tmp_path)]
    )
    assert code == 1
    assert "no rows" in failure_file.read_text()


def test_test_data_without_the_target_fails_naming_it(tmp_path, model_dir, failure_file):
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    synthetic.generate(50, seed=2).drop(columns="churned").to_csv(unlabelled / "t.csv", index=False)
    code = evaluate.main(
        ["--model-dir", str(model_dir), "--test-dir", str(unlabelled), "--output-dir", str(tmp_path)]
    )
    assert code == 1
    assert "churned" in failure_file.read_text()


def test_missing_model_fails_the_step(tmp_path, test_dir, failure_file):
    missing = tmp_path / "nowhere"
    code = evaluate.main(
        ["--model-dir", str(missing), "--test-dir", str(test_dir), "--output-dir", str(tmp_path)]
    )
    assert code == 1
    assert "model.tar.gz" in failure_file.read_text()


def test_report_names_the_model_it_judged(baseline, model_dir):
    meta = artifact.load(model_dir).metadata
    assert baseline["model"]["params"] == meta["params"]
    assert baseline["test_data"]["rows"] == 800


def test_champion_copied_from_a_previous_evaluation_round_trips(tmp_path, model_dir, test_dir):
    first = run(tmp_path / "one", model_dir, test_dir)
    champion = tmp_path / "champ"
    champion.mkdir()
    shutil.copy(tmp_path / "one" / "evaluation" / "evaluation.json", champion)
    second = run(tmp_path / "two", model_dir, test_dir, "--champion", str(champion))
    assert second["champion"]["auc"] == first["binary_classification_metrics"]["auc"]["value"]
    assert second["decision"]["passed"] is True


# -- the drift baseline and the registry's champion (the training pipeline's EvaluateModel) --


def test_the_drift_baseline_describes_the_training_rows_and_the_models_predictions(
    tmp_path, model_dir, test_dir, churn_csv
):
    from model_code.monitoring import drift

    run(
        tmp_path,
        model_dir,
        test_dir,
        "--train-dir",
        str(Path(churn_csv).parent),
        "--baseline-dir",
        str(tmp_path / "b"),
    )
    baseline = drift.Baseline.from_dict(json.loads((tmp_path / "b" / "baseline.json").read_text()))
    assert baseline.reference.rows == 4000
    assert drift.PREDICTION_COLUMN in baseline.bins
    assert set(artifact.load(model_dir).schema.feature_names) <= set(baseline.bins)


def test_train_dir_without_baseline_dir_is_a_usage_error(tmp_path, model_dir, test_dir, churn_csv):
    with pytest.raises(SystemExit) as exited:
        evaluate.main(["--model-dir", str(model_dir), "--test-dir", str(test_dir), "--train-dir", churn_csv])
    assert exited.value.code == 2


@pytest.fixture
def registry(monkeypatch):
    """An emulated registry (and S3 for the champion's evaluation.json) in this process."""
    import boto3
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="customer-churn")
        boto3.client("s3").create_bucket(
            Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield


def approve_champion(auc: float | None, model_data_url: str | None = None) -> str:
    import boto3

    metrics = {}
    container = {"Image": "000000000000.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    if auc is not None:
        boto3.client("s3").put_object(
            Bucket="artifacts",
            Key="champion/evaluation.json",
            Body=json.dumps({"binary_classification_metrics": {"auc": {"value": auc}}}).encode(),
        )
        source = {"ContentType": "application/json", "S3Uri": "s3://artifacts/champion/evaluation.json"}
        metrics["ModelMetrics"] = {"ModelQuality": {"Statistics": source}}
    return boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName="customer-churn",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [container],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        **metrics,
    )["ModelPackageArn"]


def test_the_registrys_approved_champion_is_the_bar(tmp_path, model_dir, test_dir, baseline, registry):
    auc = baseline["binary_classification_metrics"]["auc"]["value"]
    arn = approve_champion(auc + 0.05)
    report = run(tmp_path, model_dir, test_dir, "--model-package-group", "customer-churn")
    assert report["decision"]["passed"] is False
    assert "champion" in report["decision"]["reason"]
    assert report["champion"]["source"].startswith(arn)


def test_a_group_with_no_approved_model_means_no_champion(tmp_path, model_dir, test_dir, registry):
    report = run(tmp_path, model_dir, test_dir, "--model-package-group", "customer-churn")
    assert report["champion"] is None
    assert report["decision"]["passed"] is True


def test_an_approved_champion_is_scored_on_the_same_rows_not_by_its_stored_auc(
    tmp_path, model_dir, test_dir, baseline, registry
):
    import boto3

    # A champion whose stored AUC is far above the challenger's, but which predicts noise here.
    rows = synthetic.generate(400, seed=21)
    rows["churned"] = np.random.default_rng(0).permutation(rows["churned"].to_numpy())
    schema = artifact.load(model_dir).schema
    stale = train.fit_model(rows, schema, model_type="logistic")
    artifact.pack(artifact.save(tmp_path / "champion", stale), tmp_path / "model.tar.gz")
    boto3.client("s3").upload_file(str(tmp_path / "model.tar.gz"), "artifacts", "champion/model.tar.gz")
    arn = approve_champion(0.95, "s3://artifacts/champion/model.tar.gz")

    report = run(tmp_path, model_dir, test_dir, "--model-package-group", "customer-churn")

    challenger = report["binary_classification_metrics"]["auc"]["value"]
    assert report["champion"]["scored_on"] == "the challenger's test rows"
    assert report["champion"]["auc"] < challenger
    assert report["champion"]["stored_auc"] == 0.95
    assert report["decision"]["passed"] is True
    assert report["decision"]["champion_auc"] == report["champion"]["auc"]
    assert report["champion"]["source"].startswith(arn)
    assert report["registry"]["ChampionAuc"] == f"{report['champion']['auc']:.4f}"
    assert report["registry"]["ChampionStoredAuc"] == "0.9500"


def test_an_approved_champion_without_a_model_or_an_evaluation_fails_the_step(
    tmp_path, model_dir, test_dir, registry, failure_file
):
    arn = approve_champion(None)
    args = ["--model-dir", str(model_dir), "--test-dir", str(test_dir), "--output-dir", str(tmp_path)]
    code = evaluate.main([*args, "--model-package-group", "customer-churn"])
    assert code == 1
    assert f"champion {arn}: neither a ModelDataUrl to score nor an evaluation" in failure_file.read_text()


def test_the_decision_says_why_in_one_line(baseline):
    assert baseline["decision"]["reason"] == ""
    decision = evaluate.decide(0.6, champion_auc=None, min_auc=0.7, max_regression=0.01)
    assert decision["reason"] == "auc 0.6000 is below min_auc 0.7000"
