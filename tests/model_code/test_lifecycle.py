"""`make local`: the whole lifecycle on this machine, as the README's first command runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    env = {**os.environ, "MLOPS_STATE_DIR": str(state), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        ["make", "--no-print-directory", "local"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, state


def test_make_local_prints_a_summary_of_every_step(local_run):
    out, _ = local_run
    assert "MLOps lifecycle on this machine" in out
    for step in (
        "ValidateData",
        "TrainModel",
        "EvaluateModel",
        "Serve and capture traffic",
        "CheckDrift",
        "CheckQuality",
    ):
        assert step in out


def test_validation_loses_no_row(local_run):
    _, state = local_run
    report = json.loads((state / "local" / "validate" / "report" / "validation.json").read_text())
    assert report["rows_in"] == report["rows_accepted"] + report["rows_quarantined"] == 5000
    assert report["rows_quarantined"] == 100  # the 2% planted by the generator


def test_served_traffic_drift_is_found(local_run):
    _, state = local_run
    summary = {s["step"]: s["outcome"] for s in json.loads((state / "local" / "summary.json").read_text())}
    for feature in ("contract", "internet_service", "monthly_charges", "tenure_months", "prediction"):
        assert feature in summary["CheckDrift"]
    assert "payment_method" not in summary["CheckDrift"]
    assert "{200: 16, 400: 1, 415: 1}" in summary["Serve and capture traffic"]


def test_concept_drift_shows_as_lower_live_quality(local_run):
    _, state = local_run
    evaluation = json.loads((state / "local" / "evaluation" / "evaluation.json").read_text())
    quality = json.loads((state / "local" / "quality.json").read_text())
    assert quality["metrics"]["auc"] < evaluation["binary_classification_metrics"]["auc"]["value"] - 0.05


def test_the_training_run_is_tracked(local_run):
    _, state = local_run
    assert (state / "mlflow.db").exists()
