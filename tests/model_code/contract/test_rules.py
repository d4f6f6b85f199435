"""The value contract: one verdict per value, worded with the column, the value and the rule."""

from __future__ import annotations

import pandas as pd
import pytest

from model_code.contract import rules, schema


@pytest.fixture(scope="module")
def by_name(churn_schema):
    return rules.rules(churn_schema)


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        ("total_charges", "abc", "total_charges: 'abc' is not a number"),
        ("total_charges", "1,234.50", "total_charges: '1,234.50' is not a number"),
        ("total_charges", "$600", "total_charges: '$600' is not a number"),
        ("total_charges", "NaN", "total_charges: NaN is not a finite number"),
        ("total_charges", "inf", "total_charges: inf is not a finite number"),
        ("total_charges", "1e400", "total_charges: 1e400 is not a finite number"),
        ("total_charges", "-1", "total_charges: -1 is below the minimum 0"),
        ("tenure_months", "1.5", "tenure_months: 1.5 is not a whole number"),
        ("tenure_months", "121", "tenure_months: 121 is above the maximum 120"),
        ("tenure_months", "", "tenure_months: no value (null or empty), but it is not nullable"),
        ("contract", "weekly", "contract: 'weekly' is not one of month-to-month | one-year | two-year"),
        ("churned", "yes", "churned: 'yes' is not one of 0 | 1"),
        ("churned", "0.5", "churned: 0.5 is not one of 0 | 1"),
    ],
)
def test_a_reason_names_the_column_the_value_as_it_arrived_and_the_rule(by_name, column, text, reason):
    _, why, _ = by_name[column].check_column(pd.Series([text], dtype=object))
    assert why.tolist() == [reason]


HOSTILE = ["12", " 7 ", "3.0", "1.5", "-0", "1e2", "1e400", "-inf", "NaN", "Infinity", "abc", "1,5", "$6",
           "0x10", "1_000", "", "  ", "121", "-1", "yes", "Yes", "1", "0.0", "2", "month-to-month", "fiber",
           "١٢", "1e30", "-1e19", "9223372036854775808"]  # fmt: skip


@pytest.mark.parametrize(
    "column", ["tenure_months", "total_charges", "contract", "senior_citizen", "churned"]
)
def test_a_request_and_a_file_get_the_same_verdict_for_every_value(by_name, column):
    """Serving checks one value at a time, validation a column at once: they must agree."""
    rule = by_name[column]
    typed, why, _ = rule.check_column(pd.Series(HOSTILE, dtype=object))
    for text, column_value, column_reason in zip(HOSTILE, typed, why, strict=True):
        try:
            value, reason = rule.check_text(text), None
        except rules.Invalid as exc:
            value, reason = None, f"{column}: {exc}"
        assert reason == column_reason, text
        if reason is None and value is not None and not pd.isna(value):
            assert value == column_value, text


def test_values_outside_the_bounds_keep_their_value_for_monitoring(by_name):
    typed, why, _ = by_name["tenure_months"].check_column(pd.Series(["999", "abc"], dtype=object))
    assert typed.tolist()[0] == 999 and pd.isna(typed.iloc[1])
    assert why.notna().all()


def test_labels_take_the_schemas_class_values_whatever_the_spelling(churn_schema):
    typed, why, _ = rules.Rule.of_target(churn_schema).check_column(pd.Series(["1", "0.0", "", " 1 "]))
    assert typed.dtype == "Int64"  # a blank label does not turn the classes into floats
    assert typed.tolist()[:2] == [1, 0] and pd.isna(typed.iloc[2]) and typed.iloc[3] == 1
    assert why.isna().all()


def test_string_classes_are_given_back_as_the_schema_spells_them():
    raw = {**schema.load().to_dict(), "target": {"column": "churned", "positive": "Yes", "negative": "No"}}
    rule = rules.Rule.of_target(schema.parse(raw))
    typed, why, _ = rule.check_column(pd.Series(["yes", " NO ", "maybe"]))
    assert typed.tolist()[:2] == ["Yes", "No"]
    assert why.tolist()[2] == "churned: 'maybe' is not one of No | Yes"


