"""SageMaker data capture, read back as records: the monitoring pipeline's view of served traffic.

Captured traffic is JSON Lines under
``s3://<bucket>/data-capture/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``, one invocation
per line::

    {"captureData": {"endpointInput":  {"observedContentType": "application/json", "mode": "INPUT",
                                        "data": "<request body>", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "<response body>", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "...", "inferenceId": "...", "inferenceTime": "2026-02-01T10:00:00Z"},
     "eventVersion": "0"}

``encoding`` is JSON, CSV (the body as text) or BASE64. Requests are the model server's
formats (application/json ``{"instances": [...]}`` or one object; text/csv rows in schema
feature order), responses ``{"predictions": [{"probability": p, ...}]}`` or CSV
``probability,prediction`` rows. A line that cannot be read (not JSON, an error response, not
one prediction per record...) is skipped and counted under its reason. Values are typed by
the schema as training data is: a value that does not parse becomes a null, which drift sees.

**Identity** of a captured record, for the join with ground truth: the schema's entity id when
the JSON instance carries it (the server ignores keys the contract does not name, so clients
may send it), else the request's ``inferenceId`` (or ``eventId``), suffixed ``-<i>`` with the
record's position when the request holds several records.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from model_code.contract.schema import Schema
from model_code.monitoring import quality

CAPTURE_SUFFIXES = (".jsonl", ".json")
JSON, CSV = "application/json", "text/csv"
_CAPTURE_COLUMNS = ["id", "time", "event_id", "record", "probability"]


class MalformedCapture(ValueError):
    """A capture line that cannot be read; the message is the reason it is counted under."""


@dataclass(frozen=True)
class Capture:
    """Records read from capture files: one row per record, skipped lines counted by reason.

    ``records`` has ``id``, ``time`` (UTC), ``event_id``, ``record`` (position in its
    request), ``probability`` and one column per schema feature, with values as sent.
    """

    records: pd.DataFrame
    lines: int
    malformed: dict[str, int]


def _media_type(side: dict) -> str:
    return str(side.get("observedContentType") or "").split(";")[0].strip().lower()


def _body(side: Any, which: str) -> Any:
    """A request or response body as text (or as parsed JSON, if captured that way)."""
    if not isinstance(side, dict) or side.get("data") is None:
        raise MalformedCapture(f"{which}: no data")
    data, encoding = side["data"], str(side.get("encoding") or "").upper()
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True).decode("utf-8-sig")
        except (binascii.Error, TypeError, ValueError):
            raise MalformedCapture(f"{which}: undecodable BASE64 data") from None
    return data


def _json(body: Any, which: str) -> Any:
    if not isinstance(body, str):
        return body
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedCapture(f"{which}: malformed JSON") from None


def _csv_rows(body: Any, which: str) -> list[list[str]]:
    if not isinstance(body, str):
        raise MalformedCapture(f"{which}: CSV data is not text")
    try:
        return [row for row in csv.reader(io.StringIO(body), strict=True) if row]
    except csv.Error:
        raise MalformedCapture(f"{which}: malformed CSV") from None


def _request_records(side: Any, names: list[str]) -> list[dict[str, Any]]:
    body, kind = _body(side, "endpointInput"), _media_type(side)
    if kind == JSON:
        payload = _json(body, "endpointInput")
        records = payload.get("instances", payload) if isinstance(payload, dict) else None
        records = [records] if isinstance(records, dict) else records
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise MalformedCapture("endpointInput: not instances of feature values")
        return records
    if kind == CSV:
        rows = _csv_rows(body, "endpointInput")
        if rows and [cell.strip() for cell in rows[0]] == names:
            rows = rows[1:]
        if any(len(row) != len(names) for row in rows):
            raise MalformedCapture("endpointInput: CSV row without one value per feature")
        return [dict(zip(names, row, strict=True)) for row in rows]
    raise MalformedCapture("endpointInput: unsupported content type")


def _probability(value: Any) -> float:
    if isinstance(value, dict):
        value = value.get(quality.PROBABILITY_COLUMN)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")  # counted as an invalid prediction by the quality check


def _response_probabilities(side: Any) -> list[float]:
    body, kind = _body(side, "endpointOutput"), _media_type(side)
    if kind == JSON:
        payload = _json(body, "endpointOutput")
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if not isinstance(predictions, list):
            raise MalformedCapture("endpointOutput: no predictions (an error response?)")
        return [_probability(p) for p in predictions]
    if kind == CSV:
        return [_probability(row[0]) for row in _csv_rows(body, "endpointOutput")]
    raise MalformedCapture("endpointOutput: unsupported content type")


def _inference_time(meta: dict) -> datetime:
    text = meta.get("inferenceTime")
    try:
        stamp = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise MalformedCapture("eventMetadata.inferenceTime: missing or not ISO-8601") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def parse_capture_line(line: str, schema: Schema) -> list[tuple]:
    """The records of one capture line as tuples (``_CAPTURE_COLUMNS`` then the features).

    Raises
    ------
    MalformedCapture
        Naming what is wrong with the line, in words that do not vary per line (they are counted).
    """
    try:
        event = json.loads(line)
    except ValueError:
        raise MalformedCapture("not a JSON line") from None
    capture = event.get("captureData") if isinstance(event, dict) else None
    meta = event.get("eventMetadata") if isinstance(event, dict) else None
    if not isinstance(capture, dict) or not isinstance(meta, dict):
        raise MalformedCapture("not a data-capture record (captureData, eventMetadata)")
    names = schema.feature_names
    records = _request_records(capture.get("endpointInput"), names)
    probabilities = _response_probabilities(capture.get("endpointOutput"))
    if len(probabilities) != len(records):
        raise MalformedCapture("as many predictions as records expected")
    time = _inference_time(meta)
    event_id = meta.get("eventId")
    base = meta.get("inferenceId") or event_id
    several = len(records) > 1
    rows = []
    for i, (record, probability) in enumerate(zip(records, probabilities, strict=True)):
        entity = record.get(schema.entity_id)
        if entity is not None:
            record_id = str(entity)
        elif base is not None:
            record_id = f"{base}-{i}" if several else str(base)
        else:
            record_id = None
        rows.append((record_id, time, event_id, i, probability, *(record.get(n) for n in names)))
    return rows


def read_captures(files: list[Path], schema: Schema) -> Capture:
    """Every record of the capture files, in file then line order."""
    rows: list[tuple] = []
    malformed: Counter[str] = Counter()
    lines = 0
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                lines += 1
                try:
                    rows.extend(parse_capture_line(line, schema))
                except MalformedCapture as exc:
                    malformed[str(exc)] += 1
    columns = [*_CAPTURE_COLUMNS, *schema.feature_names]
    records = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    records["time"] = pd.to_datetime(records["time"], utc=True)
    records["probability"] = pd.to_numeric(records["probability"], errors="coerce")
    return Capture(records, lines, dict(sorted(malformed.items())))
