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
    assert [(e.name, e.op, e.inputs) for e in s.engineered] == [
        ("charges_per_month", "ratio", ("total_charges", "tenure_months")),
        ("log_total_charges", "log1p", ("total_charges",)),
    ]


KNOWN_TOP = "description, engineered, entity_id, event_time, features, name, target"
FEATURE_KEYS = "name, type, min, max, values, nullable, drift"
QUOTE_IT = 'quote the value as it appears in the data, e.g. "Yes"'


def _engineered(**entry):
    return lambda r: r.update(
        engineered=[{"name": "r", "op": "ratio", "inputs": ["total_charges", "tenure_months"]} | entry]
    )


def _drift(value):
    return lambda r: r["features"][0].update(drift=value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("name"), "name: missing; expected a kebab-case name of at most 40 characters"),
        (
            lambda r: r.update(name="Customer_Churn"),
            "name: expected kebab-case (a-z, 0-9, '-') of at most 40 characters, got 'Customer_Churn'",
        ),
        (
            lambda r: r.update(name="x" * 41),
            f"name: expected kebab-case (a-z, 0-9, '-') of at most 40 characters, got '{'x' * 41}'",
        ),
        (lambda r: r.pop("entity_id"), "entity_id: missing; expected the record identifier column"),
        (
            lambda r: r.update(entity_id="customer id"),
            "entity_id: expected a column name (letters, digits, underscore), got 'customer id'",
        ),
        (
            lambda r: r.update(event_time="when?"),
            "event_time: expected a column name (letters, digits, underscore), got 'when?'",
        ),
        (
            lambda r: r.update(entity_id="churned"),
            "entity_id, event_time and target.column must name different columns",
        ),
        (lambda r: r.pop("target"), "target: missing; expected a mapping with column and positive"),
        (
            lambda r: r.update(target="churned"),
            "target: expected a mapping with column and positive, got 'churned'",
        ),
        (
            lambda r: r["target"].update(weight=2),
            "target.weight: unknown key; expected column, positive, negative",
        ),
        (lambda r: r["target"].pop("column"), "target.column: missing; expected the label column"),
        (
            lambda r: r["target"].update(column="churned?"),
            "target.column: expected a column name (letters, digits, underscore), got 'churned?'",
        ),
        (
            lambda r: r["target"].pop("positive"),
            "target.positive: missing; expected the positive class value (a number or a string)",
        ),
        (
            lambda r: r["target"].update(positive=True),
            f"target.positive: got the YAML boolean True; {QUOTE_IT}",
        ),
        (
            lambda r: r["target"].update(positive=[1]),
            "target.positive: expected a number or a string, got [1]",
        ),
        (
            lambda r: r["target"].update(positive=2),
            "target.negative: missing; expected the other class value as the data spells it "
            "(it may be left out only when positive is 1, the negative then being 0)",
        ),
        (
            lambda r: r["target"].update(positive="Yes"),
            "target.negative: missing; expected the other class value as the data spells it "
            "(it may be left out only when positive is 1, the negative then being 0)",
        ),
        (
            lambda r: r["target"].update(negative=False),
            f"target.negative: got the YAML boolean False; {QUOTE_IT}",
        ),
        (
            lambda r: r["target"].update(positive="Yes", negative=0),
            "target.negative: expected a str like positive, got 0",
        ),
        (
            lambda r: r["target"].update(positive="Yes", negative=" yes"),
            "target.negative: ' yes' is the positive class too",
        ),
        (lambda r: r["target"].update(negative=1.0), "target.negative: 1.0 is the positive class too"),
        (lambda r: r.pop("features"), "features: missing; expected a non-empty list of features"),
        (lambda r: r.update(features=[]), "features: expected a non-empty list of features, got []"),
        (
            lambda r: r["features"].__setitem__(0, "tenure_months"),
            "features[0]: expected a mapping with name and type, got 'tenure_months'",
        ),
        (
            lambda r: r["features"][2].update(colour="red"),
            f"features[2].colour: unknown key; expected {FEATURE_KEYS}",
        ),
        (lambda r: r["features"][0].pop("name"), "features[0].name: missing; expected a column name"),
        (
            lambda r: r["features"][0].update(name="tenure months"),
            "features[0].name: expected a column name (letters, digits, underscore), got 'tenure months'",
        ),
        (
            lambda r: r["features"][0].pop("type"),
            "features[0].type: missing; expected integral | fractional | string",
        ),
        (
            lambda r: r["features"][0].update(type="integer"),
            "features[0].type: 'integer' is not one of integral | fractional | string",
        ),
        (lambda r: r["features"][0].update(min="zero"), "features[0].min: expected a number, got 'zero'"),
        (lambda r: r["features"][0].update(max=True), "features[0].max: expected a number, got True"),
        (lambda r: r["features"][0].update(min=200), "features[0].min: 200 is greater than max 120"),
        (
            lambda r: r["features"][1].update(min=0),
            "features[1].min/max: bounds apply to integral or fractional features, not string",
        ),
        (
            lambda r: r["features"][1].update(values=[]),
            "features[1].values: expected a non-empty list of allowed values, got []",
        ),
        (
            lambda r: r["features"][1].update(values=["yes", True]),
            f"features[1].values: got the YAML boolean True; {QUOTE_IT}",
        ),
        (
            lambda r: r["features"][1].update(values=["one-year", "one-year"]),
            "features[1].values: duplicate allowed values in ['one-year', 'one-year']",
        ),
        (
            lambda r: r["features"][0].update(values=[1, "two"]),
            "features[0].values: expected a number, got 'two'",
        ),
        (
            lambda r: r["features"][2].update(nullable="yes please"),
            "features[2].nullable: expected true or false, got 'yes please'",
        ),
        (_drift(0.1), "features[0].drift: expected a mapping with psi and/or p_value, got 0.1"),
        (_drift({}), "features[0].drift: expected a mapping with psi and/or p_value, got {}"),
        (
            _drift({"psi": 0.1, "pvalue": 0.01, "ks": 1}),
            "features[0].drift.ks: unknown key; expected psi, p_value",
        ),
        (_drift({"psi": 0}), "features[0].drift.psi: expected a number > 0, got 0"),
        (_drift({"psi": "high"}), "features[0].drift.psi: expected a number, got 'high'"),
        (_drift({"p_value": 1}), "features[0].drift.p_value: expected a number between 0 and 1, got 1"),
        (_drift({"p_value": 0}), "features[0].drift.p_value: expected a number between 0 and 1, got 0"),
        (_drift({"p_value": "low"}), "features[0].drift.p_value: expected a number, got 'low'"),
        (
            lambda r: r["features"][2].update(name="churned"),
            "features[2].name: 'churned' is used twice in the schema",
        ),
        (lambda r: r.update(owner="me"), f"owner: unknown key; expected one of {KNOWN_TOP}"),
        (lambda r: r.update(engineered="ratio"), "engineered: expected a list, got 'ratio'"),
        (
            lambda r: r.update(engineered=["ratio"]),
            "engineered[0]: expected a mapping with name, op and inputs, got 'ratio'",
        ),
        (_engineered(name=None), "engineered[0].name: missing; expected a column name"),
        (
            _engineered(op=None),
            "engineered[0].op: missing; expected ratio | product | difference | sum | log1p",
        ),
        (
            _engineered(op="divide"),
            "engineered[0].op: 'divide' is not one of ratio | product | difference | sum | log1p",
        ),
        (
            _engineered(inputs=None),
            "engineered[0].inputs: missing; expected a list of 2 numeric feature names",
        ),
        (
            _engineered(inputs=["total_charges"]),
            "engineered[0].inputs: ratio takes 2 numeric feature names, got ['total_charges']",
        ),
        # a text of as many characters as the operation takes inputs is still no list
        (
            _engineered(op="log1p", inputs="t"),
            "engineered[0].inputs: log1p takes 1 numeric feature names, got 't'",
        ),
        (
            _engineered(inputs=["contract", "tenure_months"]),
            "engineered[0].inputs: 'contract' is not a numeric feature of this schema",
        ),
        (
            _engineered(name="tenure_months"),
            "engineered[0].name: 'tenure_months' is used twice in the schema",
        ),
        (
            lambda r: r.update(engineered=[{"name": "r", "op": "log1p", "inputs": ["total_charges"]}] * 2),
            "engineered[1].name: 'r' is used twice in the schema",
        ),
    ],
)
def test_malformed_schema_gets_one_error_naming_the_key_and_what_was_expected(raw, mutate, message):
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(schema.SchemaError) as raised:
        schema.parse(bad)
    assert str(raised.value) == message
    assert raised.value.errors == [message]


