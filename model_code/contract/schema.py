"""The data contract: one YAML file describes a tabular binary-classification dataset.

Everything else is derived from it: the feature group's feature definitions, the Great
Expectations suite, the training columns, the inference input check, the drift monitor and
the dashboard. So this module is strict: a malformed schema fails here, naming the key and
what was expected, before anything is built from it.

Format (optional keys marked)::

    name: customer-churn          # kebab-case, <= 40 chars
    entity_id: customer_id
    event_time: event_time        # optional
    target: {column: churned, positive: 1, negative: 0}   # negative optional when positive is 1
    features:
      - {name: tenure_months, type: integral, min: 0, max: 120}
      - {name: contract, type: string, values: [month-to-month, one-year, two-year]}
      - {name: total_charges, type: fractional, nullable: true}
      - {name: support_calls, type: integral, drift: {psi: 0.1}}   # optional drift thresholds
    engineered:                   # optional, derived numeric features
      - {name: charges_per_month, op: ratio, inputs: [total_charges, tenure_months]}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

FEATURE_TYPES = ("integral", "fractional", "string")
ENGINEERED_OPS = ("ratio", "product", "difference", "sum", "log1p")
# How many inputs each engineered operation takes.
_OP_ARITY = {"ratio": 2, "product": 2, "difference": 2, "sum": 2, "log1p": 1}
_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EXAMPLE_SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "customer-churn.yaml"


class SchemaError(ValueError):
    """A schema file that does not follow the data contract; the message names the key.

    ``errors`` holds every problem found (a schema is checked whole, so one run reports them
    all); the message is the one problem, or their count and each on a line of its own.
    """

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        self.errors = list(errors) if errors else [message]
        super().__init__(message)

    @classmethod
    def of(cls, errors: list[str], prefix: str = "") -> SchemaError:
        if len(errors) == 1:
            return cls(f"{prefix}{errors[0]}", [f"{prefix}{errors[0]}"])
        listed = [f"{prefix}{e}" for e in errors]
        return cls(f"{prefix}{len(errors)} errors:\n" + "\n".join(f"  {e}" for e in errors), listed)


class _Found:
    """Collects the problems of the parts checked one after another."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def check(self, check: Any, *args: Any) -> Any:
        """``check(*args)``, or None with its problem kept when it fails."""
        try:
            return check(*args)
        except SchemaError as exc:
            self.errors += exc.errors
            return None


