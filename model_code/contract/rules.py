"""What a valid value is, per column of the data contract: the one definition every stage uses.

Validation (quarantine reasons), training (which rows it may fit on) and serving (the
inference input check) all judge values here, so they cannot disagree. For each feature type:

* ``fractional``: a finite number. Text must read as a decimal number (``1.5``, ``-2e3``);
  ``abc``, ``1,234.50`` or ``$600`` are not numbers, and ``NaN``, ``inf`` or ``1e400`` are
  numbers but not finite ones.
* ``integral``: the same, and whole (``3.0`` counts as whole, ``1.5`` does not).
* ``string``: any text.
* then, for every type, the schema's bounds (``min``/``max``, inclusive) and allowed
  ``values``; and an empty cell (or a JSON ``null``) is a null, valid only where the feature
  is ``nullable``. Surrounding spaces are ignored, so a blank cell is empty.
* the target: one of the schema's two classes, matched as a person reads them (``1.0`` is
  the class ``1``; ``yes`` the class ``Yes``), and always given back as the schema spells it,
  so a blank label cannot turn the classes into floats.

A violation reads ``<column>: <the value as it arrived> <rule>``, e.g.
``total_charges: 'abc' is not a number``, ``tenure_months: 1.5 is not a whole number``,
``churned: 'yes' is not one of 0 | 1``: text that reads as a number is shown bare, other
text quoted. :class:`Rule` checks one value at a time (a request) and whole columns at once
(a file); tests hold the two to the same verdicts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from model_code.contract.schema import Feature, Schema, as_string

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
NOT_A_NUMBER = "is not a number"
NOT_FINITE = "is not a finite number"
NOT_WHOLE = "is not a whole number"
OUT_OF_RANGE = "is out of range"
NO_VALUE = "no value (null or empty), but it is not nullable"
# 2**63 as a float (2**63 - 1 rounds up to it): whole numbers from there on overflow Int64.
_INT64_MAX = float(2**63 - 1)


class Invalid(ValueError):
    """A value that breaks its column's rule; the message omits the column (the caller adds where)."""

    def __init__(self, message: str, rule: str):
        super().__init__(message)
        self.rule = rule


