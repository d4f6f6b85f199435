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
cross-validated AUC every run has, and ``rows_searched``, the rows the model search ran on,
with the param ``search_sampled`` saying whether that was a sample), the tags
``data_version``, ``code_version``, ``schema`` and, when known, ``trigger_reason`` and
``pipeline_execution_id``, and the model folder as artifacts under ``model/``. Each candidate of model selection is a nested run under it
(MLflow's ``mlflow.parentRunId`` tag) with its hyperparameters and cross-validated AUC.

``mlops experiments`` (``model_code.training.experiments``) prints the runs of an experiment
side by side, best first. MLflow is imported only when a run is logged or read, so importing
training code stays cheap.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    if chosen.get("rows_searched"):
        # What the search saw: a stratified sample when it is below rows_trained.
        cv["rows_searched"] = chosen["rows_searched"]
        params["search_sampled"] = chosen["sampled"]
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


def track_training_run(
    bundle: ModelBundle,
    model_dir: str | Path,
    *,
    metrics: dict[str, float] | None = None,
    trigger_reason: str | None = None,
    execution_id: str | None = None,
    log: bool = True,
) -> int:
    """``mlops train``'s tracking: ``run.json`` always, then the store if ``log``; an exit status.

    Only a store that is configured and fails fails the job (naming it and the way out);
    a training job without a store keeps its run in the record alone.
    """
    from model_code import container

    record = run_record(bundle, metrics=metrics, trigger_reason=trigger_reason, execution_id=execution_id)
    in_job = os.environ.get("TRAINING_JOB_NAME")  # SageMaker sets it in every training job
    output = os.environ.get("SM_OUTPUT_DATA_DIR") or ("/opt/ml/output/data" if in_job else None)
    write_record(record, model_dir, output)
    if not log:
        return 0
    if store_uri() is None:
        print(f"no tracking server (MLFLOW_TRACKING_URI): the run is recorded in {model_dir}")
        return 0
    try:
        run_id = log_training_run(
            bundle, model_dir, metrics=metrics, trigger_reason=trigger_reason, execution_id=execution_id
        )
    except Exception as exc:  # whatever the tracker raises, name the store and the way out
        return container.fail(
            f"train: the model was saved in {model_dir} but the run could not be tracked in "
            f"{tracking_uri()}: {exc}; set MLOPS_TRACKING=off to train without tracking",
            job=container.TRAINING,
        )
    print(f"tracked as run {run_id} in {tracking_uri()}")
    return 0


def experiment_names(uri: str | None = None) -> list[str]:
    """The experiments in a store, MLflow's built-in "Default" left out."""
    client = _client(uri)
    return sorted(e.name for e in client.search_experiments() if e.name != "Default")
