"""Evaluation: score a trained model on the held-out split and decide whether it may be registered.

``mlops evaluate`` follows SageMaker's processing contract::

    /opt/ml/processing/model/       the model folder, or SageMaker's model.tar.gz (--model-dir)
    /opt/ml/processing/test/        held-out CSV/Parquet files                    (--test-dir)
    /opt/ml/processing/champion/    optional: the current champion's evaluation.json, or its
                                    model (then scored on the same test rows)     (--champion)
    /opt/ml/processing/evaluation/evaluation.json   the report                    (--output-dir)

and, optionally::

    --train-dir DIR --baseline-dir DIR   the training rows in; baseline.json out: the drift
                                         baseline of the data the model learned from, with the
                                         model's predictions (drift.PREDICTION_COLUMN)
    --model-package-group NAME           no --champion: the champion is the group's latest
                                         Approved package: its model (ModelDataUrl) is scored
                                         on the same test rows as the challenger, and its
                                         stored AUC (its evaluation.json, measured on its own
                                         older test rows) is recorded beside that figure

The champion is judged on the challenger's test rows whenever its model is at hand: after
concept drift its stored AUC describes a world that has gone, and comparing with it would
refuse a better model. Only a champion that cannot score these rows (another contract) is
compared by its stored figure, and the report says so (``champion.scored_on``).

The report is the pipeline's property file. Its stable paths, for ``JsonGet``::

    binary_classification_metrics.auc.value    float   ROC AUC on the test split
    decision.passed                            bool    auc >= min_auc and not worse than the
                                                       champion by more than max_regression
    decision.failed_metric                     "auc" or null
    decision.reason                            why it failed, in one line ("" when it passed)
    registry.<Key>                             strings for the registered package's customer
                                               metadata: Auc, ChampionAuc (on these rows),
                                               ChampionStoredAuc, ModelType, CvAuc ("none"
                                               when there is no such figure)

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
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from model_code import container, register_info
from model_code.contract.schema import SchemaError
from model_code.monitoring import drift
from model_code.serving import inference
from model_code.training import artifact
from model_code.training.artifact import ModelBundle
from model_code.training.train import SCALAR_METRICS, read_channel, score

EVALUATION_FILE = "evaluation.json"
BASELINE_FILE = "baseline.json"
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


def registry_champion(
    group: str,
) -> tuple[ModelBundle | dict[str, float] | None, dict[str, float] | None, str | None]:
    """The latest Approved package of ``group``: its model (else its stored evaluation), that
    stored evaluation, and where they came from.

    (None, None, None) when the group has no champion yet. A champion with neither a model
    to score nor an evaluation report fails: judging the challenger against nothing could
    register a worse model.
    """
    package = register_info.latest_approved(group)
    if package is None:
        return None, None, None
    arn = package["ModelPackageArn"]
    report_uri, model_uri = register_info.evaluation_uri(package), register_info.model_data_url(package)
    if report_uri is None and model_uri is None:
        raise ValueError(f"champion {arn}: neither a ModelDataUrl to score nor an evaluation to compare with")
    stored = champion_metrics(register_info.read_json(report_uri)) if report_uri else None
    model = None
    if model_uri:
        with tempfile.TemporaryDirectory() as tmp:
            model = artifact.load(register_info.download(model_uri, tmp))
    return model or stored, stored, f"{arn} ({model_uri or report_uri})"


def judge_champion(
    champion: dict[str, Any] | ModelBundle, stored: dict[str, Any] | None, labelled: pd.DataFrame
) -> dict[str, Any]:
    """The champion's metrics on the challenger's rows (or, failing that, its stored ones)."""
    stored = champion_metrics(stored) if stored is not None else None
    if not isinstance(champion, ModelBundle):
        metrics = champion_metrics(champion)
        return {
            **metrics,
            "scored_on": "its own evaluation (no model to score)",
            "stored_auc": metrics["auc"],
        }
    try:
        full = score(champion, labelled)
    except (KeyError, ValueError) as exc:  # another contract: columns or classes it cannot read
        if stored is None:
            raise ValueError(
                f"champion: cannot score it on the test rows ({exc}) and it has no evaluation"
            ) from None
        scored_on = f"its own evaluation: it cannot score these rows ({exc})"
        return {**stored, "scored_on": scored_on, "stored_auc": stored["auc"]}
    return {
        **{k: full[k] for k in SCALAR_METRICS},
        "scored_on": "the challenger's test rows",
        "stored_auc": stored["auc"] if stored else None,
    }


def drift_baseline(bundle: ModelBundle, frame: pd.DataFrame) -> drift.Baseline:
    """The drift monitor's reference: the rows the model was trained on, with its predictions.

    The prediction is the positive-class probability as the server returns it, so captured
    traffic and the baseline describe the same quantity.
    """
    reference = frame.copy()
    reference[drift.PREDICTION_COLUMN] = [
        p["probability"] for p in inference.predict_fn(frame[bundle.schema.feature_names], bundle)
    ]
    return drift.Baseline.from_frame(reference, bundle.schema)


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
        "reason": "; ".join(reasons),
        "summary": f"{'passed' if passed else 'failed'}: auc {auc:.4f} checked against {against}",
    }


def evaluate_model(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    champion: dict[str, Any] | ModelBundle | None = None,
    champion_stored: dict[str, Any] | None = None,
    min_auc: float = 0.7,
    max_regression: float = 0.01,
) -> dict[str, Any]:
    """The evaluation report of ``bundle`` on the labelled rows of ``frame`` (see the module doc).

    ``champion`` is the current champion's evaluation (nested or flat metrics) or its model,
    which is then scored on the same rows so that both are judged on the same data;
    ``champion_stored`` is its own evaluation, recorded beside (``champion.stored_auc``).
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
    if champion is not None:
        champion = judge_champion(champion, champion_stored, labelled)
    meta = bundle.metadata
    chosen = meta.get("model_selection") or {}
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
            k: meta.get(k)
            for k in (
                "schema_name",
                "data_version",
                "code_version",
                "params",
                "rows_trained",
                "model_selection",
            )
        },
        "registry": {
            "Auc": _figure(scored["auc"]),
            "ChampionAuc": _figure(champion and champion["auc"]),
            "ChampionStoredAuc": _figure(champion and champion["stored_auc"]),
            "ModelType": chosen.get("model_type") or str((meta.get("params") or {}).get("model_type")),
            "CvAuc": _figure(chosen.get("cv_auc")),
        },
    }