@dataclass(frozen=True)
class Feature:
    """One input column: its Feature Store type and its limits."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] | None = None
    nullable: bool = False
    # This feature's drift thresholds, over model_code.monitoring.drift's defaults.
    drift_psi: float | None = None
    drift_p_value: float | None = None

    @property
    def is_numeric(self) -> bool:
        return self.type in ("integral", "fractional")


@dataclass(frozen=True)
class EngineeredFeature:
    """A numeric feature computed from other features, e.g. spend per month of tenure."""

    name: str
    op: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """The label column and its two classes, as the data spells them."""

    column: str
    positive: Any
    negative: Any = 0

    @property
    def classes(self) -> tuple[Any, Any]:
        return (self.negative, self.positive)


@dataclass(frozen=True)
class Schema:
    """The parsed, validated data contract."""

    name: str
    entity_id: str
    target: Target
    features: tuple[Feature, ...]
    event_time: str | None = None
    engineered: tuple[EngineeredFeature, ...] = ()
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.is_numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if not f.is_numeric]

    @property
    def columns(self) -> list[str]:
        """Every column the contract names, in file order: id, event time, features, target."""
        cols = [self.entity_id]
        if self.event_time:
            cols.append(self.event_time)
        return [*cols, *self.feature_names, self.target.column]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def is_positive(self, values: pd.Series) -> pd.Series:
        """Boolean mask of the positive class, tolerant of "1" vs 1 and "yes" vs "Yes"."""
        return labels_equal(values, self.target.positive)

    def to_dict(self) -> dict[str, Any]:
        """The schema as plain data, e.g. to store next to a model."""
        return dict(self.source)


def labels_equal(values: pd.Series, label: Any) -> pd.Series:
    """Compare a label column with one class value the way a person reads them."""
    if isinstance(label, (int, float)):
        numeric = pd.to_numeric(values, errors="coerce")
        return (numeric == label).fillna(False).astype(bool)
    text = values.astype("string").str.strip().str.casefold()
    return (text == str(label).strip().casefold()).fillna(False).astype(bool)


def _require(mapping: dict, key: str, where: str, expected: str) -> Any:
    if key not in mapping or mapping[key] is None:
        raise SchemaError(f"{where}{key}: missing; expected {expected}")
    return mapping[key]


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SchemaError(f"{key}: expected a number, got {value!r}")
    return value


def _check_not_yaml_bool(value: Any, key: str) -> None:
    # YAML 1.1 reads unquoted yes/no/true/on as booleans; the data holds text or numbers.
    if isinstance(value, bool):
        raise SchemaError(
            f'{key}: got the YAML boolean {value!r}; quote the value as it appears in the data, e.g. "Yes"'
        )


def _column_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _COLUMN_RE.match(value):
        raise SchemaError(f"{key}: expected a column name (letters, digits, underscore), got {value!r}")
    return value


def _parse_feature(raw: Any, index: int) -> Feature:
    where = f"features[{index}]."
    if not isinstance(raw, dict):
        raise SchemaError(f"features[{index}]: expected a mapping with name and type, got {raw!r}")
    unknown = set(raw) - {"name", "type", "min", "max", "values", "nullable", "drift", "description"}
    if unknown:
        raise SchemaError(
            f"{where}{sorted(unknown)[0]}: unknown key; expected name, type, min, max, values, nullable, drift"
        )
    name = _column_name(_require(raw, "name", where, "a column name"), f"{where}name")
    ftype = _require(raw, "type", where, " | ".join(FEATURE_TYPES))
    if ftype not in FEATURE_TYPES:
        raise SchemaError(f"{where}type: {ftype!r} is not one of {' | '.join(FEATURE_TYPES)}")
    lo = raw.get("min")
    hi = raw.get("max")
    if ftype == "string" and (lo is not None or hi is not None):
        raise SchemaError(f"{where}min/max: bounds apply to integral or fractional features, not string")
    lo = None if lo is None else _number(lo, f"{where}min")
    hi = None if hi is None else _number(hi, f"{where}max")
    if lo is not None and hi is not None and lo > hi:
        raise SchemaError(f"{where}min: {lo} is greater than max {hi}")
    values = raw.get("values")
    if values is not None:
        if not isinstance(values, list) or not values:
            raise SchemaError(f"{where}values: expected a non-empty list of allowed values, got {values!r}")
        for v in values:
            _check_not_yaml_bool(v, f"{where}values")
            if ftype != "string":
                _number(v, f"{where}values")
        if len(set(map(str, values))) != len(values):
            raise SchemaError(f"{where}values: duplicate allowed values in {values!r}")
        values = tuple(str(v) for v in values) if ftype == "string" else tuple(values)
    nullable = raw.get("nullable", False)
    if not isinstance(nullable, bool):
        raise SchemaError(f"{where}nullable: expected true or false, got {nullable!r}")
    psi, p_value = _parse_drift(raw.get("drift"), f"{where}drift")
    return Feature(
        name=name,
        type=ftype,
        min=lo,
        max=hi,
        values=values,
        nullable=nullable,
        drift_psi=psi,
        drift_p_value=p_value,
    )


def _parse_drift(raw: Any, where: str) -> tuple[float | None, float | None]:
    """A feature's ``drift: {psi: 0.1, p_value: 0.001}`` (either key optional)."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict) or not raw:
        raise SchemaError(f"{where}: expected a mapping with psi and/or p_value, got {raw!r}")
    unknown = set(raw) - {"psi", "p_value"}
    if unknown:
        raise SchemaError(f"{where}.{sorted(unknown)[0]}: unknown key; expected psi, p_value")
    psi, p_value = raw.get("psi"), raw.get("p_value")
    if psi is not None and not _number(psi, f"{where}.psi") > 0:
        raise SchemaError(f"{where}.psi: expected a number > 0, got {psi!r}")
    if p_value is not None and not 0 < _number(p_value, f"{where}.p_value") < 1:
        raise SchemaError(f"{where}.p_value: expected a number between 0 and 1, got {p_value!r}")
    return psi, p_value


