"""The Great Expectations suite the data contract implies, and running it on a typed frame.

The suite checks the table: each column the schema names exists with its declared type, the
entity id is present and unique, the target present (its two classes are the value rules'), the
event time parses; the features' bounds, allowed values and nullability are restated as
expectations, as a second opinion on ``model_code.contract.rules``, whose words the quarantine
uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from model_code.contract.schema import Schema

if TYPE_CHECKING:
    import great_expectations as gx

DUPLICATE_RULE = "duplicate id (the first row with it is kept)"
# ExpectColumnValuesToBeOfType compares a pandas column's scalar type with these names:
# Int64 and int64 columns hold numpy int64, pandas 3 string columns hold str, and a
# timezone-aware datetime column holds Timestamp.
GX_TYPES = {"integral": "int64", "fractional": "float64", "string": "str", "time": "Timestamp"}
# The pandas dtype of a feature's column once the value rules have typed it.
PANDAS_TYPES = {"integral": "Int64", "fractional": "float64", "string": "string"}


def build_suite(schema: Schema) -> gx.ExpectationSuite:
    """The Great Expectations suite the schema implies, named ``<schema name>-contract``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list[gxe.Expectation] = []
    add = expectations.append

    def column(name: str, type_: str | None, *, nullable: bool = False) -> None:
        add(gxe.ExpectColumnToExist(column=name))
        if type_:
            add(gxe.ExpectColumnValuesToBeOfType(column=name, type_=type_))
        if not nullable:
            add(gxe.ExpectColumnValuesToNotBeNull(column=name))

    column(schema.entity_id, GX_TYPES["string"])
    add(gxe.ExpectColumnValuesToBeUnique(column=schema.entity_id))
    if schema.event_time:
        # Coercion turns an unparseable time into a null, so "not null" means "parses".
        column(schema.event_time, GX_TYPES["time"])
    for f in schema.features:
        column(f.name, GX_TYPES[f.type], nullable=f.nullable)
        if f.min is not None or f.max is not None:
            add(gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min, max_value=f.max))
        if f.values is not None:
            add(gxe.ExpectColumnValuesToBeInSet(column=f.name, value_set=list(f.values)))
    # The label's type follows its positive class (number or text), so only its presence is
    # checked here: the value rules type it as one of the schema's two classes or null (a third
    # label is quarantined), so the typed column can never hold more than two values.
    column(schema.target.column, None)
    # Passing the expectations in builds the suite without a data context (add_expectation
    # would look for one to save to).
    return gx.ExpectationSuite(name=f"{schema.name}-contract", expectations=expectations)


def run_suite(frame: pd.DataFrame, suite: gx.ExpectationSuite) -> list[Any]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Progress bars would fill the processing job's log with carriage returns.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("input")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    # COMPLETE lists every unexpected row's index, which is what the quarantine needs.
    return batch.validate(suite, result_format={"result_format": "COMPLETE"}).results


def exception_message(info: dict[str, Any] | None) -> str | None:
    # GX reports an exception either flat or keyed by the metric that raised it.
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def declared_type(schema: Schema, column: str) -> str:
    if column in schema.feature_names:
        feature = schema.feature(column)
        return f"{feature.type} ({PANDAS_TYPES[feature.type]})"
    return "a UTC time (datetime64[UTC])" if column == schema.event_time else "string"


def rule_text(kind: str, kwargs: dict[str, Any], schema: Schema) -> str:
    """The rule a row broke, in words a data owner reads (for what the value rules do not see)."""
    if kind == "expect_column_values_to_not_be_null":
        return "no value (null or empty), but it is required"
    if kind == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        if lo is not None and hi is not None:
            return f"must be between {lo:g} and {hi:g}"
        return f"must be at least {lo:g}" if lo is not None else f"must be at most {hi:g}"
    if kind == "expect_column_values_to_be_in_set":
        return "must be one of " + " | ".join(map(str, kwargs["value_set"]))
    return DUPLICATE_RULE
