"""The scenario's data: any CSV a schema describes, split and drifted generically from the schema.

* The file is read as text, as ingestion reads it, and typed by the contract
  (``model_code.contract.rules``): a numeric column with a blank or a word in it is still a
  numeric column, each value read as a number or found invalid, never a column of strings.
* ``rows_in`` counts every row of the input file; every row not held out is uploaded as the
  file spelled it, so ingestion's quarantine sees the dirty rows.
* A seeded split, stratified on the target, keeps ``traffic_share`` of the rows that satisfy
  the contract aside as traffic the model never trains on, typed: requests carry numbers as
  JSON numbers, and the ground truth fed back is the held-out rows' labels.
* The traffic that drifts (phase 2, ``drifted``), whose labelled outcomes come back as new
  records of the feature group for the retraining to learn from, is never the held-out
  traffic, which stays rows no model version trained on. With the built-in synthetic data it
  is ``drift_share`` as many new customers generated with data drift (inputs moved, labels
  from the same relation: covariate shift, what a retraining can learn); with a given file,
  ``drift_share`` of its clean rows held out like the traffic, with drift planted.
* Planted drift: each numeric feature shifted by ``shift`` of its standard deviation (clipped
  to the schema's limits), and the mix of the first categorical feature tilted towards its
  rarest value. Nothing is specific to one dataset.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model_code.contract import rules
from model_code.contract import schema as contract
from model_code.contract.synthetic import generate


@dataclass
class Prepared:
    schema: contract.Schema
    schema_path: Path
    rows_in: int
    training: pd.DataFrame  # uploaded to raw/: every row not kept as traffic, dirty ones too, as text
    traffic: pd.DataFrame  # held out, clean, typed by the contract, with the target (the ground truth)
    drifted: pd.DataFrame  # phase 2's drifted traffic, typed, with its labels (fed back as records)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as its CSV spells it: every value text, an empty cell null (ingestion's reading)."""
    return pd.read_csv(
        io.StringIO(frame.to_csv(index=False)), dtype=str, keep_default_na=False, na_values=[""]
    )


def load(
    schema_path: Path | None, data_path: Path | None, *, rows: int, seed: int
) -> tuple[contract.Schema, Path, pd.DataFrame]:
    """The schema and the raw frame, as text: the given CSV, or the built-in synthetic churn data."""
    path = Path(schema_path) if schema_path else contract.EXAMPLE_SCHEMA
    schema = contract.load(path)
    if data_path is None:
        if schema_path is not None:
            raise ValueError(
                "--data: a CSV is needed with --schema (the synthetic data fits only the example schema)"
            )
        frame = as_text(generate(rows, seed=seed, dirty=0.02))
    else:
        frame = pd.read_csv(data_path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [
        c
        for c in (schema.entity_id, schema.target.column, *(f.name for f in schema.features))
        if c not in frame
    ]
    if missing:
        raise ValueError(f"--data: columns {missing} named by the schema {path} are missing from the CSV")
    return schema, path, frame


def typed(schema: contract.Schema, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """``frame`` typed by the contract, and which rows keep it (every column valid, a label).

    The same rules validation, training and serving apply; a column none of whose values reads
    as its type (a whole column of ``n/a``) is refused here, as ingestion would refuse the file.
    """
    values, checked = rules.check_frame(frame, schema)
    if checked.unparsed:
        raise ValueError(
            f"--data: no value of {', '.join(checked.unparsed)} reads as its type in the schema; "
            "is it the right column?"
        )
    valid = ~checked.reasons.notna().any(axis=1) & values[schema.target.column].notna()
    return values, valid


def split(
    schema: contract.Schema, frame: pd.DataFrame, *, traffic_share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (uploaded, as given) and held-out traffic rows (typed), stratified on the target."""
    values, valid = typed(schema, frame)
    clean = values[valid]
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for _, group in clean.groupby(schema.target.column):
        n = round(len(group) * traffic_share)
        held += list(rng.choice(group.index.to_numpy(), n, replace=False))
    traffic = values.loc[sorted(held)]
    return frame.drop(index=traffic.index), traffic


def drift(schema: contract.Schema, frame: pd.DataFrame, *, shift: float = 1.5, seed: int = 0) -> pd.DataFrame:
    """``frame`` with planted data drift, generic from the schema (see the module docstring)."""
    rng = np.random.default_rng(seed)
    drifted = frame.copy()
    categorical = [f for f in schema.features if f.values is not None]
    for feature in schema.features:
        if feature.values is not None:
            continue
        values = pd.to_numeric(drifted[feature.name], errors="coerce")
        moved = values + shift * (values.std() or 1.0)
        moved = moved.clip(lower=feature.min, upper=feature.max)
        if feature.type == "integral":
            moved = moved.round()
        drifted[feature.name] = moved.astype(values.dtype) if values.notna().all() else moved
    if categorical:
        feature = categorical[0]
        rarest = frame[feature.name].value_counts().reindex(feature.values).fillna(0).idxmin()
        tilt = rng.random(len(drifted)) < 0.6
        drifted.loc[tilt, feature.name] = rarest
    return drifted


def prepare(
    schema_path: Path | None,
    data_path: Path | None,
    *,
    rows: int = 2000,
    traffic_share: float = 0.2,
    drift_share: float = 0.1,
    seed: int = 0,
) -> Prepared:
    schema, path, frame = load(schema_path, data_path, rows=rows, seed=seed)
    training, traffic = split(schema, frame, traffic_share=traffic_share, seed=seed)
    if data_path is None:
        generated = as_text(generate(round(rows * drift_share), seed=seed + 1, data_drift=1.0, id_prefix="D"))
        values, valid = typed(schema, generated)
        drifted = values[valid]
    else:
        # The pool's share of the whole file, taken from what is left after the traffic.
        training, pool = split(
            schema, training, traffic_share=drift_share / (1 - traffic_share), seed=seed + 1
        )
        drifted = drift(schema, pool, seed=seed)
    return Prepared(schema, path, len(frame), training, traffic, drifted)
