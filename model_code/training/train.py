"""Training: fit the schema's pipeline on validated data and write the model artifact.

``mlops train`` follows SageMaker's training contract, so the same command runs in a
training job, in the local executor and on a laptop::

    /opt/ml/input/data/train/*.csv|*.parquet    training channel   (--train, SM_CHANNEL_TRAIN)
    /opt/ml/input/data/validation/              optional channel   (--validation, SM_CHANNEL_VALIDATION)
    /opt/ml/input/data/schema/*.yaml            optional channel   (--schema, SM_CHANNEL_SCHEMA)
    /opt/ml/input/config/hyperparameters.json   hyperparameters, as "--name value" arguments
    /opt/ml/model/                              the artifact       (--model-dir, SM_MODEL_DIR)
    /opt/ml/output/failure                      the reason, when the job fails (exit 1)

Hyperparameters may also be given on the command line; those win over the file. The model
type is chosen by cross-validation unless named (``--model-type auto``, the default; see
``model_code.training.selection``). Every run is recorded as ``run.json`` in the artifact
and tracked (see ``model_code.training.tracking``) unless ``--no-track`` or ``MLOPS_TRACKING=off``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from model_code import container, metrics
from model_code.contract import schema as schema_mod
from model_code.contract import table
from model_code.contract.schema import Schema
from model_code.training import artifact, cores, features, selection, tracking
from model_code.training.artifact import ModelBundle

DATA_SUFFIXES = (".csv", ".parquet")
# Metrics that are single numbers, i.e. what an experiment tracker can chart and sort.
SCALAR_METRICS = (
    "auc",
    "pr_auc",
    "f1",
    "precision",
    "recall",
    "accuracy",
    "log_loss",
    "brier",
    "calibration_error",
)
HYPERPARAMETERS = (
    "selection",
    "n_features",
    "encoding",
    "model_type",
    "search",
    "cv_folds",
    "search_rows",
    "n_jobs",
    "n_estimators",
    "learning_rate",
    "max_depth",
    "random_state",
)
_PACKAGE_DIR = Path(__file__).resolve().parent


class HyperparameterError(ValueError):
    """A hyperparameter SageMaker passed that this step cannot use; the message names it."""


def class_labels(schema: Schema, target: pd.Series) -> tuple[Any, Any]:
    """The positive and negative class values as the schema spells them, both in the data.

    They come from the contract, not the data, so a blank label cannot turn them into floats.
    """
    positive, negative = schema.target.positive, schema.target.negative
    is_positive = schema.is_positive(target.dropna())
    if is_positive.all() or not is_positive.any():
        raise ValueError(
            f"{schema.target.column}: expected two classes, {negative!r} and {positive!r}; "
            f"found only {sorted(map(str, target.dropna().unique()))}"
        )
    return positive, negative


def fit_model(frame: pd.DataFrame, schema: Schema, *, n_jobs: int = 1, **params: Any) -> ModelBundle:
    """Fit the pipeline ``features.build_pipeline(schema, **params)`` on a validated frame.

    Rows without a label cannot teach anything; they are left out and counted in the
    metadata (``rows_unlabelled``) rather than read as the negative class. ``n_jobs`` cores
    fit it (``features.fit_pipeline``).
    """
    labelled = frame[frame[schema.target.column].notna()]
    positive, negative = class_labels(schema, labelled[schema.target.column])
    y = schema.is_positive(labelled[schema.target.column]).to_numpy(dtype=int)
    pipeline = features.fit_pipeline(features.build_pipeline(schema, **params), labelled, y, n_jobs=n_jobs)
    metadata = {
        "positive_label": positive,
        "negative_label": negative,
        "params": params,
        "rows_trained": len(labelled),
        "rows_unlabelled": len(frame) - len(labelled),
        # Rows the data contract refused (read_channel), by rule: never fitted on.
        "rows_rejected": frame.attrs.get("rows_rejected", 0),
        "rejected_reasons": frame.attrs.get("rejected_reasons", {}),
    }
    return ModelBundle(
        pipeline=pipeline, schema=schema, metadata=metadata, features=features.selection_report(pipeline)
    )


def score(bundle: ModelBundle, frame: pd.DataFrame) -> dict[str, Any]:
    """The model's quality on labelled rows, as ``metrics.classification_metrics`` reports it."""
    target = bundle.schema.target.column
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise ValueError(f"{target}: no labelled rows to score")
    proba = bundle.pipeline.predict_proba(labelled)[:, 1]
    return metrics.classification_metrics(bundle.schema.is_positive(labelled[target]), proba)