def _parse_engineered(raw: Any, index: int, numeric: set[str]) -> EngineeredFeature:
    where = f"engineered[{index}]."
    if not isinstance(raw, dict):
        raise SchemaError(f"engineered[{index}]: expected a mapping with name, op and inputs, got {raw!r}")
    name = _column_name(_require(raw, "name", where, "a column name"), f"{where}name")
    op = _require(raw, "op", where, " | ".join(ENGINEERED_OPS))
    if op not in ENGINEERED_OPS:
        raise SchemaError(f"{where}op: {op!r} is not one of {' | '.join(ENGINEERED_OPS)}")
    inputs = _require(raw, "inputs", where, f"a list of {_OP_ARITY[op]} numeric feature names")
    if not isinstance(inputs, list) or len(inputs) != _OP_ARITY[op]:
        raise SchemaError(f"{where}inputs: {op} takes {_OP_ARITY[op]} numeric feature names, got {inputs!r}")
    for item in inputs:
        if item not in numeric:
            raise SchemaError(f"{where}inputs: {item!r} is not a numeric feature of this schema")
    return EngineeredFeature(name=name, op=op, inputs=tuple(inputs))


def _negative(target: dict, positive: Any) -> Any:
    """The negative class: as written, or 0 for the usual 0/1 labels (0.0 for 1.0)."""
    if target.get("negative") is None:
        if isinstance(positive, (int, float)) and positive == 1:
            return type(positive)(0)
        raise SchemaError(
            "target.negative: missing; expected the other class value as the data spells it "
            "(it may be left out only when positive is 1, the negative then being 0)"
        )
    negative = target["negative"]
    _check_not_yaml_bool(negative, "target.negative")
    if isinstance(positive, str) != isinstance(negative, str) or not isinstance(negative, (int, float, str)):
        raise SchemaError(
            f"target.negative: expected a {type(positive).__name__} like positive, got {negative!r}"
        )
    same = (
        str(negative).strip().casefold() == positive.strip().casefold()
        if isinstance(positive, str)
        else negative == positive
    )
    if same:
        raise SchemaError(f"target.negative: {negative!r} is the positive class too")
    return negative


