"""Reading data files as users make them, with every line accounted for.

A CSV file is read one line at a time, so one bad line costs only itself: a line with more
or fewer fields than the header, with unbalanced quotes, or with bytes that are not UTF-8
(e.g. latin-1 pasted into a UTF-8 file) is *rejected* with its line number, its raw text and
why; the other lines go on. A byte-order mark, CRLF line ends and blank lines are accepted;
an empty file holds no rows, a header-only file no rows but its columns. So for every file,
rows in = the records read + the lines rejected.

One record is one line: a quoted value may hold commas and quotes (``""``) but not a line
break, which would let one stray quote swallow the rest of the file.

Parquet files are typed already and have no lines; their rows are read as they are (a NaN
in a float column is a null there: pandas cannot tell the two apart).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from model_code.contract import rules
from model_code.contract.schema import Schema

log = logging.getLogger(__name__)

SOURCE_COLUMN = "source_file"
LINE_COLUMN = "line"
RAW_COLUMN = "raw_line"
_BOM = b"\xef\xbb\xbf"
NOT_UTF8 = "malformed line: not valid UTF-8"
BAD_QUOTING = "malformed line: unbalanced or stray quote"
BAD_FIELDS = "malformed line: wrong number of fields"


class FileUnreadable(ValueError):
    """A file that holds no table at all (e.g. its header is not UTF-8); the message names it."""


@dataclass
class RawFile:
    """One file as read: its records (text cells, blanks as null) and the lines it rejected."""

    path: Path
    columns: list[str] | None  # None: an empty file, no header
    records: pd.DataFrame
    lines: list[int | None]  # each record's line number (None for Parquet)
    # (line, raw text, reason, the reason without its details, for counting)
    rejected: list[tuple[int, str, str, str]] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return len(self.records) + len(self.rejected)


def _decode(line: bytes, number: int) -> tuple[str | None, str | None]:
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        byte = line[exc.start]
        return None, f"line {number}: not valid UTF-8 (byte 0x{byte:02x} at position {exc.start + 1})"


def _split(text: str) -> list[str]:
    if '"' not in text:  # the common case, ten times faster than the csv module
        return text.split(",")
    return next(csv.reader([text], strict=True))


def read_csv_lines(path: str | Path, *, fast: bool = True) -> RawFile:
    """Read a CSV file line by line; see the module docstring for what is rejected.

    ``fast`` lets a file in which no line can be malformed go through pandas' C reader.
    """
    path = Path(path)
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a BOM, as some spreadsheets save
        data = data.decode("utf-16").encode("utf-8")
    data = data.removeprefix(_BOM)
    quick = _well_formed(path, data) if fast else None
    if quick is not None:
        return quick
    header, rows, lines, rejected = None, [], [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue  # a blank line carries no record
        text, error = _decode(line, number)
        kind = NOT_UTF8
        if error is None:
            try:
                cells = _split(text)
            except csv.Error as exc:
                error, kind = f"line {number}: malformed quoting ({exc})", BAD_QUOTING
        if header is None:
            if error is not None:
                raise FileUnreadable(f"{path}: the header {error.partition(': ')[2]}")
            header = [c.strip() for c in cells]
            repeated = sorted({c for c in header if header.count(c) > 1})
            if repeated:
                raise FileUnreadable(f"{path}: the header names {repeated[0]!r} twice")
            continue
        if error is None and len(cells) != len(header):
            error, kind = f"line {number}: {len(cells)} fields, but the header has {len(header)}", BAD_FIELDS
        if error is not None:
            rejected.append((number, line.decode("utf-8", "backslashreplace"), error, kind))
            continue
        rows.append(cells)
        lines.append(number)
    records = pd.DataFrame(rows, columns=header or [], dtype=object)
    if len(records):
        records = records.astype(object).where(records != "", None)
    return RawFile(path, header, records, lines, rejected)


def _well_formed(path: Path, data: bytes) -> RawFile | None:
    """The file through pandas' C reader when no line can be malformed (no quotes, all UTF-8,
    every line the header's number of fields): the same result, several times faster."""
    if b'"' in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = [line.removesuffix(b"\r") for line in data.split(b"\n")]
    numbers = [n for n, line in enumerate(lines, start=1) if line]
    if not numbers or any(not lines[n - 1].strip() for n in numbers):
        return None  # empty, or a line of spaces: the careful path says what they are
    commas = lines[numbers[0] - 1].count(b",")
    if any(lines[n - 1].count(b",") != commas for n in numbers):
        return None
    header = [c.strip() for c in lines[numbers[0] - 1].decode().split(",")]
    if len(set(header)) != len(header):
        return None
    records = pd.read_csv(
        io.BytesIO(data), dtype=object, keep_default_na=False, na_values=[""], header=0, names=header
    )
    records = records.astype(object).where(records.notna(), None)
    return RawFile(path, header, records, numbers[1:])


