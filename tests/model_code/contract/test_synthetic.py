"""The synthetic churn generator: seeded, contract-conforming, with drift knobs that bite."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest

from mlops.cli import main as mlops
from model_code.contract import rules, synthetic


def test_same_seed_same_data():
    pd.testing.assert_frame_equal(synthetic.generate(500, seed=3), synthetic.generate(500, seed=3))


def test_clean_data_follows_the_example_contract(churn_schema):
    frame = rules.coerce(synthetic.generate(2000, seed=1), churn_schema)
    for feature in churn_schema.features:
        col = frame[feature.name]
        if feature.min is not None:
            assert col.min() >= feature.min, feature.name
        if feature.max is not None:
            assert col.max() <= feature.max, feature.name
        if feature.values is not None:
            assert set(col.dropna()) <= set(feature.values), feature.name
        if not feature.nullable:
            assert col.notna().all(), feature.name
    assert set(frame["churned"]) == {0, 1}


def test_data_drift_moves_the_category_mix():
    before = synthetic.generate(5000, seed=1)["contract"].value_counts(normalize=True)
    after = synthetic.generate(5000, seed=1, data_drift=1.0)["contract"].value_counts(normalize=True)
    assert after["month-to-month"] > before["month-to-month"] + 0.2


def test_knobs_outside_unit_interval_are_rejected():
    with pytest.raises(ValueError, match="concept_drift: expected a value in \\[0, 1\\], got 2"):
        synthetic.generate(10, concept_drift=2)


def test_generate_data_command_writes_csv(tmp_path, capsys):
    out = tmp_path / "d.csv"
    assert mlops(["generate-data", "--rows", "50", "--seed", "2", "--output", str(out)]) == 0
    assert len(pd.read_csv(out)) == 50
    assert "wrote 50 rows" in capsys.readouterr().out


def test_readme_generate_data_example_runs(tmp_path):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith(".venv/bin/mlops generate-data"))
    args = shlex.split(line)[1:]
    args[args.index("-o") + 1] = str(tmp_path / "customers.csv")
    assert mlops(args) == 0
    frame = pd.read_csv(tmp_path / "customers.csv")
    assert len(frame) == 5000
