"""The inference handlers: requests checked against the data contract, predictions as in the data."""

from __future__ import annotations

import contextlib
import json
import random

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from model_code.contract import rules, schema, synthetic
from model_code.serving import inference
from model_code.serving.inference import BadRequest, UnsupportedContentType
from model_code.training.train import fit_model

JSON = "application/json"
CSV = "text/csv"

VALID = {
    "customer_id": "C0000042",
    "tenure_months": 12,
    "monthly_charges": 70.5,
    "total_charges": 846.0,
    "contract": "month-to-month",
    "internet_service": "fiber",
    "payment_method": "electronic-check",
    "support_calls": 2,
    "senior_citizen": 0,
}


@pytest.fixture(scope="module")
def model(model_dir):
    return inference.model_fn(model_dir)


@pytest.fixture(scope="module")
def records(churn_frame, churn_schema):
    """Twenty rows of the training data as JSON-ready records, with the entity id (ignored)."""
    rows = churn_frame[[churn_schema.entity_id, *churn_schema.feature_names]].head(20)
    return json.loads(rows.to_json(orient="records"))


def _json(payload) -> bytes:
    return json.dumps(payload).encode()


def _with(**changes) -> dict:
    return {**VALID, **changes}


def _bad(body, content_type, model) -> str:
    with pytest.raises(BadRequest) as info:
        inference.input_fn(body, content_type, model.schema)
    return str(info.value)


def _predict(model, body, content_type=JSON) -> list[dict]:
    data = inference.input_fn(body, content_type, model.schema)
    return inference.predict_fn(data, model)


def test_model_fn_loads_the_bundle_with_its_schema(model, churn_schema):
    assert model.schema.feature_names == churn_schema.feature_names


def test_json_batch_gives_probabilities_and_class_values(model, records):
    predictions = _predict(model, _json({"instances": records}))
    assert len(predictions) == len(records)
    assert all(0.0 <= p["probability"] <= 1.0 for p in predictions)
    assert {p["prediction"] for p in predictions} <= {0, 1}


def test_predictions_equal_the_pipeline_on_the_training_frame(model, records, churn_frame, churn_schema):
    predictions = _predict(model, _json({"instances": records}))
    expected = model.pipeline.predict_proba(churn_frame[churn_schema.feature_names].head(20))[:, 1]
    assert_allclose([p["probability"] for p in predictions], expected)


def test_prediction_is_the_positive_label_at_or_above_the_threshold(model, records):
    for p in _predict(model, _json({"instances": records})):
        expected = model.positive_label if p["probability"] >= inference.THRESHOLD else model.negative_label
        assert p["prediction"] == expected


def test_single_json_object_is_one_record(model):
    assert len(_predict(model, _json(VALID))) == 1


def test_instances_may_be_a_single_object(model):
    assert len(_predict(model, _json({"instances": VALID}))) == 1


def test_input_fn_returns_the_schema_features_in_order(model):
    data = inference.input_fn(_json(VALID), JSON, model.schema)
    assert list(data.columns) == model.schema.feature_names
    assert data["tenure_months"].dtype == np.float64


def test_input_fn_defaults_to_the_schema_of_the_loaded_model(model):
    assert list(inference.input_fn(_json(VALID), JSON).columns) == model.schema.feature_names


def test_csv_rows_match_the_json_records(model, records):
    frame = pd.DataFrame(records)[model.schema.feature_names]
    from_csv = _predict(model, frame.to_csv(index=False, header=False), CSV)
    assert from_csv == _predict(model, _json({"instances": records}))


def test_csv_header_row_equal_to_the_feature_names_is_skipped(model, records):
    frame = pd.DataFrame(records)[model.schema.feature_names]
    assert len(_predict(model, frame.to_csv(index=False), CSV)) == len(records)


def test_content_type_parameters_are_accepted(model):
    assert len(_predict(model, _json(VALID), "application/json; charset=utf-8")) == 1


def test_str_body_is_accepted(model):
    assert len(_predict(model, json.dumps(VALID))) == 1


def test_nullable_feature_accepts_null(model):
    [p] = _predict(model, _json(_with(total_charges=None)))
    assert 0.0 <= p["probability"] <= 1.0


def test_nullable_feature_accepts_an_empty_csv_field(model):
    assert len(_predict(model, "12,70.5,,month-to-month,fiber,electronic-check,2,0\n", CSV)) == 1


