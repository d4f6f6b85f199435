"""The model artifact: one self-contained folder (SageMaker's model.tar.gz when packed).

::

    model.joblib    the fitted scikit-learn pipeline (preprocessing, selection, classifier)
    schema.yaml     the data contract the model was trained on (the inference input check)
    features.json   the selection method, the chosen features and their scores, the model chosen
    metadata.json   class labels, hyperparameters, data and code versions, model selection's
                    candidates with their cross-validated AUCs
    run.json        the tracked run (``model_code.training.tracking.run_record``), written by
                    ``mlops train``: where the run lasts when there is no tracking server

Everything inference needs is inside, so a model package is served by any container
holding the project's code, with no other file or service.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import yaml
from sklearn.pipeline import Pipeline

from model_code.contract import schema as schema_mod
from model_code.contract.schema import Schema

MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.yaml"
FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"


@dataclass
class ModelBundle:
    """A loaded model: the pipeline plus what is needed to check inputs and label outputs."""

    pipeline: Pipeline
    schema: Schema
    metadata: dict[str, Any]
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def positive_label(self) -> Any:
        return self.metadata["positive_label"]

    @property
    def negative_label(self) -> Any:
        return self.metadata["negative_label"]


def save(model_dir: str | Path, bundle: ModelBundle) -> Path:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(bundle.pipeline, model_dir / MODEL_FILE)
    (model_dir / SCHEMA_FILE).write_text(yaml.safe_dump(bundle.schema.to_dict(), sort_keys=False))
    (model_dir / FEATURES_FILE).write_text(json.dumps(bundle.features, indent=2, sort_keys=True))
    (model_dir / METADATA_FILE).write_text(json.dumps(bundle.metadata, indent=2, sort_keys=True, default=str))
    return model_dir


def unpack(model_dir: str | Path) -> Path:
    """Return a folder holding model.joblib, extracting a SageMaker model.tar.gz if that is what is there."""
    model_dir = Path(model_dir)
    if (model_dir / MODEL_FILE).exists():
        return model_dir
    archive = model_dir / "model.tar.gz" if model_dir.is_dir() else model_dir
    if archive.is_file() and tarfile.is_tarfile(archive):
        target = archive.parent / "model"
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        return target
    raise FileNotFoundError(f"{model_dir}: no {MODEL_FILE} or model.tar.gz found")


def pack(model_dir: str | Path, archive: str | Path) -> Path:
    """Pack a model folder as SageMaker's model.tar.gz (files at the archive root)."""
    archive = Path(archive)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def load(model_dir: str | Path) -> ModelBundle:
    model_dir = unpack(model_dir)
    pipeline = joblib.load(model_dir / MODEL_FILE)
    schema = schema_mod.load(model_dir / SCHEMA_FILE)
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    features = json.loads((model_dir / FEATURES_FILE).read_text())
    return ModelBundle(pipeline=pipeline, schema=schema, metadata=metadata, features=features)