def parse(raw: Any) -> Schema:
    """Validate a schema given as plain data (the parsed YAML); every problem is reported at once."""
    if not isinstance(raw, dict):
        raise SchemaError(f"schema: expected a mapping at the top level, got {type(raw).__name__}")
    found = _Found()
    known = {"name", "entity_id", "event_time", "target", "features", "engineered", "description"}
    for key in sorted(set(raw) - known):
        found.errors.append(f"{key}: unknown key; expected one of {', '.join(sorted(known))}")
    name = found.check(_name, raw)
    entity_id = found.check(
        lambda: _column_name(_require(raw, "entity_id", "", "the record identifier column"), "entity_id")
    )
    event_time = raw.get("event_time")
    if event_time is not None:
        event_time = found.check(_column_name, event_time, "event_time")
    target = found.check(_target, raw, found)
    feats_raw = raw.get("features")
    features: list[Feature] = []
    if not isinstance(feats_raw, list) or not feats_raw:
        found.errors.append(
            "features: missing; expected a non-empty list of features"
            if feats_raw is None
            else f"features: expected a non-empty list of features, got {feats_raw!r}"
        )
    else:
        features = [f for i, raw_f in enumerate(feats_raw) if (f := found.check(_parse_feature, raw_f, i))]
    seen: set[str] = {c for c in (entity_id, target.column if target else None, event_time) if c}
    if entity_id and target and len(seen) != 2 + bool(event_time):
        found.errors.append("entity_id, event_time and target.column must name different columns")
    for i, f in enumerate(feats_raw if isinstance(feats_raw, list) else []):
        name_i = f.get("name") if isinstance(f, dict) else None
        if isinstance(name_i, str) and name_i in seen:
            found.errors.append(f"features[{i}].name: {name_i!r} is used twice in the schema")
        if isinstance(name_i, str):
            seen.add(name_i)
    numeric = {f.name for f in features if f.is_numeric}
    eng_raw = raw.get("engineered") or []
    engineered: list[EngineeredFeature] = []
    if not isinstance(eng_raw, list):
        found.errors.append(f"engineered: expected a list, got {eng_raw!r}")
    else:
        engineered = [
            e for i, r in enumerate(eng_raw) if (e := found.check(_parse_engineered, r, i, numeric))
        ]
        for i, e in enumerate(engineered):
            if e.name in seen:
                found.errors.append(f"engineered[{i}].name: {e.name!r} is used twice in the schema")
            seen.add(e.name)
    if found.errors:
        raise SchemaError.of(found.errors)
    return Schema(
        name=name,
        entity_id=entity_id,
        event_time=event_time,
        target=target,
        features=tuple(features),
        engineered=tuple(engineered),
        source=raw,
    )


def _name(raw: dict) -> str:
    name = _require(raw, "name", "", "a kebab-case name of at most 40 characters")
    if not isinstance(name, str) or len(name) > 40 or not _NAME_RE.match(name):
        raise SchemaError(f"name: expected kebab-case (a-z, 0-9, '-') of at most 40 characters, got {name!r}")
    return name


def _target(raw: dict, found: _Found) -> Target | None:
    target_raw = _require(raw, "target", "", "a mapping with column and positive")
    if not isinstance(target_raw, dict):
        raise SchemaError(f"target: expected a mapping with column and positive, got {target_raw!r}")
    for key in sorted(set(target_raw) - {"column", "positive", "negative"}):
        found.errors.append(f"target.{key}: unknown key; expected column, positive, negative")
    column = found.check(
        lambda: _column_name(_require(target_raw, "column", "target.", "the label column"), "target.column")
    )
    positive = found.check(_positive, target_raw)
    negative = found.check(_negative, target_raw, positive) if positive is not None else None
    if column is None or positive is None or negative is None:
        return None
    return Target(column=column, positive=positive, negative=negative)


def _positive(target_raw: dict) -> Any:
    positive = _require(target_raw, "positive", "target.", "the positive class value (a number or a string)")
    _check_not_yaml_bool(positive, "target.positive")
    if not isinstance(positive, (int, float, str)):
        raise SchemaError(f"target.positive: expected a number or a string, got {positive!r}")
    return positive


def find_file(path: str | Path) -> Path:
    """``path`` itself, or the one schema YAML in a folder (as a processing input mounts it)."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    if len(found) != 1:
        raise SchemaError(f"{path}: expected one schema .yaml in the folder, found {len(found)}")
    return found[0]


def load(path: str | Path = EXAMPLE_SCHEMA) -> Schema:
    """Read and validate a schema file (or the one in a folder); errors name the file and the key."""
    path = find_file(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SchemaError(f"{path}: schema file not found") from None
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse(raw)
    except SchemaError as exc:
        raise SchemaError.of(list(exc.errors), prefix=f"{path}: ") from None


def as_string(series: pd.Series) -> pd.Series:
    """Text with surrounding spaces stripped; an empty cell is null."""
    text = series.astype("string").str.strip()
    return text.mask(text == "")
