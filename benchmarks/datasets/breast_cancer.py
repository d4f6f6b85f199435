"""Write scikit-learn's bundled Wisconsin breast cancer data (569 rows, offline) as a CSV that
benchmarks/datasets/breast-cancer.yaml describes, for ``mlops local --schema ... --data ...``.

    python benchmarks/datasets/breast_cancer.py /tmp/breast-cancer.csv
"""

from __future__ import annotations

import sys

from sklearn.datasets import load_breast_cancer

FEATURES = {
    "mean radius": "mean_radius",
    "mean texture": "mean_texture",
    "mean smoothness": "mean_smoothness",
    "mean compactness": "mean_compactness",
    "mean concavity": "mean_concavity",
    "worst area": "worst_area",
    "worst concave points": "worst_concave_points",
    "worst symmetry": "worst_symmetry",
}


def main(path: str) -> None:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=FEATURES)[list(FEATURES.values())]
    frame.insert(0, "sample_id", [f"S{i:04d}" for i in range(len(frame))])
    # sklearn codes malignant as 0; the contract's positive class is the malignant one.
    frame["malignant"] = 1 - bunch.target
    frame.to_csv(path, index=False)


if __name__ == "__main__":
    main(sys.argv[1])