def test_whole_float_is_accepted_for_an_integral_feature(model):
    assert len(_predict(model, _json(_with(tenure_months=12.0)))) == 1


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({k: v for k, v in VALID.items() if k != "contract"}, "contract", "missing"),
        (_with(tenure_months="abc"), "tenure_months", "'abc' is not a number"),
        (_with(tenure_months=1.5), "tenure_months", "1.5 is not a whole number"),
        (_with(tenure_months=True), "tenure_months", "True is not a number"),
        (_with(monthly_charges="70.5"), "monthly_charges", "'70.5' is not a number"),
        (_with(contract=1), "contract", "1 is not a string"),
        (_with(support_calls=[1]), "support_calls", "[1] is not a number"),
        (_with(tenure_months=121), "tenure_months", "above the maximum 120"),
        (_with(monthly_charges=-0.01), "monthly_charges", "below the minimum 0"),
        (_with(contract="lifetime"), "contract", "'lifetime' is not one of month-to-month | one-year"),
        (_with(monthly_charges=None), "monthly_charges", "not nullable"),
        (_with(contract="  "), "contract", "not nullable"),
        (_with(monthly_charges=float("nan")), "monthly_charges", "finite"),
        (_with(monthly_charges=float("inf")), "monthly_charges", "finite"),
        (_with(total_charges=10**400), "total_charges", "out of range"),
    ],
    ids=[
        "missing",
        "text-for-integral",
        "fraction-for-integral",
        "bool-for-integral",
        "numeric-text-for-fractional",
        "number-for-string",
        "list",
        "above-max",
        "below-min",
        "not-allowed",
        "null",
        "blank-string",
        "nan",
        "infinity",
        "huge-integer",
    ],
)
def test_contract_violation_is_a_bad_request_naming_the_field(model, record, field, reason):
    message = _bad(_json(record), JSON, model)
    assert message.startswith(f"{field}: ")
    assert reason in message


def test_bad_record_in_a_batch_is_named_by_index(model):
    message = _bad(_json({"instances": [VALID, _with(contract="lifetime")]}), JSON, model)
    assert message.startswith("instances[1].contract: ")


def test_record_that_is_not_an_object_is_a_bad_request(model):
    assert _bad(_json({"instances": [VALID, [1, 2]]}), JSON, model).startswith("instances[1]: ")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"instances": [', "malformed JSON"),
        (b"[" * 100_000, "malformed JSON"),
        (b"\xff\xfe{}", "not valid utf-8"),
        (b"[1, 2]", "expected"),
        (b'{"instances": []}', "no records"),
        (b'{"instances": "x"}', "instances: expected a list"),
    ],
    ids=["truncated", "deeply-nested", "not-utf8", "array", "no-records", "instances-not-a-list"],
)
def test_malformed_json_is_a_bad_request(model, body, reason):
    assert reason in _bad(body, JSON, model)


@pytest.mark.parametrize("body", [b"", b"  \n", None], ids=["empty", "whitespace", "none"])
@pytest.mark.parametrize("content_type", [JSON, CSV])
def test_empty_body_is_a_bad_request(model, body, content_type):
    assert _bad(body, content_type, model).startswith("request body: empty")


def test_csv_with_a_wrong_number_of_columns_names_the_expected_columns(model):
    message = _bad("12,70.5,846.0\n", CSV, model)
    assert "expected 8 values (tenure_months, monthly_charges" in message
    assert message.endswith("got 3")


def test_csv_row_error_names_the_line_when_there_are_several(model):
    body = "12,70.5,846.0,one-year,dsl,credit-card,0,0\n12,70.5,846.0,one-year,dsl,credit-card,x,0\n"
    assert _bad(body, CSV, model) == "line 2: support_calls: 'x' is not a number"


def test_csv_with_an_unterminated_quote_is_a_bad_request(model):
    assert "malformed CSV" in _bad('12,70.5,846.0,"one-year,dsl,credit-card,0,0', CSV, model)


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity"])
def test_csv_non_finite_number_is_a_bad_request(model, text):
    body = f"12,{text},846.0,one-year,dsl,credit-card,0,0\n"
    assert _bad(body, CSV, model) == f"monthly_charges: {text} is not a finite number"


