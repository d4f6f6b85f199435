"""Evaluation: score a trained model on the held-out split and decide whether it may be registered.

``mlops evaluate`` follows SageMaker's processing contract::

    /opt/ml/processing/model/       the model folder, or SageMaker's model.tar.gz (--model-dir)
    /opt/ml/processing/test/        held-out CSV/Parquet files                    (--test-dir)
    /opt/ml/processing/champion/    optional: the current champion's evaluation.json, or its
                                    model (then scored on the same test rows)     (--champion)
    /opt/ml/processing/evaluation/evaluation.json   the report                    (--output-dir)

The report is the pipeline's property file. Its stable paths, for ``JsonGet``::

    binary_classification_metrics.auc.value    float   ROC AUC on the test split
    decision.passed                            bool    auc >= min_auc and not worse than the
                                                       champion by more than max_regression
    decision.failed_metric                     "auc" or null

and, in SageMaker's model-quality shape, ``binary_classification_metrics.<m>.value`` for
pr_auc, f1, precision, recall, accuracy, log_loss, brier and calibration_error (each with
``standard_deviation: "NaN"``). The step exits 0 whether or not the model passes: the
pipeline's condition step acts on ``decision.passed``. Broken inputs (no model, no test rows,
no target column, a single class) fail the step with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from model_code import artifact, container
from model_code.artifact import ModelBundle
from model_code.schema import SchemaError
from model_code.train import SCALAR_METRICS, read_channel, score

EVALUATION_FILE = "evaluation.json"
DEFAULT_CHAMPION = Path("/opt/ml/processing/champion")
# An identical challenger must not fail on floating-point noise in the AUC comparison.
_TOLERANCE = 1e-9


def champion_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat ``{metric: value}`` from a champion's evaluation.json (or an already flat dict)."""
    nested = report.get("binary_classification_metrics")
    if nested is None:
        flat = {k: report[k] for k in SCALAR_METRICS if isinstance(report.get(k), (int, float))}
    else:
        flat = {k: v["value"] for k, v in nested.items() if isinstance(v, dict) and "value" in v}
    if not isinstance(flat.get("auc"), (int, float)) or math.isnan(flat["auc"]):
        raise ValueError("champion: its evaluation has no binary_classification_metrics.auc.value")
    return {k: float(v) for k, v in flat.items()}


def load_champion(path: str | Path | None) -> tuple[dict[str, float] | ModelBundle | None, str | None]:
    """The champion found at ``path`` and where it came from, or (None, None) when there is none.

    ``path`` may be an evaluation.json, a folder holding one (searched recursively, as a
    processing input may keep S3 prefixes), or a model folder / model.tar.gz. A folder that
    exists but is empty means there is no champion yet (the first model).
    """
    if path is None:
        return None, None
    path = Path(path)
    if not path.exists():
        raise ValueError(f"--champion: {path} does not exist")
    reports = [path] if path.is_file() and path.suffix == ".json" else sorted(path.rglob(EVALUATION_FILE))
    if reports:
        return champion_metrics(json.loads(reports[0].read_text())), str(reports[0])
    try:
        return artifact.load(path), str(path)
    except FileNotFoundError:
        return None, None


def decide(
    auc: float, *, champion_auc: float | None, min_auc: float, max_regression: float
) -> dict[str, Any]:
    """The registration gate: ``auc >= min_auc`` and ``auc >= champion_auc - max_regression``."""
    reasons = []
    if auc < min_auc - _TOLERANCE:
        reasons.append(f"auc {auc:.4f} is below min_auc {min_auc:.4f}")
    if champion_auc is not None and auc < champion_auc - max_regression - _TOLERANCE:
        reasons.append(
            f"auc {auc:.4f} is {champion_auc - auc:.4f} below the champion's {champion_auc:.4f}, "
            f"more than max_regression {max_regression:.4f}"
        )
    passed = not reasons
    against = "min_auc and the champion" if champion_auc is not None else "min_auc (no champion yet)"
    return {
        "passed": passed,
        "min_auc": min_auc,
        "max_regression": max_regression,
        "champion_auc": champion_auc,
        "reasons": reasons,
        "failed_metric": None if passed else "auc",
        "summary": f"{'passed' if passed else 'failed'}: auc {auc:.4f} checked against {against}",
    }