def test_a_string_positive_class_needs_its_negative_named():
    raw = {**schema.load().to_dict(), "target": {"column": "churned", "positive": "Yes"}}
    with pytest.raises(
        schema.SchemaError, match=r"target\.negative: missing; expected the other class value"
    ):
        schema.parse(raw)


# A contract with what the example one lacks: numeric allowed values, an integral feature with
# no maximum (bounded only by Int64), string classes. Written here, not derived from any helper.
EDGES = schema.parse(
    {
        "name": "edges",
        "entity_id": "id",
        "target": {"column": "label", "positive": "Yes", "negative": "No"},
        "features": [
            {"name": "rooms", "type": "integral", "values": [1, 2, 3]},
            {"name": "visits", "type": "integral", "min": 0},
            {"name": "ratio", "type": "fractional", "min": -1, "max": 1, "nullable": True},
        ],
    }
)
NUMBERS = [1, 2.0, 3, 4, 0, -1, 1.5, 2**63, 2**63 - 1, 2**62, -(2**63), 9.3e18, 10**400, float("inf"), -0.5]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("rooms", 4, "rooms: 4 is not one of 1 | 2 | 3"),
        ("rooms", 0, "rooms: 0 is not one of 1 | 2 | 3"),
        ("visits", -1, "visits: -1 is below the minimum 0"),
        ("visits", 2**63, "visits: 9223372036854775808 is out of range"),
        ("visits", 9.3e18, "visits: 9.3e+18 is out of range"),
        ("ratio", 1.5, "ratio: 1.5 is above the maximum 1"),
        ("ratio", -2, "ratio: -2 is below the minimum -1"),
        ("label", 1, "label: 1 is not one of No | Yes"),
    ],
)
def test_a_request_number_outside_the_contract_is_refused_naming_value_and_rule(column, value, reason):
    with pytest.raises(rules.Invalid) as refused:
        rules.rules(EDGES)[column].check_number(value)
    assert f"{column}: {refused.value}" == reason


def test_numbers_within_the_contract_come_back_typed():
    by_name = rules.rules(EDGES)
    assert by_name["rooms"].check_number(2) == 2.0
    assert by_name["visits"].check_number(2**62) == float(2**62)  # below Int64's bound: accepted
    assert by_name["ratio"].check_number(-1) == -1.0


@pytest.mark.parametrize("column", ["rooms", "visits", "ratio"])
def test_a_request_number_and_a_file_get_the_same_verdict(column):
    """JSON numbers one at a time (serving) against the same numbers as a column (a Parquet file)."""
    rule = rules.rules(EDGES)[column]
    for number in NUMBERS:
        try:
            rule.check_number(number)
            verdict = None
        except rules.Invalid as exc:
            verdict = rule.summary(exc.rule)
        try:
            values = pd.Series([number], dtype="float64")
        except OverflowError:
            continue  # no float column can hold it: a file cannot carry it
        # The rule broken, without the value (a float column shows 3 as 3.0)
        _, _, summary = rule.check_column(values)
        assert (None if pd.isna(summary.iloc[0]) else summary.iloc[0]) == verdict, number


def test_a_label_that_is_no_class_is_null_in_the_typed_column_and_named_in_the_reason():
    typed, why, summary = rules.rules(EDGES)["label"].check_column(pd.Series(["yes", "maybe", " No"]))
    assert typed.tolist()[0] == "Yes" and pd.isna(typed.iloc[1]) and typed.tolist()[2] == "No"
    assert why.tolist()[1] == "label: 'maybe' is not one of No | Yes"
    assert summary.tolist()[1] == "label: not one of No | Yes"


# -- a whole file at once: check_frame --------------------------------------------------------

TIMED = schema.parse(
    {
        "name": "timed",
        "entity_id": "id",
        "event_time": "at",
        "target": {"column": "label", "positive": 1},
        "features": [{"name": "n", "type": "integral", "min": 0}],
    }
)


def _file(rows: list[dict], index: list[int]) -> pd.DataFrame:
    """Rows as a CSV reader gives them (text), under the index a caller's frame carries."""
    return pd.DataFrame(rows, index=index, dtype=object)


