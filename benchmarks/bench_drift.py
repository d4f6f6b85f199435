"""Drift detection on 1,000,000 rows x 20 features: ``model_code.monitoring.drift.detect`` vs evidently.

Builds a seeded reference and current frame (14 numeric, 6 categorical features) with drift
planted in five known features, times our ``detect`` on one core, then times evidently's
``DataDriftPreset`` on the same data and prints both side by side with the features each
flags. Run by hand, never from the tests::

    .venv/bin/python benchmarks/bench_drift.py [--rows 1000000] [--repeat 3]

evidently 0.7 does not import with pandas 3 (which this project uses), so it runs in its own
virtualenv, ``.state/bench-evidently`` (created on first use: ``python3 -m venv`` and pip),
in a subprocess that reads the same data from Parquet and times only its computation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# One core for the measure: set before numpy starts its BLAS/OpenMP thread pools.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np
import pandas as pd

from model_code.contract import schema
from model_code.monitoring import drift

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state"
EVIDENTLY_VENV = STATE / "bench-evidently"
DATA_DIR = STATE / "bench-drift"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.*", "pandas<3", "pyarrow"]

# Features with planted drift, each large enough that any sensible detector should see it.
PLANTED = {
    "n00": "normal mean +0.5 sd",
    "n04": "normal sd x1.5",
    "n09": "Poisson mean 3 -> 4",
    "c00": "category mix 50/30/20 -> 30/30/40",
    "c02": "10% of rows in a new category",
}

# Runs inside the evidently virtualenv: read the Parquet files, time the report, print JSON.
EVIDENTLY_SCRIPT = """
import json, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:5])
reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
start, cpu = time.perf_counter(), time.process_time()
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(
    current_data=Dataset.from_pandas(current, data_definition=definition),
    reference_data=Dataset.from_pandas(reference, data_definition=definition),
)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
drifted, methods = [], {}
for m in snapshot.dict()["metrics"]:
    cfg = m["config"]
    if cfg.get("type", "").endswith("ValueDrift"):
        # evidently's rule: p-value methods drift below the threshold, distances at or above it.
        is_p = "p_value" in cfg["method"]
        if (m["value"] < cfg["threshold"]) if is_p else (m["value"] >= cfg["threshold"]):
            drifted.append(cfg["column"])
        methods[cfg["column"]] = cfg["method"]
