"""The shadow comparison: a shadow challenger against production, on the same requests.

A shadow variant receives a copy of (a sample of) production's requests and never answers;
both variants' traffic is captured under their own prefixes
(``data-capture/<endpoint>/<variant>/``). This step reads both, pairs the records by their id
(the schema's entity id when the request carries it, else the capture's inference id and the
record's position, as :mod:`model_code.monitoring.capture` reads it) and publishes, with the
shadow variant as the ``Variant`` dimension:

* ``ShadowAgreementRate``: share of paired requests whose predicted class (probability at or
  above the threshold) is the same;
* ``ShadowProbabilityDifference``: mean absolute difference of the two probabilities;
* ``ShadowChallengerAUC`` and ``ShadowProductionAUC``: each variant's AUC on the paired
  requests that have ground truth, so the two are scored on exactly the same rows;
* ``ShadowComparedCount`` and ``ShadowLabelledCount``: how many pairs (and labelled pairs)
  the figures are from.

A run for the production variant itself has nothing to compare and publishes nothing. The
dashboard, ``mlops status`` and a promotion decision read these same metrics (their names
are :data:`METRIC_NAMES`). The step runs on one instance: it holds two variants' records of
one window, which the drift step already shows to fit one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from model_code import container, metrics
from model_code.contract import schema as schema_mod
from model_code.contract.schema import Schema
from model_code.monitoring import quality
from model_code.monitoring.capture import CAPTURE_SUFFIXES, read_captures
from model_code.monitoring.shards import EXECUTION_START, Window, files_under, resolve_window

PROCESSING = Path("/opt/ml/processing")
PRODUCTION_VARIANT = "champion"  # infra.rollout.CHAMPION
DEFAULT_THRESHOLD = 0.5
# Report key -> CloudWatch metric name: the dashboard and `mlops status` import these.
METRIC_NAMES = {
    "agreement_rate": "ShadowAgreementRate",
    "mean_abs_probability_difference": "ShadowProbabilityDifference",
    "challenger_auc": "ShadowChallengerAUC",
    "production_auc": "ShadowProductionAUC",
    "compared": "ShadowComparedCount",
    "labelled": "ShadowLabelledCount",
}


def _latest_in_window(records: pd.DataFrame, window: Window | None) -> pd.DataFrame:
    valid = records["probability"].between(0.0, 1.0) & records["id"].notna()
    if window is not None:
        valid &= window.contains(records["time"])
    kept = records.loc[valid, ["id", "time", "probability"]].assign(id=lambda f: f["id"].astype("string"))
    # The latest prediction per id, as the quality monitor keeps it.
    return kept.sort_values("time", kind="stable").drop_duplicates("id", keep="last")


def compare(
    production: pd.DataFrame,
    shadow: pd.DataFrame,
    labels: pd.DataFrame,
    schema: Schema,
    *,
    window: Window | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Agreement, probability difference and both AUCs of the requests both variants answered.

    ``production`` and ``shadow`` are capture records (``id``, ``time``, ``probability``),
    ``labels`` ground truth (``id``, ``label``). An AUC is None when the labelled pairs hold
    one class only (or none); the other figures are None when no request was paired.
    """
    pairs = _latest_in_window(production, window).merge(
        _latest_in_window(shadow, window), on="id", suffixes=("_production", "_challenger")
    )
    p, c = pairs["probability_production"].to_numpy(float), pairs["probability_challenger"].to_numpy(float)
    report: dict[str, Any] = {
        "compared": len(pairs),
        "agreement_rate": float(np.mean((p >= threshold) == (c >= threshold))) if len(pairs) else None,
        "mean_abs_probability_difference": float(np.mean(np.abs(p - c))) if len(pairs) else None,
        "threshold": threshold,
    }
    known = labels[labels[quality.LABEL_COLUMN].notna()].drop_duplicates(quality.ID_COLUMN, keep="last")
    known = known.assign(id=known[quality.ID_COLUMN].astype("string"))
    labelled = pairs.merge(known[["id", quality.LABEL_COLUMN]], on="id")
    y = schema.is_positive(labelled[quality.LABEL_COLUMN]).to_numpy(dtype=int)
    both_classes = len(np.unique(y)) == 2
    for variant in ("production", "challenger"):
        scores = labelled[f"probability_{variant}"].to_numpy(float)
        report[f"{variant}_auc"] = float(roc_auc_score(y, scores)) if both_classes else None
    report["labelled"] = len(labelled)
    return report


def to_metrics(report: dict[str, Any], model: str, variant: str) -> list[dict[str, Any]]:
    """The report's figures as MetricData (Model, Variant dimensions; a None is left out)."""
    dims = {"Model": model, "Variant": variant}
    return [
        metrics.metric_datum(name, report[key], dims, "Count" if key in ("compared", "labelled") else "None")
        for key, name in METRIC_NAMES.items()
        if report.get(key) is not None
    ]


def _parser() -> argparse.ArgumentParser:
    inp, out = PROCESSING / "input", PROCESSING / "output"
    parser = argparse.ArgumentParser(
        prog="python -m model_code.monitoring.shadow",
        description="Compare a shadow variant's captured predictions with production's; publish the figures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--schema", type=Path, default=inp / "schema", help="schema YAML or a folder with one"
    )
    parser.add_argument("--production", type=Path, default=inp / "production", help="production's capture")
    parser.add_argument("--capture", type=Path, default=inp / "capture", help="the shadow variant's capture")
    parser.add_argument("--labels", type=Path, default=inp / "labels", help="ground truth CSV/JSONL")
    parser.add_argument(
        "--variant", default=PRODUCTION_VARIANT, help="the variant whose capture --capture is"
    )
    parser.add_argument("--window-end", default=EXECUTION_START, help="ISO-8601 time, or execution-start")
    parser.add_argument("--window-hours", type=float, default=24.0, help="window length")
    parser.add_argument("--execution-start", default=None, help="the pipeline execution's start time")
    parser.add_argument("--report-dir", type=Path, default=out / "report", help="for shadow.json")
    return parser


def _run(args: argparse.Namespace) -> str:
    from model_code.monitoring.monitor import LABEL_SUFFIXES, publish, read_labels

    schema = schema_mod.load(args.schema)
    report: dict[str, Any] = {"model": schema.name, "variant": args.variant, "published": []}
    if args.variant == PRODUCTION_VARIANT:
        summary = f"{args.variant} is the production variant: nothing to compare"
    else:
        window = resolve_window(args.window_end, args.window_hours, args.execution_start)
        production = read_captures(files_under(args.production, CAPTURE_SUFFIXES), schema).records
        shadow = read_captures(files_under(args.capture, CAPTURE_SUFFIXES), schema).records
        labels = read_labels(files_under(args.labels, LABEL_SUFFIXES), schema)
        report |= compare(production, shadow, labels, schema, window=window)
        report["window"] = window.to_dict()
        data = to_metrics(report, schema.name, args.variant)
        report["published"] = metrics.with_dimensions(data, metrics.stack_dimension())
        publish(data)
        summary = (
            f"{report['compared']} paired requests, agreement {report['agreement_rate']}, "
            f"AUC challenger {report['challenger_auc']} vs production {report['production_auc']}"
        )
    args.report_dir.mkdir(parents=True, exist_ok=True)
    (args.report_dir / "shadow.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the comparison step; returns the exit status (1 with the reason in /opt/ml/output/message)."""
    args = _parser().parse_args(argv)
    return container.run_processing(lambda: _run(args), "shadow")


if __name__ == "__main__":
    sys.exit(main())
