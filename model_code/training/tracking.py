"""Experiment tracking with MLflow: every training run, its parameters, metrics, versions and model.

Where runs go::

    MLFLOW_TRACKING_URI set      that store (a tracking server, SageMaker managed MLflow,
                                 another sqlite file; a sqlite file keeps its artifacts in
                                 an ``mlartifacts`` folder beside it)
    in a SageMaker training job  nowhere else than the record below: the container's disk
    (TRAINING_JOB_NAME set) and  dies with the job and is not even writable by the job's
    no MLOPS_STATE_DIR           user, so a SQLite file there would fail or vanish
    otherwise                    sqlite:///<state>/mlflow.db, artifacts in <state>/mlartifacts,
                                 where <state> is MLOPS_STATE_DIR, else ./.state (git-ignored)

Whatever the store, every training run is also written as ``run.json`` (:func:`run_record`)
into the model folder, so it travels in model.tar.gz with the model package, and into the
job's output data folder (``SM_OUTPUT_DATA_DIR``, SageMaker's output.tar.gz): dev and staging,
which run without a tracking server, keep their runs where they last.

One experiment per data contract (named after the schema). A run holds the hyperparameters
as params, in-process metrics (e.g. on the validation channel, and ``cv_auc``, the
cross-validated AUC every run has), the tags ``data_version``, ``code_version``, ``schema``
and, when known, ``trigger_reason`` and ``pipeline_execution_id``, and the model folder as
artifacts under ``model/``. Each candidate of model selection is a nested run under it
(MLflow's ``mlflow.parentRunId`` tag) with its hyperparameters and cross-validated AUC.

``mlops experiments`` prints the runs of an experiment side by side, best first. MLflow is
imported only when a run is logged or read, so importing training code stays cheap.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from model_code.training.artifact import ModelBundle

STATE_ENV = "MLOPS_STATE_DIR"
# Metrics where a smaller value is the better model; every other metric sorts descending.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "calibration_error"})
VERSION_TAGS = ("data_version", "code_version")
RUN_FILE = "run.json"
PARENT_TAG = "mlflow.parentRunId"


def state_dir() -> Path:
    """The repository's local state folder (git-ignored): MLOPS_STATE_DIR or ./.state."""
    return Path(os.environ.get(STATE_ENV) or Path.cwd() / ".state")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the sqlite file in the state folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(state_dir() / 'mlflow.db').resolve()}"


def store_uri() -> str | None:
    """The MLflow store runs are logged to, or None in a SageMaker job without a server.

    In a training job (``TRAINING_JOB_NAME`` is set by SageMaker) the working directory is
    the container's throwaway disk: without MLFLOW_TRACKING_URI (or an explicit
    MLOPS_STATE_DIR) the run is kept only in its record, :data:`RUN_FILE`, in the artifact.
    """
    if os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get(STATE_ENV):
        return tracking_uri()
    return None if os.environ.get("TRAINING_JOB_NAME") else tracking_uri()


def enabled() -> bool:
    """False when MLOPS_TRACKING is off (or 0/false/no), e.g. in a quick experiment."""
    return os.environ.get("MLOPS_TRACKING", "on").strip().lower() not in ("off", "0", "false", "no")