def test_a_file_keeps_its_rows_index_in_the_typed_frame_and_the_reasons():
    # Quarantine maps each reason back to its row by index: a frame filtered upstream keeps its labels.
    frame = _file(
        [{"id": "a", "at": "", "n": "1", "label": "0"}, {"id": "", "at": "", "n": "x", "label": "1"}], [7, 42]
    )
    typed, checked = rules.check_frame(frame, TIMED)
    assert (
        typed.index.tolist() == [7, 42] == checked.reasons.index.tolist() == checked.summaries.index.tolist()
    )
    assert checked.reasons.loc[42, "id"] == "id: no value (null or empty), but it is not nullable"
    assert checked.reasons.loc[42, "n"] == "n: 'x' is not a number"
    assert pd.isna(checked.reasons.loc[7, "id"]) and typed.loc[7, "id"] == "a"


def test_event_times_are_read_as_iso_8601_in_utc_and_others_named():
    frame = _file(
        [
            {"id": "a", "at": "2026-01-01T02:00:00+02:00", "n": "1", "label": "1"},
            {"id": "b", "at": "yesterday", "n": "1", "label": "1"},
            {"id": "c", "at": "01/02/2026", "n": "1", "label": "1"},
        ],
        [0, 1, 2],
    )
    typed, checked = rules.check_frame(frame, TIMED)
    assert typed.loc[0, "at"] == pd.Timestamp("2026-01-01T00:00:00Z")
    assert str(typed["at"].dt.tz) == "UTC"  # one zone for the column, whatever offsets arrived
    assert checked.reasons["at"].tolist()[1:] == [
        "at: 'yesterday' is not an ISO-8601 time",
        "at: '01/02/2026' is not an ISO-8601 time",
    ]
    assert checked.summaries["at"].tolist()[1:] == ["at: not an ISO-8601 time"] * 2
    assert pd.isna(checked.reasons.loc[0, "at"])


def test_a_column_none_of_whose_values_reads_as_its_type_is_named_unparsed():
    frame = _file([{"id": "a", "n": "n/a", "label": "yes"}, {"id": "b", "n": "n/a", "label": "no"}], [0, 1])
    _, checked = rules.check_frame(frame, TIMED)
    assert checked.unparsed == ["n", "label"]
    frame.loc[1, "n"] = "3"  # one readable value: dirty rows, not a mistyped column
    assert rules.check_frame(frame, TIMED)[1].unparsed == ["label"]


# -- how a value is shown, what a request gets back -------------------------------------------


def test_a_long_value_is_shown_cut_to_forty_characters(by_name):
    forty, forty_one = "a" * 38, "b" * 39  # shown with repr's quotes: 40 and 41 characters
    _, why, _ = by_name["contract"].check_column(pd.Series([forty, forty_one], dtype=object))
    assert why.tolist() == [
        f"contract: '{'a' * 38}' is not one of month-to-month | one-year | two-year",
        f"contract: '{'b' * 36}... is not one of month-to-month | one-year | two-year",
    ]
    assert rules.show("1" * 40) == "1" * 40  # number-like text is shown bare, whole up to 40
    assert rules.show("1" * 41) == "1" * 37 + "..."


def test_a_json_integer_beyond_float_range_is_out_of_range_and_shown_cut():
    with pytest.raises(rules.Invalid) as refused:
        rules.rules(EDGES)["visits"].check_number(10**400)
    assert str(refused.value) == "1" + "0" * 36 + "... is out of range"


def test_an_empty_request_value_is_a_null_of_the_columns_type():
    rule = rules.rules(EDGES)
    assert pd.isna(rule["ratio"].check_text("")) and isinstance(rule["ratio"].check_text(" "), float)
    assert rules.Rule("note", "string", nullable=True).check_text("") is None
    with pytest.raises(rules.Invalid, match=r"^no value \(null or empty\), but it is not nullable$"):
        rule["visits"].check_text("")


def test_a_request_label_is_given_back_as_the_schema_spells_its_class(churn_schema):
    numeric = rules.Rule.of_target(churn_schema)
    assert [(v, type(v)) for v in (numeric.check_number(1.0), numeric.check_text("0.0"))] == [
        (1, int),
        (0, int),
    ]
    text = rules.rules(EDGES)["label"]
    assert [text.check_text(t) for t in ("yes", " NO ", "Yes")] == ["Yes", "No", "Yes"]
    with pytest.raises(rules.Invalid, match=r"^'maybe' is not one of No \| Yes$"):
        text.check_text("maybe")