def evaluate_model(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    champion: dict[str, Any] | ModelBundle | None = None,
    min_auc: float = 0.7,
    max_regression: float = 0.01,
) -> dict[str, Any]:
    """The evaluation report of ``bundle`` on the labelled rows of ``frame`` (see the module doc).

    ``champion`` is the current champion's evaluation (nested or flat metrics) or its model,
    which is then scored on the same rows so that both are judged on the same data.
    """
    for name, value in (("min_auc", min_auc), ("max_regression", max_regression)):
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a number, got {value}")
    target = bundle.schema.target.column
    if target not in frame.columns:
        raise ValueError(f"test data: no target column {target!r}")
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise ValueError(f"test data: no rows with a {target!r} label to score")
    classes = bundle.schema.is_positive(labelled[target]).nunique()
    if classes < 2:
        raise ValueError(f"test data: {target!r} holds a single class; AUC needs both classes")
    scored = score(bundle, labelled)
    if isinstance(champion, ModelBundle):
        full = score(champion, labelled)
        champion = {k: full[k] for k in SCALAR_METRICS}
    elif champion is not None:
        champion = champion_metrics(champion)
    meta = bundle.metadata
    return {
        "binary_classification_metrics": {
            k: {"value": scored[k], "standard_deviation": "NaN"} for k in SCALAR_METRICS
        },
        "champion": champion,
        "decision": decide(
            scored["auc"],
            champion_auc=champion["auc"] if champion else None,
            min_auc=min_auc,
            max_regression=max_regression,
        ),
        "reliability": scored["reliability"],
        "test_data": {
            "rows": int(scored["n"]),
            "rows_unlabelled": len(frame) - len(labelled),
            "positive_rate": scored["positive_rate"],
            "threshold": scored["threshold"],
        },
        "model": {
            k: meta.get(k) for k in ("schema_name", "data_version", "code_version", "params", "rows_trained")
        },
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops evaluate",
        description="Evaluate a model on held-out data against MinAuc and the champion (processing contract).",
    )
    parser.add_argument(
        "--model-dir", default="/opt/ml/processing/model", help="model folder or model.tar.gz"
    )
    parser.add_argument("--test-dir", default="/opt/ml/processing/test", help="held-out CSV/Parquet files")
    parser.add_argument(
        "--champion",
        default=str(DEFAULT_CHAMPION) if DEFAULT_CHAMPION.exists() else None,
        help="champion's evaluation.json, a folder holding one, or its model (default: "
        f"{DEFAULT_CHAMPION} when it exists)",
    )
    parser.add_argument("--min-auc", type=float, default=0.7, help="lowest AUC to pass (default 0.7)")
    parser.add_argument(
        "--max-regression",
        type=float,
        default=0.01,
        help="how far the AUC may fall below the champion's and still pass (default 0.01)",
    )
    parser.add_argument("--output-dir", default="/opt/ml/processing/evaluation")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bundle = artifact.load(args.model_dir)
        champion, source = load_champion(args.champion)
        frame = read_channel(args.test_dir, bundle.schema)
        report = evaluate_model(
            bundle, frame, champion=champion, min_auc=args.min_auc, max_regression=args.max_regression
        )
    except (FileNotFoundError, ValueError, SchemaError) as exc:
        return container.fail(f"evaluate: {exc}")
    if report["champion"] is not None:
        report["champion"]["source"] = source
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / EVALUATION_FILE).write_text(json.dumps(report, indent=2, default=str))
    decision = report["decision"]
    print(decision["summary"] + "".join(f"\n  - {r}" for r in decision["reasons"]))
    print(f"wrote {output / EVALUATION_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
