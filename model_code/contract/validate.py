"""ValidateData: check raw data against the data contract and quarantine the rows that break it.

The Great Expectations suite is derived from the schema, never restated: every column the
contract names must exist with its declared type; features must respect their nullability,
bounds and allowed values; the entity id must be present and unique; the target must be
present and binary; the event time, when the schema names one, must parse.

Failures come in two kinds, handled differently so that nothing is dropped silently:

* row-level (a null, a value out of range, an unknown category, a repeated id): the row goes
  to the quarantine with a ``reason`` naming each column and rule it broke; every input row
  ends up either accepted or quarantined;
* table-level (a missing column, a column of the wrong type, a target with three labels):
  no row is to blame, so nothing is quarantined for it, but the step fails naming it.

As a SageMaker processing step, ``main`` reads every CSV/Parquet file of its input and writes
``accepted.csv``, ``quarantine.csv`` and ``validation.json`` (counts, reasons, table errors).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from model_code import container
from model_code.contract.schema import (
    EXAMPLE_SCHEMA,
    Schema,
    SchemaError,
    expected_dtype_kind,
    from_raw,
    load,
    read_raw,
)

if TYPE_CHECKING:
    import great_expectations as gx

PROCESSING = Path("/opt/ml/processing")
DEFAULT_MAX_QUARANTINE_SHARE = 0.05
REASON_COLUMN = "reason"
DUPLICATE_RULE = "duplicate id (the first row with it is kept)"
# ExpectColumnValuesToBeOfType compares a pandas column's scalar type with these names:
# Int64 and int64 columns hold numpy int64, pandas 3 string columns hold str, and a
# timezone-aware datetime column holds Timestamp.
_GX_TYPES = {"integral": "int64", "fractional": "float64", "string": "str", "time": "Timestamp"}
# Results are read in this order so a column missing or mistyped is known before its row rules.
_READ_FIRST = {"expect_column_to_exist": 0, "expect_column_values_to_be_of_type": 1}


class ValidationFailed(container.StepFailed):
    """The data broke the contract at table level, or too many rows were quarantined."""


@dataclass
class ValidationResult:
    """The outcome of validating one frame: every input row is accepted or quarantined.

    Attributes
    ----------
    accepted : DataFrame
        Rows that satisfy every row-level rule; both frames keep the input's index.
    quarantined : DataFrame
        The other rows, with an extra ``reason`` column such as
        ``"monthly_charges: must not be null; tenure_months: must be between 0 and 120"``.
    rows_in : int
        Rows given; always ``rows_accepted + rows_quarantined``.
    table_errors : list of str
        Table-level failures (a missing column, a wrong type); they quarantine no row.
    reasons : dict of str to int
        Rows per broken rule, most frequent first; a row breaking two rules counts for both.
    """

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    rows_in: int
    table_errors: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rows_accepted(self) -> int:
        return len(self.accepted)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantined)

    @property
    def quarantined_share(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def check(self, max_quarantine_share: float = DEFAULT_MAX_QUARANTINE_SHARE) -> None:
        """Raise ``ValidationFailed`` unless the data may go on to the feature store.

        Raises
        ------
        ValidationFailed
            With every problem in the message: no rows, the table errors, or the
            quarantined share above ``max_quarantine_share`` with the top reasons.
        """
        problems = []
        if self.rows_in == 0:
            problems.append("no rows to validate: the input is empty")
        problems += self.table_errors
        if self.quarantined_share > max_quarantine_share:
            top = ", ".join(f"{reason!r} ({n})" for reason, n in list(self.reasons.items())[:3])
            problems.append(
                f"quarantined {self.quarantined_share:.1%} of rows ({self.rows_quarantined} of "
                f"{self.rows_in}), above the allowed {max_quarantine_share:.1%}; top reasons: {top}"
            )
        if problems:
            raise ValidationFailed("data validation failed: " + "; ".join(problems))

    def summary(self) -> dict[str, Any]:
        """The counts, reasons and table errors as plain data, for the report."""
        return {
            "rows_in": self.rows_in,
            "rows_accepted": self.rows_accepted,
            "rows_quarantined": self.rows_quarantined,
            "quarantined_share": round(self.quarantined_share, 6),
            "reasons": self.reasons,
            "table_errors": self.table_errors,
        }


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

    column(schema.entity_id, _GX_TYPES["string"])
    add(gxe.ExpectColumnValuesToBeUnique(column=schema.entity_id))
    if schema.event_time:
        # Coercion turns an unparseable time into a null, so "not null" means "parses".
        column(schema.event_time, _GX_TYPES["time"])
    for f in schema.features:
        column(f.name, _GX_TYPES[f.type], nullable=f.nullable)
        if f.min is not None or f.max is not None:
            add(gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min, max_value=f.max))
        if f.values is not None:
            add(gxe.ExpectColumnValuesToBeInSet(column=f.name, value_set=list(f.values)))
    # The label's type follows its positive class (number or text), so only presence and
    # the number of classes are checked.
    column(schema.target.column, None)
    add(gxe.ExpectColumnUniqueValueCountToBeBetween(column=schema.target.column, max_value=2))
    # Passing the expectations in builds the suite without a data context (add_expectation
    # would look for one to save to).
    return gx.ExpectationSuite(name=f"{schema.name}-contract", expectations=expectations)


def validate(frame: pd.DataFrame, schema: Schema) -> ValidationResult:
    """Validate a frame already typed by the schema (``schema.read_table`` or ``coerce``).

    A missing event-time column is not a failure: ingestion adds one.
    """
    results = _run_suite(frame.reset_index(drop=True), build_suite(schema))
    row_reasons, table_errors = _judge(results, frame, schema)
    bad = sorted(row_reasons)
    is_bad = np.zeros(len(frame), dtype=bool)
    is_bad[bad] = True
    reasons = ["; ".join(text for _, text in sorted(row_reasons[p])) for p in bad]
    result = ValidationResult(
        accepted=frame[~is_bad],
        quarantined=frame[is_bad].assign(**{REASON_COLUMN: pd.array(reasons, dtype="string")}),
        rows_in=len(frame),
        table_errors=table_errors,
        reasons=dict(Counter(text for p in bad for _, text in row_reasons[p]).most_common()),
    )
    if result.rows_accepted + result.rows_quarantined != result.rows_in:
        raise RuntimeError("validation lost rows: accepted + quarantined != rows in")  # a bug, never data
    return result


def _judge(
    results: list[Any], frame: pd.DataFrame, schema: Schema
) -> tuple[dict[int, list[tuple[int, str]]], list[str]]:
    """Sort GX results into the broken rules per row position and the table-level errors."""
    order = {name: i for i, name in enumerate(schema.columns)}
    row_reasons: dict[int, list[tuple[int, str]]] = {}
    table_errors: list[str] = []
    # Row rules on a column that is missing or mistyped cannot be judged; the table error
    # says why, so their results are skipped rather than blamed on rows.
    unusable = {schema.event_time} - set(frame.columns)
    for r in sorted(results, key=lambda r: _READ_FIRST.get(r.expectation_config.type, 2)):
        kind, col = r.expectation_config.type, r.expectation_config.kwargs["column"]
        if col in unusable or r.success:
            continue
        error = _exception_message(r.exception_info)
        if kind == "expect_column_to_exist":
            table_errors.append(f"{col}: missing column")
            unusable.add(col)
        elif kind == "expect_column_values_to_be_of_type":
            table_errors.append(
                f"{col}: expected {_declared_type(schema, col)}, got dtype {frame[col].dtype}"
            )
            unusable.add(col)
        elif error:
            table_errors.append(f"{col}: could not check {kind}: {error}")
        elif kind == "expect_column_unique_value_count_to_be_between":  # the target's classes
            observed = r.result.get("observed_value")
            table_errors.append(f"{col}: the target must be binary, found {observed} distinct values")
        else:  # a row-level rule: blame the rows
            positions = r.result.get("unexpected_index_list") or []
            if kind == "expect_column_values_to_be_unique":
                # GX flags every row of a repeated id; the first one is kept.
                repeated = frame[col].duplicated(keep="first").to_numpy()
                positions = [p for p in positions if repeated[p]]
            text = f"{col}: {_rule(kind, r.expectation_config.kwargs, schema)}"
            for p in positions:
                row_reasons.setdefault(p, []).append((order[col], text))
    return row_reasons, table_errors


def _run_suite(frame: pd.DataFrame, suite: gx.ExpectationSuite) -> list[Any]:
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


def _exception_message(info: dict[str, Any] | None) -> str | None:
    # GX reports an exception either flat or keyed by the metric that raised it.
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _declared_type(schema: Schema, column: str) -> str:
    if column in schema.feature_names:
        feature = schema.feature(column)
        return f"{feature.type} ({expected_dtype_kind(feature)})"
    return "a UTC time (datetime64[UTC])" if column == schema.event_time else "string"


def _rule(kind: str, kwargs: dict[str, Any], schema: Schema) -> str:
    """The rule a row broke, in words a data owner reads."""
    if kind == "expect_column_values_to_not_be_null":
        return "must be a parseable time" if kwargs["column"] == schema.event_time else "must not be null"
    if kind == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        if lo is not None and hi is not None:
            return f"must be between {lo:g} and {hi:g}"
        return f"must be at least {lo:g}" if lo is not None else f"must be at most {hi:g}"
    if kind == "expect_column_values_to_be_in_set":
        return "must be one of " + ", ".join(map(str, kwargs["value_set"]))
    return DUPLICATE_RULE


# --- the container step --------------------------------------------------------------------


def _utc_time(text: str) -> pd.Timestamp:
    if text == "now":
        return pd.Timestamp.now(tz="UTC").floor("s")
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        stamp = pd.NaT
    if pd.isna(stamp):  # pd.Timestamp("") is NaT rather than an error
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 time, got {text!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mlops validate",
        description="Validate data against the schema; quarantine the rows that break it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--input", type=Path, default=PROCESSING / "input/data", help="a CSV/Parquet file or a folder")
    add("--schema", type=Path, default=EXAMPLE_SCHEMA, help="schema YAML or a folder with one")
    add("--accepted-dir", type=Path, default=PROCESSING / "output/accepted", help="for accepted.csv")
    add("--quarantine-dir", type=Path, default=PROCESSING / "output/quarantine", help="for quarantine.csv")
    add("--report-dir", type=Path, default=PROCESSING / "output/report", help="for validation.json")
    add(
        "--max-quarantine-share",
        type=float,
        default=DEFAULT_MAX_QUARANTINE_SHARE,
        help="fail when a larger share of rows is quarantined",
    )
    add("--ingestion-time", type=_utc_time, default="now", help="event time for data without one (ISO-8601)")
    return parser.parse_args(argv)


def _input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".parquet")) if path.is_dir() else []
    if not files:
        raise container.StepFailed(f"{path}: no CSV or Parquet files to validate")
    return files


def _read(
    files: list[Path], schema: Schema, ingestion_time: pd.Timestamp
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """All files as one typed frame in schema column order, the same rows as read (text), the
    columns ignored, and file errors."""
    frames, raws, ignored, missing = [], [], [], {}
    for path in files:
        try:
            raw = read_raw(path)
            frame = from_raw(raw, schema, str(path))
        except (OSError, ValueError) as exc:
            raise container.StepFailed(f"{path}: could not read: {exc}") from None
        raws.append(raw[[c for c in raw.columns if c in schema.columns]].assign(source_file=path.name))
        ignored += [c for c in frame.attrs.get("ignored_columns", []) if c not in ignored]
        if schema.event_time and schema.event_time not in frame.columns:
            frame[schema.event_time] = ingestion_time
        missing[path] = [c for c in schema.columns if c not in frame.columns]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    raw = pd.concat(raws, ignore_index=True)
    # Concatenation fills a column one file lacks with nulls; say which file lacked it, since
    # a nullable column would otherwise pass unnoticed. (A column every file lacks is
    # reported by the suite.)
    errors = [
        f"{path}: missing column {c}" for path, cols in missing.items() for c in cols if c in frame.columns
    ]
    return frame[[c for c in schema.columns if c in frame.columns]], raw, ignored, errors


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # ISO-8601 with a Z, the form the feature store ingests; seconds unless the data is finer.
    times = frame.select_dtypes("datetimetz")
    finer = any((times[c].dt.microsecond.fillna(0) != 0).any() for c in times.columns)
    frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ" if finer else "%Y-%m-%dT%H:%M:%SZ")


def main(argv: list[str] | None = None) -> int:
    """Run the ValidateData step; returns the exit status (1 with the reason in /opt/ml/output/message)."""
    args = _parse_args(argv)
    try:
        schema = load(args.schema)
        files = _input_files(args.input)
        frame, raw, ignored, file_errors = _read(files, schema, args.ingestion_time)
    except (SchemaError, container.StepFailed) as exc:
        return container.fail(str(exc), job=container.PROCESSING)

    result = validate(frame, schema)
    result.table_errors[:0] = file_errors
    failure = None
    try:
        result.check(args.max_quarantine_share)
    except ValidationFailed as exc:
        failure = str(exc)
    # Outputs are written even on failure so the user can see what was wrong.
    # On several instances (ShardedByS3Key) every host uploads to the same S3 prefix: name
    # each host's files after it so they sit side by side instead of overwriting each other.
    host, hosts = container.current_host()
    suffix = f"-{host}" if len(hosts) > 1 else ""
    _write_csv(result.accepted, args.accepted_dir / f"accepted{suffix}.csv")
    # Quarantined rows keep the values as they arrived (a " " stays " ") and their file, so
    # they can be corrected and ingested again; typing would have turned them into blanks.
    as_read = raw.loc[result.quarantined.index].assign(**{REASON_COLUMN: result.quarantined[REASON_COLUMN]})
    _write_csv(as_read, args.quarantine_dir / f"quarantine{suffix}.csv")
    report = {
        "schema": schema.name,
        "input_files": [str(p) for p in files],
        **result.summary(),
        "max_quarantine_share": args.max_quarantine_share,
        "ignored_columns": ignored,
        "passed": failure is None,
        "failure": failure,
    }
    args.report_dir.mkdir(parents=True, exist_ok=True)
    (args.report_dir / f"validation{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"validated {result.rows_in} rows from {len(files)} file(s): {result.rows_accepted} accepted, "
        f"{result.rows_quarantined} quarantined ({result.quarantined_share:.1%})"
    )
    return container.fail(failure, job=container.PROCESSING) if failure else 0


if __name__ == "__main__":
    raise SystemExit(main())