print(json.dumps({"seconds": seconds, "cpu": cpu, "drifted": sorted(drifted), "methods": methods}))
"""


def build(n_rows: int, seed: int = 0) -> tuple[schema.Schema, pd.DataFrame, pd.DataFrame]:
    """Reference and current frames; ``PLANTED`` lists the features whose distribution moves."""
    rng = np.random.default_rng(seed)

    def frame(drifted: bool) -> pd.DataFrame:
        d = float(drifted)
        cols: dict[str, object] = {
            "n00": rng.normal(50 + 5 * d, 10, n_rows),
            "n01": rng.lognormal(3, 0.8, n_rows),
            "n02": np.round(rng.exponential(20, n_rows)).astype(np.int64),
            "n03": rng.uniform(0, 100, n_rows),
            "n04": rng.normal(0, 1 + 0.5 * d, n_rows),
            "n05": rng.gamma(2.0, 3.0, n_rows),
            "n06": rng.integers(0, 2, n_rows),
            "n07": rng.standard_t(5, n_rows),
            "n08": rng.beta(2, 5, n_rows),
            "n09": rng.poisson(3 + d, n_rows),
            "n10": rng.normal(1000, 250, n_rows).round(2),
            "n11": rng.integers(18, 90, n_rows),
            "n12": rng.weibull(1.5, n_rows),
            "n13": rng.laplace(0, 2, n_rows),
        }
        cols["n01"][rng.random(n_rows) < 0.05] = np.nan  # nulls, same share on both sides
        p_c00 = [0.3, 0.3, 0.4] if drifted else [0.5, 0.3, 0.2]
        cols["c00"] = rng.choice(["a", "b", "c"], n_rows, p=p_c00)
        cols["c01"] = rng.choice([f"v{i}" for i in range(5)], n_rows)
        c02 = rng.choice([f"k{i}" for i in range(10)], n_rows)
        if drifted:
            c02[rng.random(n_rows) < 0.1] = "k-new"
        cols["c02"] = c02
        cols["c03"] = rng.choice(["yes", "no"], n_rows, p=[0.3, 0.7])
        zipf = 1 / np.arange(1, 51)
        cols["c04"] = rng.choice([f"z{i:02d}" for i in range(50)], n_rows, p=zipf / zipf.sum())
        c05 = rng.choice(["north", "south", "east", "west"], n_rows).astype(object)
        c05[rng.random(n_rows) < 0.03] = None
        cols["c05"] = c05
        return pd.DataFrame(cols).astype({f"c{i:02d}": "str" for i in range(6)})

    reference, current = frame(False), frame(True)
    features = [
        {"name": c, "type": "string" if c.startswith("c") else "fractional", "nullable": True}
        for c in reference.columns
    ]
    contract = schema.parse(
        {
            "name": "bench-drift",
            "entity_id": "id",
            "target": {"column": "y", "positive": 1},
            "features": features,
        }
    )
    return contract, reference, current


def time_ours(contract, reference, current, repeat: int) -> dict:
    """Median wall and CPU seconds of ``detect`` (CPU time is the fairer figure on a busy host)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        report = drift.detect(reference, current, contract)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "seconds": statistics.median(wall),
        "cpu": statistics.median(cpu),
        "drifted": report.drifted_features,
    }


def evidently_python() -> Path:
    """The evidently virtualenv's interpreter, creating the virtualenv on first use."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} with {' '.join(EVIDENTLY_REQUIREMENTS)} ...", flush=True)
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS], check=True)
    return python


def time_evidently(contract, reference, current) -> dict:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = DATA_DIR / "reference.parquet", DATA_DIR / "current.parquet"
    reference.to_parquet(ref_path)
    current.to_parquet(cur_path)
    result = subprocess.run(
        [
            str(evidently_python()),
            "-c",
            EVIDENTLY_SCRIPT,
            str(ref_path),
            str(cur_path),
            json.dumps(contract.numeric_features),
            json.dumps(contract.categorical_features),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ,  # the same one-thread settings
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours; the median is reported")
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args(argv)

    contract, reference, current = build(args.rows)
    n_num, n_cat = len(contract.numeric_features), len(contract.categorical_features)
    print(f"data: {args.rows:,} rows x {n_num + n_cat} features ({n_num} numeric, {n_cat} categorical)")
    print(f"planted: {sorted(PLANTED)}")
    ours = time_ours(contract, reference, current, args.repeat)
    print(f"{'':10} {'wall s':>9} {'cpu s':>9}  flagged")
    print(
        f"{'ours':10} {ours['seconds']:9.3f} {ours['cpu']:9.3f}  {ours['drifted']}  (median of {args.repeat})"
    )
    if args.skip_evidently:
        return 0
    theirs = time_evidently(contract, reference, current)
    print(f"{'evidently':10} {theirs['seconds']:9.3f} {theirs['cpu']:9.3f}  {theirs['drifted']}  (one run)")
    wall, cpu = theirs["seconds"] / ours["seconds"], theirs["cpu"] / ours["cpu"]
    print(f"{'ratio':10} {wall:8.1f}x {cpu:8.1f}x  ours faster")
    for who, flagged in (("ours", ours["drifted"]), ("evidently", theirs["drifted"])):
        print(f"{who} flags exactly the planted features: {flagged == sorted(PLANTED)}")
    print(f"evidently's tests: {sorted(set(theirs['methods'].values()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