def read_file(path: str | Path) -> RawFile:
    """A CSV file (line by line) or a Parquet file (as it is), by extension."""
    path = Path(path)
    if path.suffix == ".parquet":
        records = pd.read_parquet(path).reset_index(drop=True)
        return RawFile(path, list(records.columns), records, [None] * len(records))
    return read_csv_lines(path)


@dataclass
class Batch:
    """Several files read together for one schema.

    ``records`` holds the schema's columns as read (text for CSV), plus ``source_file`` and
    ``line``, one row per record; ``rejected`` the lines that are no record (``source_file``,
    ``line``, ``raw_line``, ``reason``, ``summary``). ``missing`` lists "<file>: missing column <c>" for
    a column some files have and others lack; ``ignored`` the columns the schema does not name.
    """

    files: list[Path]
    records: pd.DataFrame
    rejected: pd.DataFrame
    ignored: list[str]
    missing: list[str]
    rows_in_per_file: dict[str, int]

    @property
    def rows_in(self) -> int:
        return len(self.records) + len(self.rejected)


def read_files(files: list[Path], schema: Schema) -> Batch:
    """Read every file, keeping the schema's columns; errors name the file."""
    records, rejected, ignored, absent, counts = [], [], [], {}, {}
    for path in files:
        try:
            raw = read_file(path)
        except (OSError, ValueError, UnicodeError) as exc:
            raise FileUnreadable(f"{path}: could not read: {exc}") from None
        counts[str(path)] = raw.rows_in
        if raw.columns is None:  # an empty file: no columns to miss
            continue
        ignored += [c for c in raw.columns if c not in schema.columns and c not in ignored]
        absent[path] = [c for c in schema.columns if c not in raw.columns]
        kept = raw.records[[c for c in raw.columns if c in schema.columns]]
        records.append(kept.assign(**{SOURCE_COLUMN: path.name, LINE_COLUMN: pd.array(raw.lines, "Int64")}))
        rejected += [(path.name, *reject) for reject in raw.rejected]
    present = {c for frame in records for c in frame.columns}
    frame = (
        pd.concat(records, ignore_index=True)
        if records
        else pd.DataFrame(columns=[SOURCE_COLUMN, LINE_COLUMN])
    )
    order = [c for c in schema.columns if c in present]
    rejects = pd.DataFrame(rejected, columns=[SOURCE_COLUMN, LINE_COLUMN, RAW_COLUMN, "reason", "summary"])
    # A column one file lacks would be filled with nulls by the concatenation: say which file
    # lacked it, since a nullable column would pass unnoticed. (A column every file lacks is
    # reported by the suite.)
    missing = [f"{path}: missing column {c}" for path, cols in absent.items() for c in cols if c in present]
    return Batch(
        files=list(files),
        records=frame[[*order, SOURCE_COLUMN, LINE_COLUMN]],
        rejected=rejects,
        ignored=ignored,
        missing=missing,
        rows_in_per_file=counts,
    )


def valid_rows(files: list[Path], schema: Schema, where: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows of ``files`` that keep the contract (``contract.rules``), typed, and how many
    were left out and why: what training and evaluation read (``train.read_channel``)."""
    try:
        batch = read_files(files, schema)
    except FileUnreadable as exc:
        raise ValueError(str(exc)) from None
    frame, checked = rules.check_frame(batch.records.reset_index(drop=True), schema)
    if checked.unparsed:
        raise ValueError(
            f"{where}: no value of {', '.join(checked.unparsed)} reads as its type; is it the right column?"
        )
    bad = checked.reasons.notna().any(axis=1).to_numpy()
    reasons = Counter(checked.summaries[bad].stack().dropna().tolist()) + Counter(batch.rejected["summary"])
    accounting = {
        "rows_in": batch.rows_in,
        "rows_rejected": int(bad.sum()) + len(batch.rejected),
        "rejected_reasons": dict(reasons.most_common()),
    }
    return frame[~bad].reset_index(drop=True), accounting


def read_raw(path: str | Path) -> pd.DataFrame:
    """A CSV (every value as its text) or Parquet file as it is, before any typing."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return _csv_text(path)


def _csv_text(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def from_raw(raw: pd.DataFrame, schema: Schema, where: str = "data") -> pd.DataFrame:
    """Type a raw frame by the schema; columns it does not name are dropped and reported.

    The ignored column names are logged and kept in ``frame.attrs["ignored_columns"]``.
    """
    ignored = [c for c in raw.columns if c not in schema.columns]
    if ignored:
        log.warning("%s: ignoring columns the schema does not name: %s", where, ", ".join(map(str, ignored)))
    frame = rules.coerce(raw, schema)
    frame.attrs["ignored_columns"] = ignored
    return frame


def read_csv(path: str | Path, schema: Schema) -> pd.DataFrame:
    """Read a CSV by the schema: named columns coerced to their types, others ignored."""
    return from_raw(_csv_text(path), schema, str(path))


def read_table(path: str | Path, schema: Schema) -> pd.DataFrame:
    """Read a CSV or Parquet file (by extension) by the schema."""
    return from_raw(read_raw(path), schema, str(path))
