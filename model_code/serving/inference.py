"""The model's request handlers, in the shape of SageMaker's framework containers.

``model_fn`` loads the artifact once; then each request runs ::

    input_fn(body, content_type) ─► predict_fn(data, model) ─► output_fn(prediction, accept)
    (parse and check against         (positive-class            (JSON or CSV body
     the data contract)               probability, label)         and its content type)

``input_fn`` is the inference input check of the data contract (DESIGN principle 1): every
value is checked against the schema the model was trained on, by the rules validation and
training use (``model_code.contract.rules``), and a violation raises ``BadRequest`` naming
the field, the value and the rule (``instances[3].tenure_months: 1.5 is not a whole number``
when the request holds several records, ``line 4: ...`` for CSV), which the server answers
with a 400. Decisions:

* JSON values must have the declared JSON type: numbers for integral and fractional features
  (``true`` is not a number, nor is ``"42"``), strings for string features (``1`` is refused:
  the model learned categories from text, and a number's text form is ambiguous).
* An integral feature takes whole numbers only; ``3.0`` counts as whole, as in training.
* Bounds (``min``/``max``) are inclusive. A value outside a feature's ``values`` is refused,
  although the model itself would tolerate an unseen category: the contract lists what is
  valid, and an unknown category at the endpoint is a caller bug worth surfacing.
* Strings are stripped and an empty string is a null, as when training data is read.
  ``null`` is accepted only for nullable features; NaN and infinity are never accepted
  (a missing value must be spelled ``null``, or an empty CSV field).
* Keys the contract does not name (e.g. the entity id) are ignored, except with an online
  lookup (``model_code.serving.lookup``): then a JSON record that leaves features out names
  its record by the entity id, and the missing features are read from the feature group's
  online store (a feature the record names keeps its value).
* CSV rows hold the features in schema order, no header; a first row equal to the feature
  names is tolerated and skipped.

Checking runs in plain Python over the parsed values and the DataFrame is built column-wise
once, so the handlers add little to the pipeline's own prediction time
(benchmarks/bench_inference.py).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Protocol

import numpy as np
import pandas as pd

from model_code.contract import rules
from model_code.contract.schema import Feature, Schema
from model_code.serving.media_types import CSV, JSON
from model_code.training import artifact
from model_code.training.artifact import ModelBundle


class Lookup(Protocol):
    """What fills missing features (``model_code.serving.lookup.OnlineLookup``)."""

    feature_group: str

    def __call__(self, identifiers: list[str]) -> dict[str, dict[str, str | None]]: ...


# Probability at or above which a record is given the positive class.
THRESHOLD = 0.5


class BadRequest(ValueError):
    """A request that breaks the data contract or cannot be parsed; the message names the field."""


class UnknownRecords(BadRequest):
    """Record identifiers the online store holds no record for (an online lookup's refusal)."""


class UnsupportedContentType(ValueError):
    """A Content-Type (or, with ``header="Accept"``, a requested response type) not served."""

    def __init__(self, message: str, header: str = "Content-Type"):
        super().__init__(message)
        self.header = header


def _show(value: Any) -> str:
    # Bad values are echoed back to the caller: keep the echo short.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _FeatureCheck:
    """One feature's contract (``contract.rules``) with the request's JSON typing on top."""

    __slots__ = ("expected", "name", "numeric", "rule")

    def __init__(self, feature: Feature):
        self.rule = rules.Rule.of_feature(feature)
        self.name = feature.name
        self.numeric = feature.is_numeric
        self.expected = self.rule.expected

    def from_json(self, value: Any) -> Any:
        if value is None:
            return self.rule.null()
        kind = type(value)  # exact types: bool is an int subclass but not a number here
        if self.numeric:
            if kind is int or kind is float:
                return self.rule.check_number(value)
            raise rules.Invalid(f"{_show(value)} is not a number", rules.NOT_A_NUMBER)
        if kind is str:
            return self.rule.check_text(value)
        raise rules.Invalid(f"{_show(value)} is not a string", "is not a string")

    def from_text(self, text: str) -> Any:
        return self.rule.check_text(text)


class _Contract:
    """A schema's features compiled for request checking."""

    def __init__(self, schema: Schema):
        self.names = schema.feature_names
        self.entity_id = schema.entity_id
        self.checks = [_FeatureCheck(f) for f in schema.features]

    def frame(self, columns: list[list[Any]]) -> pd.DataFrame:
        data = {}
        for check, values in zip(self.checks, columns, strict=True):
            data[check.name] = np.array(values, dtype=np.float64 if check.numeric else object)
        return pd.DataFrame(data, copy=False)


# Compiled contracts by schema identity; a server holds one model, so this stays tiny.
_contracts: dict[int, tuple[Schema, _Contract]] = {}
# The model the last model_fn call loaded: SageMaker's input_fn is not given the model.
_loaded: ModelBundle | None = None


def _contract(schema: Schema) -> _Contract:
    entry = _contracts.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, _Contract(schema))
        _contracts[id(schema)] = entry
    return entry[1]