def test_a_schema_that_is_no_mapping_names_what_it_is():
    with pytest.raises(schema.SchemaError) as raised:
        schema.parse(["name", "customer-churn"])
    assert str(raised.value) == "schema: expected a mapping at the top level, got list"


def test_optional_keys_are_read(raw):
    raw["description"] = "customers and whether they left"
    raw["features"][0].update(description="months as a customer", drift={"psi": 0.25, "p_value": 0.01})
    raw["features"][1].update(drift={"p_value": 0.05})
    parsed = schema.parse(raw)
    tenure, contract = parsed.feature("tenure_months"), parsed.feature("contract")
    assert (tenure.drift_psi, tenure.drift_p_value) == (0.25, 0.01)
    assert (contract.drift_psi, contract.drift_p_value) == (None, 0.05)
    assert parsed.to_dict()["description"] == "customers and whether they left"


def test_a_string_feature_allows_its_values_as_the_data_spells_them(raw):
    """YAML reads ``[1, 2]`` as numbers; a string column holds them as text."""
    raw["features"][1]["values"] = [1, 2, "three"]
    assert schema.parse(raw).feature("contract").values == ("1", "2", "three")


@pytest.mark.parametrize(("positive", "negative"), [(1, 0), (1.0, 0.0)])
def test_the_negative_class_defaults_to_zero_of_the_positive_class_type(raw, positive, negative):
    raw["target"]["positive"] = positive
    target = schema.parse(raw).target
    assert target.classes == (negative, positive)
    assert type(target.negative) is type(positive)