def show(value: Any) -> str:
    """A value as it arrived, short: number-like text bare, other text quoted."""
    if isinstance(value, str) and (NUMBER.fullmatch(value) or NON_FINITE.fullmatch(value)):
        text = value
    else:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _g(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Rule:
    """One column's contract: its kind, bounds, allowed values (the target: its two classes)."""

    column: str
    kind: str  # integral | fractional | string | target
    nullable: bool = False
    lo: float | None = None
    hi: float | None = None
    allowed: tuple[Any, ...] | None = None

    @classmethod
    def of_feature(cls, feature: Feature) -> Rule:
        return cls(feature.name, feature.type, feature.nullable, feature.min, feature.max, feature.values)

    @classmethod
    def of_target(cls, schema: Schema) -> Rule:
        # An empty label is a row without ground truth (training leaves it out, validation
        # requires one), not a wrong label.
        return cls(schema.target.column, "target", nullable=True, allowed=schema.target.classes)

    @property
    def numeric(self) -> bool:
        if self.kind == "target":
            return all(isinstance(c, (int, float)) for c in self.allowed)
        return self.kind in ("integral", "fractional")

    @property
    def one_of(self) -> str:
        return "is not one of " + " | ".join(map(str, self.allowed))

    @property
    def expected(self) -> str:
        """What a valid value looks like, in words."""
        if self.allowed is not None:
            return "one of " + " | ".join(map(str, self.allowed))
        return {"integral": "a whole number", "fractional": "a finite number"}.get(self.kind, "a string")

    def summary(self, rule: str) -> str:
        """A violation without its value, for counting: ``tenure_months: not a whole number``."""
        return f"{self.column}: {rule.removeprefix('is ')}"

    # --- one value at a time (a request) ---------------------------------------------------

    def _fail(self, shown: str, rule: str) -> Invalid:
        return Invalid(f"{shown} {rule}", rule)

    def null(self) -> Any:
        if not self.nullable:
            raise Invalid(NO_VALUE, NO_VALUE)
        return math.nan if self.numeric else None

    def check_text(self, text: str) -> Any:
        """The typed value of a text cell (CSV), or ``Invalid``."""
        text = text.strip()
        if not text:
            return self.null()
        if not self.numeric:
            return self._allowed_text(text)
        if NUMBER.fullmatch(text):
            return self.check_number(float(text), show(text))
        if NON_FINITE.fullmatch(text):
            raise self._fail(show(text), NOT_FINITE)
        if self.kind == "target":
            raise self._fail(show(text), self.one_of)
        raise self._fail(show(text), NOT_A_NUMBER)

    def check_number(self, x: int | float, shown: str | None = None) -> Any:
        """The typed value of a number (JSON, Parquet), or ``Invalid``."""
        shown = shown or show(x)
        if type(x) is float and not math.isfinite(x):
            raise self._fail(shown, NOT_FINITE)
        if self.kind == "target":
            for c in self.allowed:
                if x == c:
                    return c
            raise self._fail(shown, self.one_of)
        if self.kind == "integral" and type(x) is float and not x.is_integer():
            raise self._fail(shown, NOT_WHOLE)
        if self.lo is not None and x < self.lo:
            raise self._fail(shown, f"is below the minimum {_g(self.lo)}")
        if self.hi is not None and x > self.hi:
            raise self._fail(shown, f"is above the maximum {_g(self.hi)}")
        if self.allowed is not None and x not in self.allowed:
            raise self._fail(shown, self.one_of)
        try:
            value = float(x)
        except OverflowError:  # a JSON integer beyond float range
            raise self._fail(shown, OUT_OF_RANGE) from None
        if self.kind == "integral" and abs(value) >= _INT64_MAX:
            raise self._fail(shown, OUT_OF_RANGE)
        return value

    def _allowed_text(self, text: str) -> Any:
        if self.allowed is None:
            return text
        if self.kind == "target":  # classes match as a person reads them: "yes" is "Yes"
            for c in self.allowed:
                if text.casefold() == str(c).strip().casefold():
                    return c
        elif text in self.allowed:
            return text
        raise self._fail(show(text), self.one_of)

    # --- a whole column at once (a file) ---------------------------------------------------

    def check_column(self, series: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
        """Typed values, the violation per row and its summary (null where valid).

        A value that is not of the type (text in a number column, inf, 1.5 for an integral
        feature, a label that is no class) is null in the typed column; one outside the
        bounds or the allowed values stays as it is, for validation to quarantine.
        """
        if not _texty(series):
            if self.numeric and not pd.api.types.is_bool_dtype(series):
                return self._numbers(pd.to_numeric(series).astype("float64"), None, series)
            series = series.astype("string")  # booleans and such are judged as their text
        text = series.astype("string").str.strip()
        text = text.mask(text == "")
        if not self.numeric:
            return self._texts(text)
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        return self._numbers(numbers, text, series)

    def _numbers(
        self, x: pd.Series, text: pd.Series | None, original: pd.Series
    ) -> tuple[pd.Series, pd.Series, pd.Series]:
        values = x.to_numpy(dtype="float64", na_value=np.nan)
        present = (text.notna() if text is not None else original.notna()).to_numpy()
        rule = np.full(len(x), None, dtype=object)
        unset = np.ones(len(x), dtype=bool)  # the first rule a value breaks is the one reported

        def flag(mask: np.ndarray, why: str) -> None:
            hit = mask & unset
            rule[hit] = why
            unset[hit] = False

        unparsed = present & np.isnan(values)
        if text is not None and unparsed.any():
            literal = text.str.fullmatch(NON_FINITE.pattern, case=False).fillna(False).to_numpy(dtype=bool)
            flag(unparsed & literal, NOT_FINITE)
            flag(unparsed, self.one_of if self.kind == "target" else NOT_A_NUMBER)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(values)
            flag(present & ~np.isnan(values) & ~finite, NOT_FINITE)
            if self.kind == "target":
                known = np.isin(values, np.asarray(self.allowed, dtype="float64"))
                flag(present & finite & ~known, self.one_of)
            else:
                if self.kind == "integral":
                    flag(finite & (values != np.round(values)), NOT_WHOLE)
                if self.lo is not None:
                    flag(finite & (values < self.lo), f"is below the minimum {_g(self.lo)}")
                if self.hi is not None:
                    flag(finite & (values > self.hi), f"is above the maximum {_g(self.hi)}")
                if self.allowed is not None:
                    flag(finite & ~np.isin(values, np.asarray(self.allowed, dtype="float64")), self.one_of)
                if self.kind == "integral":  # checked last, as a request's value is
                    flag(finite & (np.abs(values) >= _INT64_MAX), OUT_OF_RANGE)
        if not self.nullable:
            flag(~present, NO_VALUE)
        bad = ~unset
        shown = text if text is not None else original
        reasons, summaries = self._reasons(rule, bad, shown, x.index)
        # The typed value is null only where it is no value of the type; one outside the bounds
        # stays (a drift monitor must see it), though the row is invalid.
        unusable = np.isin(rule, [NOT_A_NUMBER, NOT_FINITE, NOT_WHOLE, OUT_OF_RANGE]) | (
            bad if self.kind == "target" else False
        )
        typed = pd.Series(np.where(unusable, np.nan, values), index=x.index)
        return self._typed_numbers(typed), reasons, summaries

    def _typed_numbers(self, typed: pd.Series) -> pd.Series:
        if self.kind == "integral":  # a whole number beyond Int64 has no typed value
            return typed.mask(typed.abs() >= _INT64_MAX).astype("Int64")
        if self.kind == "target":
            # The schema's class values, in their own type: never 0.0 for the class 0.
            ints = all(isinstance(c, int) for c in self.allowed)
            return typed.astype("Int64") if ints else typed
        return typed

    def _texts(self, text: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
        present = text.notna().to_numpy()
        rule = np.full(len(text), None, dtype=object)
        typed = text
        if self.allowed is not None:
            if self.kind == "target":
                folded = text.str.casefold()
                typed = pd.Series(pd.NA, index=text.index, dtype="string")
                for c in self.allowed:
                    # A null label compares as NA, which mask() would take for a match: never a class.
                    typed = typed.mask((folded == str(c).strip().casefold()).fillna(False), str(c))
            known = typed.isin(self.allowed) if self.kind != "target" else typed.notna()
            rule[present & ~known.fillna(False).to_numpy(dtype=bool)] = self.one_of
        if not self.nullable:
            rule[~present] = NO_VALUE
        bad = pd.notna(rule)
        reasons, summaries = self._reasons(rule, bad, text, text.index)
        return (typed.mask(bad) if self.kind == "target" else typed), reasons, summaries

    def _reasons(
        self, rule: np.ndarray, bad: np.ndarray, shown: pd.Series, index: pd.Index
    ) -> tuple[pd.Series, pd.Series]:
        out = np.full(len(rule), None, dtype=object)
        if not bad.any():
            return pd.Series(out, index=index, dtype=object), pd.Series(out, index=index, dtype=object)
        values = shown.to_numpy(dtype=object)
        for i in np.flatnonzero(bad):  # only the bad rows pay for the wording
            why = rule[i]
            out[i] = f"{self.column}: {why}" if why == NO_VALUE else f"{self.column}: {show(values[i])} {why}"
        summaries = np.full(len(rule), None, dtype=object)
        summaries[bad] = [self.summary(why) for why in rule[bad]]
        return pd.Series(out, index=index, dtype=object), pd.Series(summaries, index=index, dtype=object)


def _texty(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series)


def rules(schema: Schema) -> dict[str, Rule]:
    """Every feature's and the target's rule, by column name."""
    out = {f.name: Rule.of_feature(f) for f in schema.features}
    out[schema.target.column] = Rule.of_target(schema)
    return out


@dataclass
class Checked:
    """Why each invalid cell of a frame is invalid.

    ``reasons`` and ``summaries`` have one column per checked column that has violations
    (schema order), null where the cell is valid; ``unparsed`` names the columns none of
    whose non-empty values could be read as the type the schema declares.
    """

    reasons: pd.DataFrame
    summaries: pd.DataFrame
    unparsed: list[str]


def check_frame(frame: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, Checked]:
    """Type the columns the schema names and judge each value; other columns are dropped."""
    by_name = rules(schema)
    typed, reasons, summaries, unparsed = {}, {}, {}, []
    for col in [c for c in schema.columns if c in frame.columns]:
        series = frame[col]
        if col in by_name:
            rule = by_name[col]
            typed[col], why, summary = rule.check_column(series)
            # A column none of whose values has the declared type is mistyped, not dirty:
            # a table-level failure (e.g. a whole column of "n/a").
            unreadable = rule.summary(rule.one_of if rule.kind == "target" else NOT_A_NUMBER)
            if rule.numeric and why.notna().any():
                present = as_string(series).notna() if _texty(series) else series.notna()
                if present.any() and (summary[present] == unreadable).all():
                    unparsed.append(col)
        elif col == schema.entity_id:
            typed[col] = as_string(series)
            bad = typed[col].isna()
            why = pd.Series(np.where(bad, f"{col}: {NO_VALUE}", None), index=series.index, dtype=object)
            summary = why
        else:  # the event time
            text = as_string(series)
            typed[col] = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
            bad = (text.notna() & typed[col].isna()).to_numpy()
            shown = text.to_numpy(dtype=object)
            why = pd.Series(
                [
                    f"{col}: {show(v)} is not an ISO-8601 time" if b else None
                    for v, b in zip(shown, bad, strict=True)
                ]
                if bad.any()
                else [None] * len(text),
                index=series.index,
                dtype=object,
            )
            summary = why.where(why.isna(), f"{col}: not an ISO-8601 time")
        if why.notna().any():
            reasons[col], summaries[col] = why, summary
    out = pd.DataFrame(typed, index=frame.index)
    index = frame.index
    return out, Checked(pd.DataFrame(reasons, index=index), pd.DataFrame(summaries, index=index), unparsed)


def coerce(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Coerce the columns the schema names to their declared types (these rules say what is valid).

    Invalid values become nulls instead of raising: a blank " " in a fractional column is a
    data problem to quarantine, not a crash. ``check_frame`` also says why each one
    is invalid. Columns the schema does not name are dropped; the caller reports them.
    """
    return check_frame(frame, schema)[0]