def model_fn(model_dir: str) -> ModelBundle:
    """Load the model artifact (a folder or model.tar.gz) and make it input_fn's default."""
    global _loaded
    bundle = artifact.load(model_dir)
    _contract(bundle.schema)
    _loaded = bundle
    return bundle


def _media_type(value: str | None) -> tuple[str, dict[str, str]]:
    """``"text/csv; charset=utf-8"`` -> ("text/csv", {"charset": "utf-8"})."""
    kind, *params = (value or "").split(";")
    parsed = {}
    for param in params:
        key, _, val = param.partition("=")
        parsed[key.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), parsed


def _decode(body: Any, charset: str) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"request body: expected bytes or str, got {type(body).__name__}")
    # utf-8-sig also drops a byte-order mark some clients prepend.
    codec = "utf-8-sig" if charset.replace("-", "").replace("_", "") == "utf8" else charset
    try:
        return bytes(body).decode(codec)
    except LookupError:
        raise UnsupportedContentType(f"Content-Type: charset {charset!r} is not supported") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"request body: not valid {charset} text ({exc.reason} at byte {exc.start})"
        ) from None


def input_fn(
    request_body: Any,
    request_content_type: str | None,
    schema: Schema | None = None,
    lookup: Lookup | None = None,
) -> pd.DataFrame:
    """Parse and check a request; return the schema's feature columns in order, one row per record.

    ``schema`` defaults to the contract of the model the last ``model_fn`` call loaded;
    ``lookup`` (``model_code.serving.lookup.OnlineLookup``) fills the features a JSON record
    leaves out from the online store.
    """
    if schema is None:
        if _loaded is None:
            raise RuntimeError("input_fn: no schema given and no model loaded by model_fn")
        schema = _loaded.schema
    kind, params = _media_type(request_content_type)
    if kind not in (JSON, CSV):
        raise UnsupportedContentType(
            f"Content-Type: {request_content_type!r} is not supported; expected {JSON} or {CSV}"
        )
    text = _decode(request_body, params.get("charset", "utf-8"))
    if not text.strip():
        raise BadRequest(f"request body: empty; expected {'JSON records' if kind == JSON else 'CSV rows'}")
    contract = _contract(schema)
    columns = _from_json(text, contract, lookup) if kind == JSON else _from_csv(text, contract)
    return contract.frame(columns)