def test_numeric_labels_match_as_numbers_and_text_never_matches(raw):
    s = schema.parse(raw)
    labels = pd.Series(["1", "1.0", " 1", "yes", None, "0", 1])
    assert s.is_positive(labels).tolist() == [True, True, True, False, False, False, True]
    assert labels[s.is_positive(labels)].tolist() == ["1", "1.0", " 1", 1]  # a mask to select rows by


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


def test_the_limits_themselves_are_allowed(raw):
    """A name of exactly 40 characters, and a feature whose min equals its max (a constant)."""
    raw["name"] = "c" * 40
    raw["features"][0].update(min=3, max=3)
    parsed = schema.parse(raw)
    assert (parsed.name, parsed.feature("tenure_months").min, parsed.feature("tenure_months").max) == (
        "c" * 40,
        3,
        3,
    )


def test_a_numeric_feature_keeps_its_allowed_values_as_numbers(raw):
    raw["features"][0]["values"] = [0, 12, 24]
    assert schema.parse(raw).feature("tenure_months").values == (0, 12, 24)


def test_a_folder_holding_one_yml_file_is_read(tmp_path):
    (tmp_path / "contract.yml").write_text(ISSUE_EXAMPLE)
    assert schema.load(tmp_path).name == "customer-churn"


def test_several_errors_are_listed_one_a_line_under_their_count(raw):
    raw.pop("entity_id")
    raw["owner"] = "me"
    with pytest.raises(schema.SchemaError) as raised:
        schema.parse(raw)
    assert str(raised.value) == (
        "2 errors:\n"
        f"  owner: unknown key; expected one of {KNOWN_TOP}\n"
        "  entity_id: missing; expected the record identifier column"
    )


def test_a_missing_label_is_never_the_positive_class(raw):
    s = schema.parse(raw)
    typed = pd.Series([1, None, 0], dtype="Int64")
    assert s.is_positive(typed).tolist() == [True, False, False]
    raw["target"].update(positive="Yes", negative="No")
    text = pd.Series(["yes", None, "No"])
    assert text[schema.parse(raw).is_positive(text)].tolist() == ["yes"]
