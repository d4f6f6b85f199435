"""``mlops experiments``: an experiment's tracked training runs side by side, best first.

Reads the store ``model_code.training.tracking`` logs to (MLFLOW_TRACKING_URI, else the
state folder's SQLite file). Model selection's candidates are nested runs: they are parts of
a training run, so the comparison leaves them out.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd

from model_code.training.tracking import (
    LOWER_IS_BETTER,
    PARENT_TAG,
    VERSION_TAGS,
    _client,
    experiment_names,
    tracking_uri,
)


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
