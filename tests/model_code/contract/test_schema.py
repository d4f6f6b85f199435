"""The data contract: the documented format parses; every malformed schema names its key."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml

from model_code.contract import schema, table

ISSUE_EXAMPLE = """
name: customer-churn          # kebab-case, <= 40 chars
entity_id: customer_id        # record identifier column
event_time: event_time        # optional
target:
  column: churned
  positive: 1
features:
  - name: tenure_months
    type: integral
    min: 0
    max: 120
  - name: contract
    type: string
    values: [month-to-month, one-year, two-year]
  - name: total_charges
    type: fractional
    nullable: true
"""


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(ISSUE_EXAMPLE)


def test_documented_format_is_accepted(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(ISSUE_EXAMPLE)
    s = schema.load(path)
    assert s.name == "customer-churn"
    assert s.feature_names == ["tenure_months", "contract", "total_charges"]
    assert s.feature("tenure_months").max == 120
    assert s.feature("contract").values == ("month-to-month", "one-year", "two-year")
    assert s.feature("total_charges").nullable is True
    assert s.columns == ["customer_id", "event_time", "tenure_months", "contract", "total_charges", "churned"]


def test_event_time_is_optional(raw):
    del raw["event_time"]
    assert schema.parse(raw).event_time is None


def test_example_schema_ships_and_loads():
    s = schema.load(schema.EXAMPLE_SCHEMA)
    assert s.name == "customer-churn"
    assert [e.name for e in s.engineered] == ["charges_per_month", "log_total_charges"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("name"), "name: missing"),
        (lambda r: r.update(name="Customer_Churn"), "name: expected kebab-case"),
        (lambda r: r.update(name="x" * 41), "at most 40 characters"),
        (lambda r: r.pop("entity_id"), "entity_id: missing"),
        (lambda r: r.pop("target"), "target: missing"),
        (lambda r: r["target"].pop("positive"), "target.positive: missing"),
        (lambda r: r["target"].update(positive=True), "target.positive: got the YAML boolean"),
        (lambda r: r.update(features=[]), "features: expected a non-empty list"),
        (lambda r: r["features"][0].update(type="integer"), "features[0].type: 'integer' is not one of"),
        (lambda r: r["features"][0].update(min="zero"), "features[0].min: expected a number"),
        (lambda r: r["features"][0].update(min=200), "features[0].min: 200 is greater than max 120"),
        (
            lambda r: r["features"][1].update(min=0),
            "features[1].min/max: bounds apply to integral or fractional",
        ),
        (lambda r: r["features"][1].update(values=[]), "features[1].values: expected a non-empty list"),
        (
            lambda r: r["features"][2].update(nullable="yes please"),
            "features[2].nullable: expected true or false",
        ),
        (lambda r: r["features"][2].update(colour="red"), "features[2].colour: unknown key"),
        (lambda r: r["features"][2].update(name="churned"), "features[2].name: 'churned' is used twice"),
        (lambda r: r.update(owner="me"), "owner: unknown key"),
        (
            lambda r: r.update(engineered=[{"name": "r", "op": "divide", "inputs": ["a", "b"]}]),
            "engineered[0].op: 'divide' is not one of",
        ),
        (
            lambda r: r.update(
                engineered=[{"name": "r", "op": "ratio", "inputs": ["contract", "tenure_months"]}]
            ),
            "engineered[0].inputs: 'contract' is not a numeric feature",
        ),
    ],
)
def test_malformed_schema_names_the_key(raw, mutate, message):
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(schema.SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        schema.parse(bad)


def test_load_names_the_file_on_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(schema.SchemaError, match=r"broken\.yaml: not valid YAML"):
        schema.load(path)


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(schema.SchemaError, match="schema file not found"):
        schema.load(tmp_path / "nope.yaml")


def test_read_csv_coerces_types_and_nulls_unparseable_values(tmp_path, churn_schema):
    path = tmp_path / "d.csv"
    path.write_text(
        "customer_id,tenure_months,monthly_charges,total_charges,contract,internet_service,"
        "payment_method,support_calls,senior_citizen,churned\n"
        "A1,12,50.5, ,one-year,dsl,mailed-check,1,0,1\n"
        "A2,abc,x,100,two-year,fiber,credit-card,2.5,1,0\n"
    )
    frame = table.read_csv(path, churn_schema)
    assert str(frame["tenure_months"].dtype) == "Int64"
    assert frame["monthly_charges"].dtype == "float64"
    assert frame.loc[0, "monthly_charges"] == 50.5
    # " " in a fractional column, text in numeric ones and 2.5 in an integral one become nulls
    assert pd.isna(frame.loc[0, "total_charges"])
    assert pd.isna(frame.loc[1, "tenure_months"])
    assert pd.isna(frame.loc[1, "monthly_charges"])
    assert pd.isna(frame.loc[1, "support_calls"])
    assert frame.loc[1, "contract"] == "two-year"


def test_read_csv_ignores_and_reports_unknown_columns(tmp_path, churn_schema, caplog):
    path = tmp_path / "d.csv"
    path.write_text("customer_id,favourite_colour,tenure_months\nA1,blue,3\n")
    frame = table.read_csv(path, churn_schema)
    assert "favourite_colour" not in frame.columns
    assert frame.attrs["ignored_columns"] == ["favourite_colour"]
    assert "favourite_colour" in caplog.text


def test_string_positive_class_is_matched_as_written(raw):
    raw["target"].update(positive="Yes", negative="No")
    s = schema.parse(raw)
    assert s.is_positive(pd.Series(["Yes", "no", " yes ", None])).tolist() == [True, False, True, False]


def test_load_takes_the_one_schema_in_a_folder_as_a_processing_input_mounts_it(tmp_path):
    (tmp_path / "contract.yaml").write_text(ISSUE_EXAMPLE)
    assert schema.load(tmp_path).name == "customer-churn"
    (tmp_path / "other.yaml").write_text(ISSUE_EXAMPLE)
    with pytest.raises(schema.SchemaError, match=r"expected one schema \.yaml in the folder, found 2"):
        schema.load(tmp_path)


def test_every_error_of_a_schema_is_reported_at_once(raw, tmp_path):
    bad = copy.deepcopy(raw)
    bad["name"] = "Customer_Churn"
    bad["target"].pop("positive")
    bad["features"][0]["type"] = "integer"
    bad["features"][2]["nullable"] = "yes please"
    bad["owner"] = "me"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(schema.SchemaError) as raised:
        schema.load(path)
    keys = ["owner: unknown key", "name: expected kebab-case", "target.positive: missing",
            "features[0].type: 'integer'", "features[2].nullable: expected true or false"]  # fmt: skip
    assert len(raised.value.errors) == len(keys)
    for key, error in zip(keys, raised.value.errors, strict=True):
        assert error.startswith(f"{path}: {key}"), error
    assert str(raised.value).startswith(f"{path}: 5 errors:")
