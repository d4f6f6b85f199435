"""The scenario's data: a stratified, seeded split and drift planted generically from the schema."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from localcloud.scenario.data import as_text, drift, load, prepare, split, typed
from model_code.contract import schema as contract
from model_code.contract.synthetic import generate


@pytest.fixture(scope="module")
def churn():
    return contract.load(contract.EXAMPLE_SCHEMA), as_text(generate(1000, seed=3, dirty=0.05))


def test_the_split_keeps_the_target_mix_and_only_clean_rows_as_traffic(churn):
    schema, frame = churn
    training, traffic = split(schema, frame, traffic_share=0.2, seed=1)
    assert len(training) + len(traffic) == len(frame)
    labels = typed(schema, frame)[0][schema.target.column]
    assert traffic[schema.target.column].mean() == pytest.approx(labels.mean(), abs=0.02)
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
    assert (
        prepared.rows_in
        == len(frame)
        == len(prepared.training) + len(prepared.traffic) + len(prepared.drifted)
    )
    # The drifted traffic's outcomes are fed back as records: never the held-out traffic's ids.
    ids = prepared.schema.entity_id
    assert not set(prepared.drifted[ids]) & set(prepared.traffic[ids])


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
    dirty = frame[~typed(schema, frame)[1]]
    training, _ = split(schema, frame, traffic_share=0.2, seed=0)
    assert len(frame) == 500 and len(dirty) > 0
    assert dirty.index.isin(training.index).all()


def test_a_numeric_column_with_blank_cells_is_typed_by_the_contract_before_the_split(tmp_path, churn):
    schema, frame = churn
    # What people's files hold: a cell left blank (" ") and one empty, in a numeric column
    # that is not nullable. pandas alone read the column as text ("35.9", a string).
    text = frame.copy()
    text.loc[text.index[:2], "monthly_charges"] = [" ", None]
    path = tmp_path / "blanks.csv"
    text.to_csv(path, index=False)
    prepared = prepare(contract.EXAMPLE_SCHEMA, path, traffic_share=0.2, seed=0)
    traffic = prepared.traffic
    assert pd.api.types.is_float_dtype(traffic["monthly_charges"])
    assert pd.api.types.is_integer_dtype(traffic["tenure_months"])
    # The requests the scenario sends carry the numbers as JSON numbers.
    record = json.loads(traffic[[schema.entity_id, *schema.feature_names]].head(1).to_json(orient="records"))[
        0
    ]
    assert all(isinstance(record[f.name], int | float) for f in schema.features if f.is_numeric)
    # The blank rows keep no contract: never traffic, uploaded as the file spelled them.
    blank_ids = set(text.loc[text.index[:2], schema.entity_id])
    assert not blank_ids & set(traffic[schema.entity_id])
    uploaded = prepared.training.set_index(schema.entity_id)
    assert uploaded.loc[text.loc[text.index[0], schema.entity_id], "monthly_charges"] == " "
    assert pd.isna(uploaded.loc[text.loc[text.index[1], schema.entity_id], "monthly_charges"])


def test_a_column_none_of_whose_values_is_its_type_is_refused_naming_it(tmp_path, churn):
    _, frame = churn
    path = tmp_path / "words.csv"
    frame.assign(support_calls="n/a").to_csv(path, index=False)
    with pytest.raises(ValueError, match="--data: no value of support_calls reads as its type"):
        prepare(contract.EXAMPLE_SCHEMA, path, traffic_share=0.2, seed=0)


def test_the_synthetic_drifted_traffic_is_new_customers_whose_inputs_moved():
    prepared = prepare(None, None, rows=1000, seed=0)
    ids = prepared.schema.entity_id
    drifted, traffic = prepared.drifted, prepared.traffic
    assert len(drifted) == 100 and not set(drifted[ids]) & set(traffic[ids])
    # Generated with data drift: the inputs moved (labels follow them, as the contract's relation).
    assert drifted["tenure_months"].mean() < traffic["tenure_months"].mean() - 5
    assert (drifted["contract"] == "month-to-month").mean() > (
        traffic["contract"] == "month-to-month"
    ).mean() + 0.2