def _figure(value: float | None) -> str:
    # Customer metadata holds strings only, and JsonGet cannot turn null into one.
    return "none" if value is None else f"{value:.4f}"


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
    parser.add_argument("--train-dir", help="the training rows, for the drift baseline (with --baseline-dir)")
    parser.add_argument("--baseline-dir", help=f"where {BASELINE_FILE} goes (with --train-dir)")
    parser.add_argument(
        "--model-package-group",
        help="without --champion: compare with this group's latest Approved package's evaluation",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.train_dir is None) != (args.baseline_dir is None):
        parser.error("--train-dir and --baseline-dir go together")
    try:
        bundle = artifact.load(args.model_dir)
        stored = None
        if args.champion is None and args.model_package_group:
            champion, stored, source = registry_champion(args.model_package_group)
        else:
            champion, source = load_champion(args.champion)
        frame = read_channel(args.test_dir, bundle.schema)
        report = evaluate_model(
            bundle,
            frame,
            champion=champion,
            champion_stored=stored,
            min_auc=args.min_auc,
            max_regression=args.max_regression,
        )
        baseline = (
            drift_baseline(bundle, read_channel(args.train_dir, bundle.schema)) if args.train_dir else None
        )
    except (FileNotFoundError, ValueError, SchemaError, container.StepFailed) as exc:
        return container.fail(f"evaluate: {exc}", job=container.PROCESSING)
    if report["champion"] is not None:
        report["champion"]["source"] = source
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / EVALUATION_FILE).write_text(json.dumps(report, indent=2, default=str))
    decision = report["decision"]
    print(decision["summary"] + "".join(f"\n  - {r}" for r in decision["reasons"]))
    print(f"wrote {output / EVALUATION_FILE}")
    if baseline is not None:
        path = Path(args.baseline_dir) / BASELINE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(baseline.to_dict()))
        print(f"wrote {path} ({baseline.reference.rows} training rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