def _sqlite_file(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def _artifact_root(uri: str) -> str | None:
    # A server decides where its artifacts live; for a local sqlite file MLflow would use
    # ./mlruns in whatever the working directory is, so keep them beside the database.
    db = _sqlite_file(uri)
    return (db.resolve().parent / "mlartifacts").as_uri() if db else None


def _client(uri: str | None = None):
    """An MlflowClient bound to ``uri`` (no global MLflow state is touched), made quiet."""
    uri = uri or tracking_uri()
    db = _sqlite_file(uri)
    if db:
        db.parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    # MLflow configures its loggers at import; its schema migrations log at INFO on
    # every new database, which is noise in a training job's log.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_root(uri))
    except MlflowException:
        # Another run created it between the lookup and the create.
        return client.get_experiment_by_name(name).experiment_id


def log_run(
    *,
    experiment: str,
    params: dict[str, Any],
    metrics: dict[str, float] | None = None,
    tags: dict[str, Any] | None = None,
    artifact_dir: str | Path | None = None,
    run_name: str | None = None,
    uri: str | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Record one finished run (nested under ``parent_run_id`` if given) and return its id.

    A failure while logging marks the run FAILED.
    """
    from mlflow.entities import Metric, Param

    uri = uri or tracking_uri()
    client = _client(uri)
    tags = {
        k: str(v) for k, v in ({**(tags or {}), PARENT_TAG: parent_run_id}).items() if v not in (None, "")
    }
    run = client.create_run(_experiment_id(client, experiment, uri), tags=tags, run_name=run_name)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if v is not None],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        if artifact_dir is not None:
            client.log_artifacts(run_id, str(artifact_dir), artifact_path="model")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def run_record(
    bundle: ModelBundle,
    *,
    metrics: dict[str, float] | None = None,
    trigger_reason: str | None = None,
    execution_id: str | None = None,
) -> dict[str, Any]:
    """A training run as plain data: what :func:`log_training_run` logs, and ``run.json`` holds.

    ``candidates`` are model selection's nested runs (``model_code.training.selection``).
    """
    meta = bundle.metadata
    chosen = meta.get("model_selection") or {}
    params = {**meta.get("params", {})}
    if chosen:
        params["chosen_model_type"] = chosen["model_type"]
        params |= {f"chosen.{k}": v for k, v in chosen["params"].items()}
    cv = {"cv_auc": chosen.get("cv_auc"), "cv_auc_std": chosen.get("cv_auc_std")} if chosen else {}
    return {
        "experiment": bundle.schema.name,
        "params": params,
        "metrics": {**(metrics or {}), **cv, "rows_trained": meta.get("rows_trained")},
        "tags": {
            "schema": bundle.schema.name,
            "data_version": meta.get("data_version"),
            "code_version": meta.get("code_version"),
            "trigger_reason": trigger_reason or os.environ.get("MLOPS_TRIGGER_REASON"),
            "pipeline_execution_id": execution_id or os.environ.get("MLOPS_EXECUTION_ID"),
        },
        "candidates": [
            {
                "run_name": " ".join([c["model_type"], *(f"{k}={v}" for k, v in c["params"].items())]),
                "params": {"model_type": c["model_type"], **c["params"]},
                "metrics": {"cv_auc": c["cv_auc"], "cv_auc_std": c["cv_auc_std"]},
            }
            for c in chosen.get("candidates", [])
        ],
    }


def write_record(record: dict[str, Any], *folders: str | Path | None) -> list[Path]:
    """Write ``record`` as :data:`RUN_FILE` into each folder given (None skipped); the paths."""
    written = []
    for folder in filter(None, folders):
        path = Path(folder) / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        written.append(path)
    return written


def log_training_run(
    bundle: ModelBundle,
    model_dir: str | Path,
    *,
    metrics: dict[str, float] | None = None,
    trigger_reason: str | None = None,
    execution_id: str | None = None,
    uri: str | None = None,
) -> str:
    """Track a trained model and its selection's candidates as nested runs; the parent's id."""
    record = run_record(bundle, metrics=metrics, trigger_reason=trigger_reason, execution_id=execution_id)
    parent = log_run(
        experiment=record["experiment"],
        params=record["params"],
        metrics=record["metrics"],
        tags=record["tags"],
        artifact_dir=model_dir,
        uri=uri,
    )
    # A named model type is its own only candidate: a nested run would repeat the parent.
    for candidate in record["candidates"] if len(record["candidates"]) > 1 else ():
        log_run(
            experiment=record["experiment"],
            run_name=candidate["run_name"],
            params=candidate["params"],
            metrics=candidate["metrics"],
            tags={"schema": record["tags"]["schema"]},
            uri=uri,
            parent_run_id=parent,
        )
    return parent


def experiment_names(uri: str | None = None) -> list[str]:
    """The experiments in a store, MLflow's built-in "Default" left out."""
    client = _client(uri)
    return sorted(e.name for e in client.search_experiments() if e.name != "Default")


def compare_runs(
    experiment: str,
    *,
    metric: str = "auc",
    limit: int = 10,
    uri: str | None = None,
    all_params: bool = False,
) -> pd.DataFrame:
    """An experiment's training runs, one row each, best ``metric`` first (runs lacking it last).

    Model selection's candidates (nested runs) are left out: they are parts of a run.

    Columns: ``run_id``, ``run_name``, ``start_time``, ``params.<name>`` (only those that
    differ between the runs unless ``all_params``), ``metrics.<name>``, ``data_version``,
    ``code_version``. Raises KeyError when the experiment does not exist.
    """
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise KeyError(experiment)
    order = "ASC" if metric in LOWER_IS_BETTER else "DESC"
    runs = client.search_runs(
        [found.experiment_id],
        order_by=[f"metrics.`{metric}` {order}", "attributes.start_time DESC"],
        # Candidates are filtered out here: MLflow's filter language cannot ask for a
        # missing tag, so fetch enough rows for ``limit`` training runs among them.
        max_results=min(limit * 20, 5000),
    )
    runs = [r for r in runs if PARENT_TAG not in r.data.tags][:limit]
    rows = []
    for run in runs:
        row = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
        }
        row |= {f"params.{k}": v for k, v in sorted(run.data.params.items())}
        row |= {f"metrics.{k}": v for k, v in sorted(run.data.metrics.items())}
        row |= {k: run.data.tags.get(k) for k in VERSION_TAGS}
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame) > 1 and not all_params:
        same = [c for c in frame.columns if c.startswith("params.") and frame[c].nunique(dropna=False) == 1]
        frame = frame.drop(columns=same)
    # Stable column order: identity, params, metrics, versions.
    params = sorted(c for c in frame.columns if c.startswith("params."))
    metrics_ = sorted(c for c in frame.columns if c.startswith("metrics."))
    front = [c for c in ("run_id", "run_name", "start_time") if c in frame.columns]
    return frame[[*front, *params, *metrics_, *(c for c in VERSION_TAGS if c in frame.columns)]]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        # Counts (rows_trained) are logged as metrics, hence floats; show them as counts.
        return f"{value:.0f}" if value.is_integer() and abs(value) > 1 else f"{value:.4f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    text = str(value)
    # Versions are sha256 digests or commits: the first 12 hex digits tell them apart.
    prefix, _, digest = text.partition(":")
    if not digest or len(digest) <= 12:
        return text
    return f"{prefix}:{digest[:12]}{'-dirty' if digest.endswith('-dirty') else ''}"


