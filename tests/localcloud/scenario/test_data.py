"""The scenario's data: a stratified, seeded split and drift planted generically from the schema."""

from __future__ import annotations

import pytest

from localcloud.scenario.data import _clean, drift, load, prepare, split
from model_code.contract import schema as contract
from model_code.contract.synthetic import generate


@pytest.fixture(scope="module")
def churn():
    return contract.load(contract.EXAMPLE_SCHEMA), generate(1000, seed=3, dirty=0.05)


def test_the_split_keeps_the_target_mix_and_only_clean_rows_as_traffic(churn):
    schema, frame = churn
    training, traffic = split(schema, frame, traffic_share=0.2, seed=1)
    assert len(training) + len(traffic) == len(frame)
    assert traffic[schema.target.column].mean() == pytest.approx(frame[schema.target.column].mean(), abs=0.02)
    assert traffic["tenure_months"].between(0, 120).all()
    assert set(traffic["contract"]) <= {"month-to-month", "one-year", "two-year"}


def test_the_split_is_repeatable_with_its_seed(churn):
    schema, frame = churn
    first = split(schema, frame, traffic_share=0.2, seed=1)[1]
    assert first.index.equals(split(schema, frame, traffic_share=0.2, seed=1)[1].index)
    assert not first.index.equals(split(schema, frame, traffic_share=0.2, seed=2)[1].index)


def test_drift_shifts_numeric_features_within_limits_and_tilts_a_categorical_mix(churn):
    schema, frame = churn
    traffic = split(schema, frame, traffic_share=0.3, seed=0)[1]
    drifted = drift(schema, traffic)
    assert (
        drifted["monthly_charges"].mean()
        > traffic["monthly_charges"].mean() + traffic["monthly_charges"].std()
    )
    assert drifted["tenure_months"].max() <= 120
    before = traffic["contract"].value_counts(normalize=True)
    after = drifted["contract"].value_counts(normalize=True)
    rarest = before.idxmin()
    assert after[rarest] > before[rarest] + 0.3


def test_rows_in_counts_every_row_of_the_file(tmp_path, churn):
    _, frame = churn
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    prepared = prepare(contract.EXAMPLE_SCHEMA, path, traffic_share=0.2, seed=0)
    assert prepared.rows_in == len(frame) == len(prepared.training) + len(prepared.traffic)


def test_a_csv_missing_a_schema_column_is_refused_naming_it(tmp_path, churn):
    _, frame = churn
    path = tmp_path / "data.csv"
    frame.drop(columns=["support_calls"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"--data: columns \['support_calls'\]"):
        load(contract.EXAMPLE_SCHEMA, path, rows=0, seed=0)


def test_a_schema_without_data_is_refused():
    with pytest.raises(ValueError, match="--data: a CSV is needed with --schema"):
        load(contract.EXAMPLE_SCHEMA, None, rows=10, seed=0)


def test_the_synthetic_default_has_dirty_rows_and_all_of_them_are_uploaded():
    schema, _, frame = load(None, None, rows=500, seed=0)
    dirty = frame[~_clean(schema, frame)]
    training, _ = split(schema, frame, traffic_share=0.2, seed=0)
    assert len(frame) == 500 and len(dirty) > 0
    assert dirty.index.isin(training.index).all()
