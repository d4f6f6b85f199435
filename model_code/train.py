"""Training: fit the schema's pipeline on validated data and write the model artifact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from model_code import features
from model_code.artifact import ModelBundle
from model_code.schema import Schema


def class_labels(schema: Schema, target: pd.Series) -> tuple[Any, Any]:
    """The positive and negative class values as they appear in the data."""
    present = target.dropna()
    negatives = present[~schema.is_positive(present)].unique().tolist()
    if len(negatives) != 1 or len(negatives) == len(present.unique()):
        raise ValueError(
            f"{schema.target.column}: expected two classes, the positive {schema.target.positive!r} "
            f"and one other; found {sorted(map(str, present.unique()))}"
        )
    negative = negatives[0]
    return schema.target.positive, negative.item() if isinstance(negative, np.generic) else negative


def fit_model(frame: pd.DataFrame, schema: Schema, **params: Any) -> ModelBundle:
    """Fit the pipeline ``features.build_pipeline(schema, **params)`` on a validated frame."""
    positive, negative = class_labels(schema, frame[schema.target.column])
    y = schema.is_positive(frame[schema.target.column]).to_numpy(dtype=int)
    pipeline = features.fit_pipeline(features.build_pipeline(schema, **params), frame, y)
    metadata = {
        "positive_label": positive,
        "negative_label": negative,
        "params": params,
        "rows_trained": len(frame),
    }
    return ModelBundle(
        pipeline=pipeline, schema=schema, metadata=metadata, features=features.selection_report(pipeline)
    )