def _looked_up(records: list[Any], contract: _Contract, lookup: Lookup) -> dict[int, dict[str, str | None]]:
    """The online store's values for each record that leaves a feature out, by position."""
    several = len(records) > 1
    needed: dict[int, str] = {}
    for i, record in enumerate(records):
        if type(record) is not dict or all(name in record for name in contract.names):
            continue
        prefix = f"instances[{i}]." if several else ""
        identifier = record.get(contract.entity_id)
        if identifier is None:
            missing = next(name for name in contract.names if name not in record)
            raise BadRequest(
                f"{prefix}{contract.entity_id}: missing; expected the record identifier, to look up "
                f"the features the record leaves out ({missing}, ...) in the online store"
            )
        if type(identifier) is not str or not identifier.strip():
            raise BadRequest(
                f"{prefix}{contract.entity_id}: {_show(identifier)} is not a record identifier (a string)"
            )
        needed[i] = identifier.strip()
    if not needed:
        return {}
    found = lookup(list(needed.values()))
    unknown = list(dict.fromkeys(identifier for identifier in needed.values() if identifier not in found))
    if unknown:
        shown = ", ".join(_show(identifier) for identifier in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise UnknownRecords(
            f"{contract.entity_id}: no record in the online store of {lookup.feature_group} for {shown}{more}"
        )
    return {i: found[identifier] for i, identifier in needed.items()}


def _from_json(text: str, contract: _Contract, lookup: Lookup | None = None) -> list[list[Any]]:
    try:
        payload = json.loads(text)
    except RecursionError:
        raise BadRequest("request body: malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"request body: malformed JSON: {exc}") from None
    if isinstance(payload, dict) and "instances" in payload and "instances" not in contract.names:
        records = payload["instances"]
    elif isinstance(payload, dict):
        records = [payload]
    else:
        raise BadRequest(
            'request body: expected {"instances": [{feature: value, ...}, ...]} or one object of '
            f"feature values, got {type(payload).__name__}"
        )
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise BadRequest(f"instances: expected a list of objects of feature values, got {_show(records)}")
    if not records:
        raise BadRequest("instances: no records; expected at least one object of feature values")
    several = len(records) > 1
    for i, record in enumerate(records):
        if type(record) is not dict:
            raise BadRequest(f"instances[{i}]: expected an object of feature values, got {_show(record)}")
    stored = _looked_up(records, contract, lookup) if lookup is not None else {}
    columns: list[list[Any]] = [[] for _ in contract.checks]
    for i, record in enumerate(records):
        prefix = f"instances[{i}]." if several else ""
        online = stored.get(i)
        for check, column in zip(contract.checks, columns, strict=True):
            try:
                if check.name in record:
                    column.append(check.from_json(record[check.name]))
                elif online is not None:
                    # The online store's text, read as a CSV cell is; absent is a null.
                    column.append(check.from_text(online.get(check.name) or ""))
                else:
                    raise BadRequest(f"{prefix}{check.name}: missing; expected {check.expected}")
            except rules.Invalid as exc:
                where = " (from the online store)" if check.name not in record else ""
                raise BadRequest(f"{prefix}{check.name}{where}: {exc}") from None
    return columns


def _from_csv(text: str, contract: _Contract) -> list[list[Any]]:
    reader = csv.reader(io.StringIO(text), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row:  # blank lines (e.g. a trailing newline) carry no record
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise BadRequest(f"line {reader.line_num}: malformed CSV: {exc}") from None
    if rows and [cell.strip() for cell in rows[0][1]] == contract.names:
        rows = rows[1:]
    if not rows:
        raise BadRequest("request body: no CSV rows; expected one row of feature values per record")
    several = len(rows) > 1
    n_features = len(contract.checks)
    columns: list[list[Any]] = [[] for _ in contract.checks]
    for line, row in rows:
        prefix = f"line {line}: " if several else ""
        if len(row) != n_features:
            raise BadRequest(
                f"{prefix}expected {n_features} values ({', '.join(contract.names)}), got {len(row)}"
            )
        for check, cell, column in zip(contract.checks, row, columns, strict=True):
            try:
                column.append(check.from_text(cell))
            except rules.Invalid as exc:
                raise BadRequest(f"{prefix}{check.name}: {exc}") from None
    return columns


def predict_fn(data: pd.DataFrame, model: ModelBundle) -> list[dict[str, Any]]:
    """Positive-class probability and the predicted class, one of the schema's two class values."""
    pipeline = model.pipeline
    # Training encodes the positive class as 1 (train.fit_model).
    column = int(np.flatnonzero(pipeline.classes_ == 1)[0])
    probabilities = pipeline.predict_proba(data)[:, column].tolist()
    # The schema's classes, not the metadata's: an artifact trained before the classes were
    # taken from the schema may record 0.0, and one response must hold one type.
    positive, negative = model.schema.target.positive, model.schema.target.negative
    return [{"probability": p, "prediction": positive if p >= THRESHOLD else negative} for p in probabilities]


def response_type(accept: str | None) -> str:
    """The response content type to send for an Accept header, JSON unless CSV is preferred."""
    if not accept or not accept.strip():
        return JSON
    offers = []
    for position, item in enumerate(accept.split(",")):
        kind, params = _media_type(item)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            continue
        if quality > 0:
            offers.append((-quality, position, kind))
    for _, _, kind in sorted(offers):
        if kind in (JSON, "application/*", "*/*", "*"):
            return JSON
        if kind in (CSV, "text/*"):
            return CSV
    raise UnsupportedContentType(f"Accept: {accept!r} is not supported; expected {JSON} or {CSV}", "Accept")


def output_fn(prediction: list[dict[str, Any]], accept: str | None) -> tuple[bytes, str]:
    """Serialize predictions as (body, content type): JSON ``{"predictions": [...]}`` or CSV rows.

    CSV rows are ``probability,prediction`` with no header, one per input record, so batch
    transform can join them line by line with its input.
    """
    kind = response_type(accept)
    if kind == JSON:
        return json.dumps({"predictions": prediction}).encode(), JSON
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows((p["probability"], p["prediction"]) for p in prediction)
    return out.getvalue().encode(), CSV


def invoke(
    model: ModelBundle, body: Any, content_type: str | None, accept: str | None, lookup: Lookup | None = None
) -> tuple[bytes, str]:
    """The whole handler chain for one request; Accept is checked first so a refusal costs nothing."""
    response_type(accept)
    data = input_fn(body, content_type, model.schema, lookup)
    return output_fn(predict_fn(data, model), accept)