def data_files(channel: str | Path) -> list[Path]:
    """The CSV and Parquet files of a channel (nested prefixes included), sorted by name."""
    root = Path(channel)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)


def read_channel(channel: str | Path, schema: Schema) -> pd.DataFrame:
    """Every data file of a channel read by the schema, as one frame; errors name the channel.

    Rows that break the data contract (a value not of its type, inf, out of bounds, a
    malformed line, a label that is no class) are left out and counted in
    ``frame.attrs`` (``rows_in``, ``rows_rejected``, ``rejected_reasons``), so every row
    read is accounted for; see ``contract.rules``.
    """
    files = data_files(channel)
    if not files:
        raise ValueError(f"{channel}: no CSV or Parquet files found")
    frame, accounting = table.valid_rows(files, schema, str(channel))
    missing = [c for c in [*schema.feature_names, schema.target.column] if c not in frame.columns]
    if missing:
        raise ValueError(f"{channel}: missing columns the schema requires: {', '.join(missing)}")
    frame.attrs.update(files=[str(f) for f in files], **accounting)
    print(
        f"{channel}: read {accounting['rows_in']} rows from {len(files)} file(s); "
        f"{len(frame)} kept, {accounting['rows_rejected']} rejected by the data contract"
        + "".join(f"\n  {n} x {reason}" for reason, n in accounting["rejected_reasons"].items())
    )
    return frame


# Whole numbers up to 2**24 are exact in float32: an integral feature within these bounds
# loses nothing in half the bytes of float64 (and a third of nullable Int64's).
_FLOAT32_EXACT = 2**24


