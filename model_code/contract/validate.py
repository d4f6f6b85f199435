"""ValidateData: check raw data against the data contract and quarantine the rows that break it.

Each value is judged by ``model_code.contract.rules`` (the rule training and serving use
too): features must have their type (finite numbers; integral ones whole), bounds, allowed
values and nullability; the target must be one of the schema's two classes. A Great
Expectations suite derived from the schema checks the table: every column exists with its
declared type, the entity id is present and unique, the target present, the event time (when
the schema names one) parses.

Failures come in two kinds, handled differently so that nothing is dropped silently:

* row-level (a value that is not of its type, out of range or not allowed, a null, a repeated
  id, a malformed CSV line): the row goes to the quarantine with a ``reason`` naming each
  column, the value as it arrived and what the schema expects
  (``tenure_months: 1.5 is not a whole number``), or the line's number and what is wrong
  with it; every input row ends up either accepted or quarantined;
* table-level (a missing column, a column of the wrong type, a column none of whose values
  reads as its type): the step fails naming it. Rows breaking a rule are quarantined too.

As a SageMaker processing step, ``main`` reads every CSV/Parquet file of its input and writes
``accepted.csv``, ``quarantine.csv`` (the values as they arrived, with ``source_file``,
``line``, ``raw_line`` for a malformed line, and ``reason``) and ``validation.json`` (counts,
also per file, reasons, table errors). Run on several instances, an instance dealt no file
reports zero rows and passes: the ingestion and training pipelines share this entry point.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_code import container
from model_code.contract import rules, table
from model_code.contract.schema import EXAMPLE_SCHEMA, Schema, SchemaError, load
from model_code.contract.suite import (
    DUPLICATE_RULE,
    build_suite,
    declared_type,
    exception_message,
    rule_text,
    run_suite,
)

PROCESSING = Path("/opt/ml/processing")
DEFAULT_MAX_QUARANTINE_SHARE = 0.05
REASON_COLUMN = "reason"
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
        ``"tenure_months: 150 is above the maximum 120; total_charges: 'abc' is not a number"``;
        a malformed line's values are null.
    rows_in : int
        Rows given; always ``rows_accepted + rows_quarantined``.
    table_errors : list of str
        Table-level failures (a missing column, a wrong type); they quarantine no row.
    reasons : dict of str to int
        Rows per broken rule (without the value), most frequent first; a row breaking two
        rules counts for both.
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


def validate(frame: pd.DataFrame, schema: Schema, rejected: pd.DataFrame | None = None) -> ValidationResult:
    """Validate a frame as read (text cells) or already typed (``schema.read_table``).

    ``rejected`` holds lines that were no record (``table.Batch.rejected``); they are
    quarantined with their reason. A missing event-time column is not a failure: ingestion
    adds one.
    """
    frame = frame.reset_index(drop=True)
    typed, checked = rules.check_frame(frame, schema)
    results = run_suite(typed, build_suite(schema))
    row_reasons, table_errors = _judge(results, typed, frame, checked, schema)
    bad = sorted(row_reasons)
    is_bad = np.zeros(len(typed), dtype=bool)
    is_bad[bad] = True
    order = {name: i for i, name in enumerate(schema.columns)}
    texts = ["; ".join(row_reasons[p][c][0] for c in sorted(row_reasons[p], key=order.get)) for p in bad]
    summaries = [summary for p in bad for _, summary in row_reasons[p].values()]
    quarantined = typed[is_bad].assign(**{REASON_COLUMN: pd.array(texts, dtype="string")})
    if rejected is not None and len(rejected):
        lines = pd.DataFrame(index=range(len(typed), len(typed) + len(rejected)), columns=typed.columns)
        lines[REASON_COLUMN] = pd.array(rejected["reason"].tolist(), dtype="string")
        quarantined = pd.concat([quarantined, lines]) if len(quarantined) else lines
        summaries += rejected["summary"].tolist()
    result = ValidationResult(
        accepted=typed[~is_bad],
        quarantined=quarantined,
        rows_in=len(typed) + (0 if rejected is None else len(rejected)),
        table_errors=table_errors,
        reasons=dict(Counter(summaries).most_common()),
    )
    if result.rows_accepted + result.rows_quarantined != result.rows_in:
        raise RuntimeError("validation lost rows: accepted + quarantined != rows in")  # a bug, never data
    return result


def _judge(
    results: list[Any], typed: pd.DataFrame, raw: pd.DataFrame, checked: rules.Checked, schema: Schema
) -> tuple[dict[int, dict[str, tuple[str, str]]], list[str]]:
    """Each row's broken rules as {column: (reason, summary)}, and the table-level errors.

    The value rules' own words come first; the suite's row-level results add what they
    cannot see (a repeated id, an empty label) or, should the two ever disagree, its rule.
    """
    row_reasons: dict[int, dict[str, tuple[str, str]]] = {}
    for col in checked.reasons.columns:
        why, summary = checked.reasons[col].to_numpy(), checked.summaries[col].to_numpy()
        for p in np.flatnonzero(pd.notna(why)):
            row_reasons.setdefault(int(p), {})[col] = (why[p], summary[p])
    table_errors = [_unparsed(col, raw[col], schema) for col in checked.unparsed]
    # Row rules on a column that is missing or mistyped cannot be judged; the table error
    # says why, so their results are skipped rather than blamed on rows.
    unusable = {schema.event_time} - set(typed.columns)
    for r in sorted(results, key=lambda r: _READ_FIRST.get(r.expectation_config.type, 2)):
        kind, col = r.expectation_config.type, r.expectation_config.kwargs["column"]
        if col in unusable or r.success:
            continue
        error = exception_message(r.exception_info)
        if kind == "expect_column_to_exist":
            table_errors.append(f"{col}: missing column")
            unusable.add(col)
        elif kind == "expect_column_values_to_be_of_type":
            table_errors.append(f"{col}: expected {declared_type(schema, col)}, got dtype {typed[col].dtype}")
            unusable.add(col)
        elif error:
            table_errors.append(f"{col}: could not check {kind}: {error}")
        else:  # a row-level rule: blame the rows
            positions = r.result.get("unexpected_index_list") or []
            if kind == "expect_column_values_to_be_unique":
                # GX flags every row of a repeated id; the first one is kept.
                repeated = typed[col].duplicated(keep="first").to_numpy()
                positions = [p for p in positions if repeated[p]]
            summary = f"{col}: {rule_text(kind, r.expectation_config.kwargs, schema)}"
            for p in positions:
                text = summary
                if kind == "expect_column_values_to_be_unique":
                    text = f"{col}: {rules.show(typed[col].iloc[p])} is a {DUPLICATE_RULE}"
                row_reasons.setdefault(p, {}).setdefault(col, (text, summary))
    return row_reasons, table_errors


def _unparsed(column: str, values: pd.Series, schema: Schema) -> str:
    present = values[values.notna() & (values.astype("string").str.strip() != "")]
    expected = rules.rules(schema)[column].expected
    return (
        f"{column}: none of its {len(present)} values is {expected} (e.g. {rules.show(present.iloc[0])}); "
        "is it the right column, of the right type?"
    )


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
    # Each help text alone on its line: the mutation run leaves what `--help` prints alone.
    add(
        "--input",
        type=Path,
        default=PROCESSING / "input/data",
        help="a CSV/Parquet file or a folder",
    )
    add(
        "--schema",
        type=Path,
        default=EXAMPLE_SCHEMA,
        help="schema YAML or a folder with one",
    )
    add(
        "--accepted-dir",
        type=Path,
        default=PROCESSING / "output/accepted",
        help="for accepted.csv",
    )
    add(
        "--quarantine-dir",
        type=Path,
        default=PROCESSING / "output/quarantine",
        help="for quarantine.csv",
    )
    add(
        "--report-dir",
        type=Path,
        default=PROCESSING / "output/report",
        help="for validation.json",
    )
    add(
        "--max-quarantine-share",
        type=float,
        default=DEFAULT_MAX_QUARANTINE_SHARE,
        help="fail when a larger share of rows is quarantined",
    )
    add(
        "--ingestion-time",
        type=_utc_time,
        default="now",
        help="event time for data without one (ISO-8601)",
    )
    return parser.parse_args(argv)


def _input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".parquet")) if path.is_dir() else []


def _read(files: list[Path], schema: Schema, ingestion_time: pd.Timestamp) -> table.Batch:
    """Every file read line by line; data without an event time gets the ingestion time."""
    batch = table.read_files(files, schema)
    if schema.event_time and schema.event_time not in batch.records.columns:
        batch.records.insert(0, schema.event_time, ingestion_time.isoformat())
    return batch


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # ISO-8601 with a Z, the form the feature store ingests; seconds unless the data is finer.
    times = frame.select_dtypes("datetimetz")
    finer = any((times[c].dt.microsecond.fillna(0) != 0).any() for c in times.columns)
    frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ" if finer else "%Y-%m-%dT%H:%M:%SZ")


def _empty_shard(args: argparse.Namespace, schema: Schema) -> int:
    """An instance dealt no file (more instances than files): no rows, and no error in the data."""
    host, _ = container.current_host()
    report = {"schema": schema.name, "input_files": [], "rows_in": 0, "rows_accepted": 0,
              "rows_quarantined": 0, "rows_in_per_file": {}, "passed": True, "failure": None}  # fmt: skip
    args.report_dir.mkdir(parents=True, exist_ok=True)
    (args.report_dir / f"validation-{host}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{host}: no files in this shard")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ValidateData step; returns the exit status (1 with the reason in /opt/ml/output/message)."""
    args = _parse_args(argv)
    try:
        schema = load(args.schema)
        files = _input_files(args.input)
        host, hosts = container.current_host()
        if not files and len(hosts) > 1:
            return _empty_shard(args, schema)
        if not files:
            raise container.StepFailed(f"{args.input}: no CSV or Parquet files to validate")
        batch = _read(files, schema, args.ingestion_time)
    except (SchemaError, table.FileUnreadable, container.StepFailed) as exc:
        return container.fail(str(exc), job=container.PROCESSING)

    records = batch.records
    result = validate(records[[c for c in schema.columns if c in records.columns]], schema, batch.rejected)
    result.table_errors[:0] = batch.missing
    failure = None
    try:
        # One instance of several may hold only empty files; the upload as a whole is judged
        # by the rows the other instances hold.
        if result.rows_in or len(hosts) == 1:
            result.check(args.max_quarantine_share)
    except ValidationFailed as exc:
        failure = str(exc)
    # Outputs are written even on failure so the user can see what was wrong.
    # On several instances (ShardedByS3Key) every host uploads to the same S3 prefix: name
    # each host's files after it so they sit side by side instead of overwriting each other.
    suffix = f"-{host}" if len(hosts) > 1 else ""
    _write_csv(result.accepted, args.accepted_dir / f"accepted{suffix}.csv")
    # Quarantined rows keep the values as they arrived (a " " stays " "), their file and line,
    # so they can be corrected and ingested again; typing would have turned them into blanks.
    as_read = pd.concat(
        [records, batch.rejected.drop(columns="summary").drop(columns=REASON_COLUMN)], ignore_index=True
    )
    as_read = as_read.loc[result.quarantined.index].assign(
        **{REASON_COLUMN: result.quarantined[REASON_COLUMN]}
    )
    _write_csv(as_read, args.quarantine_dir / f"quarantine{suffix}.csv")
    report = {
        "schema": schema.name,
        "input_files": [str(p) for p in files],
        **result.summary(),
        "rows_in_per_file": batch.rows_in_per_file,
        "max_quarantine_share": args.max_quarantine_share,
        "ignored_columns": batch.ignored,
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