def test_a_features_categories_match_exactly_unlike_the_targets_classes(by_name):
    """Only the target's classes are read as a person reads them; a feature's values are exact."""
    with pytest.raises(rules.Invalid, match="is not one of month-to-month"):
        by_name["contract"].check_text("Month-To-Month")
    typed, why, _ = by_name["contract"].check_column(pd.Series(["Month-To-Month", "one-year"], dtype=object))
    assert why.tolist()[0] == "contract: 'Month-To-Month' is not one of month-to-month | one-year | two-year"
    # kept as it arrived (as a number beyond its bounds is): the drift monitor sees the unknown category
    assert typed.tolist() == ["Month-To-Month", "one-year"]


def test_typed_labels_of_text_classes_are_text_and_null_where_empty_or_no_class():
    """An empty label is a row without ground truth (training leaves it out), never a class: it
    was typed as the last class, "Yes", in a file, while a request's empty label was null."""
    typed, _, _ = rules.rules(EDGES)["label"].check_column(
        pd.Series(["yes", "", None, "maybe"], dtype=object)
    )
    assert typed.dtype == "string"
    assert typed.tolist()[0] == "Yes" and typed.isna().tolist() == [False, True, True, True]
    assert rules.rules(EDGES)["label"].check_text("") is None


# -- check_frame: reasons stay on their rows ---------------------------------------------------

WORDS = schema.parse(
    {
        "name": "words",
        "entity_id": "id",
        "event_time": "at",
        "target": {"column": "label", "positive": "Yes", "negative": "No"},
        "features": [
            {"name": "colour", "type": "string", "values": ["red", "blue"]},
            {"name": "n", "type": "integral", "nullable": True},
        ],
    }
)


def test_every_kind_of_column_keeps_its_reasons_on_the_rows_of_a_filtered_frame():
    frame = _file(
        [
            {"id": "a", "at": "2026-01-01T00:00:00Z", "colour": "red", "n": "1", "label": "Yes"},
            {"id": "", "at": "soon", "colour": "green", "n": "1.5", "label": "maybe"},
        ],
        [7, 42],
    )
    _, checked = rules.check_frame(frame, WORDS)
    assert checked.reasons.loc[42].to_dict() == {
        "id": "id: no value (null or empty), but it is not nullable",
        "at": "at: 'soon' is not an ISO-8601 time",
        "label": "label: 'maybe' is not one of No | Yes",
        "colour": "colour: 'green' is not one of red | blue",
        "n": "n: 1.5 is not a whole number",
    }
    assert checked.reasons.loc[7].isna().all()
    assert checked.summaries.loc[42].to_dict() == {
        "id": "id: no value (null or empty), but it is not nullable",
        "at": "at: not an ISO-8601 time",
        "label": "label: not one of No | Yes",
        "colour": "colour: not one of red | blue",
        "n": "n: not a whole number",
    }


def test_a_time_that_is_not_iso_8601_is_named_even_when_it_comes_first():
    """The format is ISO-8601, never guessed from the first value (01/02/2026 reads two ways)."""
    frame = _file(
        [
            {"id": "a", "at": "01/02/2026", "n": "1", "label": "1"},
            {"id": "b", "at": "02/03/2026", "n": "1", "label": "1"},
        ],
        [0, 1],
    )
    typed, checked = rules.check_frame(frame, TIMED)
    assert typed["at"].isna().all()
    assert checked.reasons["at"].tolist() == [
        "at: '01/02/2026' is not an ISO-8601 time",
        "at: '02/03/2026' is not an ISO-8601 time",
    ]


def test_blank_cells_do_not_make_a_mistyped_column_look_dirty():
    """A column of "n/a" with some blank cells is still a column that never held a number."""
    nullable = schema.parse(
        {**TIMED.to_dict(), "features": [{"name": "n", "type": "integral", "nullable": True}]}
    )
    frame = _file([{"id": "a", "n": "n/a", "label": "1"}, {"id": "b", "n": " ", "label": "0"}], [0, 1])
    assert rules.check_frame(frame, nullable)[1].unparsed == ["n"]


# -- typed files (Parquet, JSON): numbers and booleans as they arrive ---------------------------


