"""Does ``--model-type auto`` lose to a plain logistic regression on data the project never saw?

Runs by hand, never in tests. The data sets are the binary problems scikit-learn ships inside
its package (nothing is downloaded), none of which the project was tuned on:

* ``breast-cancer``: 569 tumours, 30 numeric measurements, malignant or benign;
* ``wine``: 178 wines, 13 chemical measurements, cultivar 2 against the other two;
* ``digits``: 1,797 8x8 images, 64 pixel intensities, an even digit against an odd one.

For each, a contract is derived from the columns, and for each of ``--splits`` seeded
stratified 75/25 splits both candidates are trained on the same training rows through
``mlops train``'s own code path (``train.fit_model`` after ``selection.cross_validate``), then
scored on the same held-out rows: ``auto`` (the default: cross-validated choice among the
documented grid) and ``logistic`` (scikit-learn's default C=1, the plain baseline). It prints
the held-out AUC of each and what ``auto`` chose.

    .venv/bin/python benchmarks/bench_model_selection.py [--splits 5] [--cv-folds 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from model_code.contract import schema as schema_mod
from model_code.training import selection
from model_code.training.train import fit_model, score


def _binary(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    if name == "breast-cancer":
        data = datasets.load_breast_cancer(as_frame=True)
        return data.data, (data.target == 0).to_numpy(int)  # malignant is the positive class
    if name == "wine":
        data = datasets.load_wine(as_frame=True)
        return data.data, (data.target == 2).to_numpy(int)
    data = datasets.load_digits(as_frame=True)
    return data.data, (data.target % 2 == 0).to_numpy(int)


def dataset(name: str) -> tuple[pd.DataFrame, schema_mod.Schema]:
    """The data set as a frame with an id and a label column, and its derived contract."""
    features, y = _binary(name)
    features = features.rename(columns=lambda c: re.sub(r"\W+", "_", str(c)).strip("_"))
    frame = features.assign(row_id=[f"r{i}" for i in range(len(features))], label=y)
    contract = schema_mod.parse(
        {
            "name": name,
            "entity_id": "row_id",
            "target": {"column": "label", "positive": 1},
            "features": [{"name": c, "type": "fractional"} for c in features.columns],
        }
    )
    return frame, contract


def held_out_auc(train: pd.DataFrame, test: pd.DataFrame, contract, model_type: str, folds: int, seed: int):
    """Train as ``mlops train`` does (CV choice, then a refit on all training rows); test AUC."""
    y = contract.is_positive(train["label"]).to_numpy(int)
    choice = selection.cross_validate(
        train, y, contract, model_type=model_type, cv_folds=folds, random_state=seed
    )
    best = choice.best
    bundle = fit_model(
        train, contract, model_type=best.model_type, model_params=best.params, random_state=seed
    )
    return score(bundle, test)["auc"], best.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["breast-cancer", "wine", "digits"])
    parser.add_argument("--splits", type=int, default=5, help="seeded train/test splits (default 5)")
    parser.add_argument("--cv-folds", type=int, default=selection.DEFAULT_CV_FOLDS)
    args = parser.parse_args(argv)
    print(f"{'data set':14} {'rows':>5} {'auto AUC':>9} {'logistic':>9} {'diff':>8}  auto chose (per split)")
    with threadpool_limits(1):
        for name in args.datasets:
            frame, contract = dataset(name)
            auto, plain, chosen = [], [], []
            start = time.process_time()
            for seed in range(args.splits):
                train, test = train_test_split(
                    frame, test_size=0.25, random_state=seed, stratify=frame["label"]
                )
                auc, label = held_out_auc(train, test, contract, selection.AUTO, args.cv_folds, seed)
                auto.append(auc)
                chosen.append(label)
                plain.append(held_out_auc(train, test, contract, "logistic", args.cv_folds, seed)[0])
            mean_auto, mean_plain = statistics.mean(auto), statistics.mean(plain)
            print(
                f"{name:14} {len(frame):5d} {mean_auto:9.4f} {mean_plain:9.4f} {mean_auto - mean_plain:+8.4f}  "
                f"{'; '.join(chosen)}  ({time.process_time() - start:.0f} CPU s)"
            )
            wins = sum(a >= p for a, p in zip(auto, plain, strict=True))
            print(f"{'':14} auto >= logistic on {wins} of {args.splits} splits; per split auto {_fmt(auto)}")
            print(f"{'':14} {'':33} logistic {_fmt(plain)}")
    return 0


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.4f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