def compact(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Only the columns a model learns from (features and target), in compact types.

    The id and event time are not fitted on, so they are dropped; string features become
    categoricals (a byte a row for a few categories, instead of a string object); integral
    features whose values are whole numbers within +-2**24 become float32, exactly; fractional
    ones stay float64, as the pipeline reads them. The frame's ``attrs`` (the accounting) stay.
    """
    columns = {}
    for feature in schema.features:
        column = frame[feature.name]
        if feature.type == "string":
            column = column.astype("category")
        elif feature.type == "integral":
            values = column.to_numpy(dtype="float64", na_value=np.nan)
            exact = np.nanmax(np.abs(values), initial=0.0) < _FLOAT32_EXACT
            column = pd.Series(values.astype("float32" if exact else "float64"), index=frame.index)
        columns[feature.name] = column
    target = schema.target.column
    columns[target] = frame[target]
    out = pd.DataFrame(columns, index=frame.index)
    out.attrs.update(frame.attrs)
    return out


def data_version(files: list[Path]) -> str:
    """A sha256 over the files' bytes in name order: the same data gives the same version.

    Each file is hashed on its own first so that moving bytes between files changes the
    version; file names do not count, so copying the data elsewhere keeps it.
    """
    outer = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{outer.hexdigest()}"


def code_version() -> str:
    """The code that trained: MLOPS_CODE_VERSION, else the git commit, else a source hash.

    Training containers hold no .git, so the image build (or CI) sets MLOPS_CODE_VERSION;
    a checkout with uncommitted changes to model_code is marked ``-dirty`` so that a run
    never claims a commit it did not run.
    """
    if os.environ.get("MLOPS_CODE_VERSION"):
        return os.environ["MLOPS_CODE_VERSION"]
    try:
        git = ["git", "-C", str(_PACKAGE_DIR)]
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return f"git:{commit}{'-dirty' if changes else ''}"
    except (OSError, subprocess.SubprocessError):
        digest = hashlib.sha256()
        for path in sorted(_PACKAGE_DIR.rglob("*")):
            if path.suffix in (".py", ".yaml"):
                digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
                digest.update(path.read_bytes())
        return f"sha256:{digest.hexdigest()}"


def find_schema(explicit: str | None, train_dir: str | Path, schema_channel: str | None) -> Path:
    """The contract to train with: --schema, else schema.yaml in the data, else the example."""
    if explicit:
        return Path(explicit)
    candidates = [Path(train_dir) / "schema.yaml"]
    if schema_channel and Path(schema_channel).is_dir():
        candidates += sorted(Path(schema_channel).glob("*.y*ml"))
    elif schema_channel:
        candidates.append(Path(schema_channel))
    return next((c for c in candidates if c.is_file()), schema_mod.EXAMPLE_SCHEMA)


class _Parser(argparse.ArgumentParser):
    # SageMaker shows a job's failure file, not its usage text, so errors are raised to
    # main() and written there instead of argparse printing usage and exiting 2.
    def error(self, message: str):
        raise HyperparameterError(message)


def _max_depth(text: str) -> int | None:
    # SageMaker passes every hyperparameter as a string: "None" (or 0) means no limit.
    if text.strip().lower() in ("", "none", "null", "0"):
        return None
    return int(text)


def _optional_channel(env: str, name: str) -> str | None:
    default = f"/opt/ml/input/data/{name}"
    return os.environ.get(env) or (default if Path(default).is_dir() else None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlops train", description="Train a model (SageMaker training contract).")
    channels = parser.add_argument_group("paths (SageMaker defaults)")
    channels.add_argument(
        "--model-dir",
        default=container.env_path("SM_MODEL_DIR", "/opt/ml/model"),
        help="where the artifact goes (default: SM_MODEL_DIR or %(default)s)",
    )
    channels.add_argument(
        "--train",
        default=container.env_path("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"),
        help="folder of training CSV/Parquet files (default: SM_CHANNEL_TRAIN or %(default)s)",
    )
    channels.add_argument(
        "--validation",
        default=_optional_channel("SM_CHANNEL_VALIDATION", "validation"),
        help="optional folder of validation files, scored after training",
    )
    channels.add_argument("--schema", help="schema file (default: schema.yaml in the data, else the example)")
    hps = parser.add_argument_group("hyperparameters (SageMaker's hyperparameters.json is read too)")
    # Each name also answers to its underscore spelling, as SageMaker users often write it.
    hps.add_argument(
        "--selection",
        default="none",
        choices=features.SELECTION_METHODS,
        metavar="METHOD",
        help=" | ".join(features.SELECTION_METHODS),
    )
    hps.add_argument("--n-features", "--n_features", type=int, default=10, metavar="N")
    hps.add_argument(
        "--encoding",
        default="onehot",
        choices=features.ENCODINGS,
        metavar="ENCODING",
        help=" | ".join(features.ENCODINGS),
    )
    hps.add_argument(
        "--model-type",
        "--model_type",
        default=selection.AUTO,
        choices=selection.MODEL_TYPES,
        metavar="TYPE",
        help=" | ".join(selection.MODEL_TYPES) + " (auto: the best cross-validated; default)",
    )
    hps.add_argument(
        "--search",
        default="grid",
        choices=selection.SEARCHES,
        metavar="SEARCH",
        help="grid | quick (auto only)",
    )
    hps.add_argument("--cv-folds", "--cv_folds", type=int, default=selection.DEFAULT_CV_FOLDS, metavar="K")
    hps.add_argument(
        "--search-rows",
        "--search_rows",
        type=int,
        default=selection.DEFAULT_SEARCH_ROWS,
        metavar="N",
        help="above N labelled rows the model search runs on a stratified sample of N, and the "
        "choice is refitted on all rows (0: search on every row; default %(default)s)",
    )
    hps.add_argument(
        "--n-jobs",
        "--n_jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes of the model search (0: one per core, the default; 1: serial)",
    )
    hps.add_argument("--n-estimators", "--n_estimators", type=int, default=200, metavar="N")
    hps.add_argument("--learning-rate", "--learning_rate", type=float, default=0.05, metavar="RATE")
    hps.add_argument("--max-depth", "--max_depth", type=_max_depth, default=None, metavar="DEPTH")
    hps.add_argument("--random-state", "--random_state", type=int, default=0, metavar="SEED")
    run = parser.add_argument_group("tracking")
    run.add_argument("--no-track", action="store_true", help="do not record the run (or MLOPS_TRACKING=off)")
    run.add_argument("--trigger-reason", default=os.environ.get("MLOPS_TRIGGER_REASON"))
    run.add_argument("--execution-id", default=os.environ.get("MLOPS_EXECUTION_ID"))
    return parser


def hyperparameter_file_args(config_dir: str | Path | None = None) -> list[str]:
    """SageMaker's hyperparameters.json as ``--name value`` arguments (empty when absent)."""
    config_dir = Path(config_dir or container.env_path("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    path = config_dir / "hyperparameters.json"
    if not path.is_file():
        return []
    args = []
    for key, value in json.loads(path.read_text()).items():
        if key.startswith(("sagemaker_", "_")):  # the SDK's own bookkeeping, not ours
            continue
        args += [f"--{key.replace('_', '-')}", _unquote(str(value))]
    return args


def _unquote(value: str) -> str:
    # Some SDK paths JSON-encode each value ('"logistic"'); SageMaker stores them as given.
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except json.JSONDecodeError:
            pass
    return value


def check_hyperparameters(args: argparse.Namespace) -> None:
    """Reject values argparse's types let through; the message names the argument."""
    for name, value, low in (
        ("--n-features", args.n_features, 1),
        ("--n-estimators", args.n_estimators, 1),
        ("--cv-folds", args.cv_folds, 2),
        ("--search-rows", args.search_rows, 0),
        ("--n-jobs", args.n_jobs, 0),
    ):
        if value < low:
            raise HyperparameterError(f"argument {name}: expected an integer >= {low}, got {value}")
    if not (np.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise HyperparameterError(
            f"argument --learning-rate: expected a number > 0, got {args.learning_rate}"
        )
    if args.max_depth is not None and args.max_depth < 1:
        raise HyperparameterError(
            f"argument --max-depth: expected an integer >= 1 or None, got {args.max_depth}"
        )


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    """The flat hyperparameters of a run, as recorded in metadata.json and the tracker."""
    return {k: getattr(args, k) for k in HYPERPARAMETERS}


def announce(trigger_reason: str | None, client: Any = None) -> bool:
    """Inside a pipeline (``MLOPS_PIPELINE_NAME`` set), publish ``RetrainingStarted`` = 1 by
    pipeline and trigger reason; elsewhere (a test, a laptop) publish nothing. A metric that
    cannot be published is reported, and training goes on: the model is the run's result."""
    pipeline = os.environ.get(metrics.PIPELINE_NAME_ENV, "").strip()
    if not pipeline:
        return False
    dims = {"PipelineName": pipeline, "TriggerReason": trigger_reason or "unknown"}
    try:
        if client is None:
            import boto3

            client = boto3.client("cloudwatch")
        client.put_metric_data(
            Namespace=metrics.NAMESPACE,
            MetricData=[metrics.metric_datum(metrics.RETRAINING_STARTED, 1, dims, unit="Count")],
        )
    except Exception as error:
        print(f"train: could not publish {metrics.RETRAINING_STARTED}: {error}", file=sys.stderr)
        return False
    return True


def train(args: argparse.Namespace) -> tuple[ModelBundle, dict[str, float]]:
    """Read the channels, fit, and save the artifact; returns it with any validation metrics."""
    schema_channel = _optional_channel("SM_CHANNEL_SCHEMA", "schema")
    schema = schema_mod.load(find_schema(args.schema, args.train, schema_channel))
    announce(args.trigger_reason)
    frame = compact(read_channel(args.train, schema), schema)
    hp = hyperparameters(args)
    pipeline_args = {k: hp[k] for k in ("selection", "n_features", "encoding", "random_state")}
    labelled = frame[frame[schema.target.column].notna()]
    class_labels(schema, labelled[schema.target.column])  # two classes, or a clear error first
    choice = selection.cross_validate(
        labelled,
        schema.is_positive(labelled[schema.target.column]).to_numpy(dtype=int),
        schema,
        model_type=hp["model_type"],
        params={k: hp[k] for k in ("n_estimators", "learning_rate", "max_depth")},
        search=hp["search"],
        cv_folds=hp["cv_folds"],
        n_jobs=hp["n_jobs"],
        search_rows=hp["search_rows"],
        **pipeline_args,
    )
    sampled = f"a stratified sample of {choice.rows_searched} rows" if choice.sampled else "every row"
    print(
        f"model search: {len(choice.candidates)} candidate(s) x {choice.cv_folds} folds on {sampled} "
        f"of {choice.rows_total}, {choice.parallel['workers']} worker(s) x "
        f"{choice.parallel['threads_per_worker']} thread(s) on {choice.parallel['cores']} core(s)"
    )
    best = choice.best
    # The refit is one fit on every row: it gets every core (the search's workers are idle).
    bundle = fit_model(
        frame,
        schema,
        model_type=best.model_type,
        model_params=best.params,
        n_jobs=choice.parallel["cores"] if hp["n_jobs"] != 1 else 1,
        **pipeline_args,
    )
    bundle.features["model"] = {"model_type": best.model_type, "params": best.params, "cv_auc": best.cv_auc}
    validation: dict[str, float] = {}
    if args.validation:
        full = score(bundle, read_channel(args.validation, schema))
        validation = {k: full[k] for k in SCALAR_METRICS if full.get(k) is not None}
    bundle.metadata.update(
        params=hp,
        schema_name=schema.name,
        data_version=data_version([Path(f) for f in frame.attrs["files"]]),
        training_files=[Path(f).name for f in frame.attrs["files"]],
        code_version=code_version(),
        sklearn_version=sklearn.__version__,
        instance_type=cores.instance_type(),
        validation_metrics=validation,
        model_selection=choice.to_dict(),
    )
    artifact.save(args.model_dir, bundle)
    return bundle, validation


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args([*hyperparameter_file_args(), *argv])
        check_hyperparameters(args)
    except HyperparameterError as exc:
        return container.fail(f"train: bad hyperparameter: {exc}", job=container.TRAINING)
    try:
        bundle, validation = train(args)
    except (ValueError, schema_mod.SchemaError) as exc:
        return container.fail(f"train: {exc}", job=container.TRAINING)
    meta = bundle.metadata
    chosen = meta["model_selection"]
    print(
        f"trained {chosen['model_type']} (cross-validated auc {chosen['cv_auc']:.4f} over "
        f"{len(chosen['candidates'])} candidate(s)) on {meta['rows_trained']} rows "
        f"({meta['rows_unlabelled']} unlabelled, {meta['rows_rejected']} rejected by the contract) "
        f"({meta['data_version'][:19]}, code {meta['code_version'][:16]}); model in {args.model_dir}"
    )
    if validation:
        print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in validation.items()))
    return tracking.track_training_run(
        bundle,
        args.model_dir,
        metrics=validation,
        trigger_reason=args.trigger_reason,
        execution_id=args.execution_id,
        log=not args.no_track and tracking.enabled(),
    )


if __name__ == "__main__":
    sys.exit(main())