def render(frame: pd.DataFrame, title: str):
    """A rich Table with one column per run, so runs read side by side."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("")
    for run_id in frame["run_id"]:
        table.add_column(run_id[:8], justify="right")
    for column in frame.columns.drop("run_id"):
        label = column.split(".", 1)[-1].replace("_", " ") if "." in column else column.replace("_", " ")
        style = "bold" if column.startswith("metrics.") else None
        table.add_row(label, *(_cell(v) for v in frame[column]), style=style)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops experiments", description="Compare tracked training runs side by side, best first."
    )
    parser.add_argument("--experiment", help="experiment (schema) name; default: the only one tracked")
    parser.add_argument("--metric", default="auc", help="metric to sort by (default auc)")
    parser.add_argument("--limit", type=int, default=10, help="how many runs to show (default 10)")
    parser.add_argument(
        "--all-params", action="store_true", help="show every param, not only those that differ"
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI or .state/mlflow.db)"
    )
    args = parser.parse_args(argv)
    uri = args.tracking_uri or tracking_uri()
    experiment = args.experiment
    if experiment is None:
        names = experiment_names(uri)
        if len(names) != 1:
            hint = f"pass --experiment, one of: {', '.join(names)}" if names else "train a model first"
            print(f"mlops experiments: {len(names)} experiments in {uri}; {hint}", file=sys.stderr)
            return 1
        experiment = names[0]
    try:
        frame = compare_runs(
            experiment, metric=args.metric, limit=args.limit, uri=uri, all_params=args.all_params
        )
    except KeyError:
        print(f"mlops experiments: no experiment {experiment!r} in {uri}", file=sys.stderr)
        return 1
    if frame.empty:
        print(f"mlops experiments: no runs in {experiment!r} yet", file=sys.stderr)
        return 1
    from rich.console import Console

    runs = f"{len(frame)} run{'s' if len(frame) != 1 else ''}"
    title = f"{experiment}: {runs}, best {args.metric} first ({uri})"
    Console().print(render(frame, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