def test_numbers_from_a_typed_file_get_the_verdicts_their_text_would(by_name):
    values = pd.Series(
        [12.0, 1.5, -1.0, float("inf"), None, 121.0], index=[5, 6, 7, 8, 9, 10], dtype="float64"
    )
    typed, why, summary = by_name["tenure_months"].check_column(values)
    assert why.to_dict() == {
        5: None,
        6: "tenure_months: 1.5 is not a whole number",
        7: "tenure_months: -1.0 is below the minimum 0",
        8: "tenure_months: inf is not a finite number",
        9: "tenure_months: no value (null or empty), but it is not nullable",
        10: "tenure_months: 121.0 is above the maximum 120",
    }
    assert summary[8] == "tenure_months: not a finite number"
    # Whole numbers, out-of-bounds ones kept for monitoring; what is no whole number is null.
    assert typed.dtype == "Int64" and typed.index.tolist() == [5, 6, 7, 8, 9, 10]
    assert typed.astype(object).where(typed.notna(), None).tolist() == [12, None, -1, None, None, 121]


def test_labels_from_a_typed_file_are_the_schemas_classes(by_name):
    typed, why, _ = by_name["churned"].check_column(pd.Series([1.0, 0.0, 2.0], dtype="float64"))
    assert typed.dtype == "Int64" and typed.tolist()[:2] == [1, 0] and pd.isna(typed.iloc[2])
    assert why.tolist() == [None, None, "churned: 2.0 is not one of 0 | 1"]


def test_booleans_are_judged_as_their_text(by_name):
    """A boolean column where a count is declared is no number, as its text "True" is not."""
    _, why, _ = by_name["support_calls"].check_column(pd.Series([True, False]))
    assert why.tolist() == ["support_calls: 'True' is not a number", "support_calls: 'False' is not a number"]
    _, why, _ = by_name["contract"].check_column(pd.Series([True]))
    assert why.tolist() == ["contract: 'True' is not one of month-to-month | one-year | two-year"]


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("tenure_months", ["3", "4"]),
        ("tenure_months", [3.0, 4.0]),
        ("contract", ["one-year", "two-year"]),
        ("churned", ["1", "0"]),
    ],
    ids=["numbers-as-text", "numbers", "text", "labels"],
)
def test_a_column_all_valid_keeps_the_rows_index_in_all_three_results(by_name, column, values):
    """The quality monitor masks its label rows with these results: they must align with its index."""
    typed, why, summary = by_name[column].check_column(
        pd.Series(values, index=[40, 41], dtype=object if isinstance(values[0], str) else "float64")
    )
    assert typed.index.tolist() == why.index.tolist() == summary.index.tolist() == [40, 41]
    assert why.isna().all() and summary.isna().all()


def test_pandas_string_columns_get_the_verdicts_object_columns_get(by_name):
    """pandas 3 reads CSV text as its string dtype; the verdicts must not depend on it."""
    values = ["abc", "1.5", "7", None]
    as_object = by_name["tenure_months"].check_column(pd.Series(values, dtype=object))
    as_string = by_name["tenure_months"].check_column(pd.Series(values, dtype="string"))
    assert (
        as_string[1].tolist()
        == as_object[1].tolist()
        == [
            "tenure_months: 'abc' is not a number",
            "tenure_months: 1.5 is not a whole number",
            None,
            "tenure_months: no value (null or empty), but it is not nullable",
        ]
    )


def test_a_valid_file_and_a_file_without_schema_columns_keep_their_rows():
    """Validation counts rows from these frames: every row of the file is in them."""
    valid = _file([{"id": "a", "n": "1", "label": "0"}, {"id": "b", "n": "2", "label": "1"}], [7, 42])
    typed, checked = rules.check_frame(valid, TIMED)
    assert (
        typed.index.tolist() == checked.reasons.index.tolist() == checked.summaries.index.tolist() == [7, 42]
    )
    assert checked.reasons.empty and checked.unparsed == []
    unrelated = _file([{"colour": "red"}, {"colour": "blue"}], [3, 4])
    typed, checked = rules.check_frame(unrelated, TIMED)
    assert typed.index.tolist() == checked.reasons.index.tolist() == [3, 4]
    assert list(typed.columns) == []