@pytest.mark.parametrize("text", ["1_000", "0x10", "١٢"], ids=["underscore", "hex", "arabic-digits"])
def test_csv_number_must_be_a_plain_decimal(model, text):
    body = f"{text},70.5,846.0,one-year,dsl,credit-card,0,0\n"
    assert _bad(body, CSV, model) == f"tenure_months: {text!r} is not a number"


@pytest.mark.parametrize("content_type", ["application/xml", "text/plain", "", None])
def test_unsupported_content_type_is_refused(model, content_type):
    with pytest.raises(UnsupportedContentType) as info:
        inference.input_fn(_json(VALID), content_type, model.schema)
    assert info.value.header == "Content-Type"


def test_unknown_charset_is_an_unsupported_content_type(model):
    with pytest.raises(UnsupportedContentType):
        inference.input_fn(_json(VALID), "application/json; charset=klingon", model.schema)


@pytest.mark.parametrize("accept", [None, "", "*/*", JSON, "application/json; charset=utf-8"])
def test_output_is_json_by_default(accept):
    body, content_type = inference.output_fn([{"probability": 0.25, "prediction": 0}], accept)
    assert content_type == JSON
    assert json.loads(body) == {"predictions": [{"probability": 0.25, "prediction": 0}]}


def test_output_as_csv_is_one_row_per_record_without_header():
    prediction = [{"probability": 0.25, "prediction": 0}, {"probability": 0.75, "prediction": "yes, churned"}]
    body, content_type = inference.output_fn(prediction, "text/csv")
    assert content_type == CSV
    assert body.decode() == '0.25,0\n0.75,"yes, churned"\n'


def test_accept_prefers_the_highest_quality():
    assert inference.response_type("application/json;q=0.5, text/csv") == CSV


def test_unsupported_accept_is_refused():
    with pytest.raises(UnsupportedContentType) as info:
        inference.output_fn([{"probability": 0.25, "prediction": 0}], "image/png")
    assert info.value.header == "Accept"


def test_string_class_labels_are_returned_as_in_the_data(churn_schema):
    raw = {**churn_schema.to_dict(), "target": {"column": "churned", "positive": "Yes", "negative": "No"}}
    labelled = schema.parse(raw)
    frame = synthetic.generate(600, seed=3)
    frame["churned"] = np.where(frame["churned"] == 1, "Yes", "No")
    bundle = fit_model(rules.coerce(frame, labelled), labelled, model_type="logistic")
    body = _json({"instances": json.loads(frame.head(50).to_json(orient="records"))})
    predictions = inference.predict_fn(inference.input_fn(body, JSON, labelled), bundle)
    assert {p["prediction"] for p in predictions} == {"Yes", "No"}


def test_random_bytes_only_ever_raise_bad_request(model):
    rng = random.Random(0)
    for _ in range(300):
        body = rng.randbytes(rng.randint(0, 200))
        for content_type in (JSON, CSV):
            with contextlib.suppress(BadRequest):
                inference.input_fn(body, content_type, model.schema)


def test_random_values_only_ever_raise_bad_request(model):
    rng = random.Random(1)
    candidates = [None, True, 0, -1, 7, 10**30, 1.5, float("nan"), "", " x ", "dsl", [], {}, {"a": 1}, "1e3"]
    predicted = refused = 0
    for _ in range(1000):
        # Mostly valid values, so that some records pass and reach the model.
        record = {
            name: VALID[name] if rng.random() < 0.8 else rng.choice(candidates)
            for name in model.schema.feature_names
            if rng.random() > 0.02
        }
        try:
            inference.predict_fn(inference.input_fn(_json(record), JSON, model.schema), model)
            predicted += 1
        except BadRequest:
            refused += 1
    assert predicted and refused  # both paths were exercised


def test_predictions_are_the_schemas_classes_in_one_type_per_response(model, records):
    """An artifact whose metadata recorded the negative class as 0.0 (a blank label once made
    the labels floats) still answers 0 and 1, never 1 and 0.0 in one response."""
    import dataclasses

    legacy = dataclasses.replace(model, metadata={**model.metadata, "negative_label": 0.0})
    predictions = _predict(legacy, _json({"instances": records}))
    assert {p["prediction"] for p in predictions} == {0, 1}
    assert {type(p["prediction"]) for p in predictions} == {int}
