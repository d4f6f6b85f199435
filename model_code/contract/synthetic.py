"""Seeded synthetic customer-churn data for the example schema, with drift you can plant.

Two knobs, each in [0, 1]:

* ``data_drift`` shifts the input distributions: customers arrive with shorter tenure and
  higher monthly charges, and the category mix moves toward month-to-month contracts and
  fiber internet. The features it moves are listed in ``DATA_DRIFT_FEATURES``; the others
  keep their distribution, so a drift detector can be checked for exactly those.
* ``concept_drift`` changes how the inputs relate to the label (support calls stop
  mattering, price sensitivity grows), so a model trained before it loses quality while the
  inputs look the same.

``dirty`` plants a share of rows that break the contract (blanks in required numeric
columns, out-of-range values, unknown categories) for the quarantine to find.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DRIFT_FEATURES = ("contract", "internet_service", "monthly_charges", "tenure_months")
# total_charges is tenure x monthly charges, so it moves with them.
DATA_DRIFT_DERIVED = ("total_charges",)

_CONTRACTS = ["month-to-month", "one-year", "two-year"]
_INTERNET = ["dsl", "fiber", "none"]
_PAYMENT = ["electronic-check", "mailed-check", "bank-transfer", "credit-card"]


def _mix(base: list[float], drifted: list[float], amount: float) -> np.ndarray:
    p = (1 - amount) * np.asarray(base) + amount * np.asarray(drifted)
    return p / p.sum()


def generate(
    n_rows: int = 5000,
    *,
    seed: int = 0,
    data_drift: float = 0.0,
    concept_drift: float = 0.0,
    dirty: float = 0.0,
    start: str = "2026-01-01T00:00:00Z",
    id_prefix: str = "C",
) -> pd.DataFrame:
    """Return ``n_rows`` customers with the example schema's columns and a churn label."""
    for knob, value in (("data_drift", data_drift), ("concept_drift", concept_drift), ("dirty", dirty)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{knob}: expected a value in [0, 1], got {value}")
    rng = np.random.default_rng(seed)
    contract = rng.choice(_CONTRACTS, n_rows, p=_mix([0.5, 0.27, 0.23], [0.85, 0.1, 0.05], data_drift))
    internet = rng.choice(_INTERNET, n_rows, p=_mix([0.35, 0.45, 0.2], [0.1, 0.85, 0.05], data_drift))
    payment = rng.choice(_PAYMENT, n_rows, p=[0.34, 0.23, 0.22, 0.21])
    senior = (rng.random(n_rows) < 0.16).astype(int)
    tenure_scale = 30.0 * (1 - 0.6 * data_drift)
    tenure = np.clip(np.round(rng.exponential(tenure_scale, n_rows)), 0, 120).astype(int)
    base_charge = np.select([internet == "fiber", internet == "dsl"], [80.0, 55.0], 22.0)
    monthly = np.clip(base_charge * (1 + 0.35 * data_drift) + rng.normal(0, 12, n_rows), 5, 500).round(2)
    total = (monthly * tenure * rng.uniform(0.95, 1.05, n_rows)).round(2)
    total = np.where(tenure == 0, np.nan, total)  # new customers have no bill yet
    calls = np.clip(rng.poisson(1.5 + 0.8 * senior), 0, 50)

    # The label: a logistic model whose coefficients move with concept drift.
    c = concept_drift
    logit = (
        -1.2
        + (1.3 - 1.0 * c) * (contract == "month-to-month")
        - (1.0 - 0.5 * c) * (contract == "two-year")
        - (0.045 - 0.035 * c) * tenure
        + (0.012 + 0.03 * c) * (monthly - 60)
        + (0.45 - 0.9 * c) * (calls - 1.5)
        + 0.5 * (internet == "fiber")
        + 0.3 * (payment == "electronic-check")
        + 0.25 * senior
    )
    churned = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)

    t0 = pd.Timestamp(start)
    seconds = np.sort(rng.integers(0, 86400, n_rows))
    event_time = (t0 + pd.to_timedelta(seconds, unit="s")).strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = pd.DataFrame(
        {
            "customer_id": [f"{id_prefix}{i:07d}" for i in range(n_rows)],
            "event_time": event_time,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "contract": contract,
            "internet_service": internet,
            "payment_method": payment,
            "support_calls": calls,
            "senior_citizen": senior,
            "churned": churned,
        }
    )
    if dirty:
        frame = _plant_bad_rows(frame, dirty, rng)
    return frame


def _plant_bad_rows(frame: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Break the contract in ``share`` of the rows, one violation each, in rotation."""
    frame = frame.astype({"monthly_charges": object, "tenure_months": object, "contract": object})
    bad = rng.choice(len(frame), round(share * len(frame)), replace=False)
    for k, row in enumerate(bad):
        kind = k % 4
        if kind == 0:
            frame.loc[row, "monthly_charges"] = " "  # unparseable: becomes null
        elif kind == 1:
            frame.loc[row, "tenure_months"] = 999  # above max
        elif kind == 2:
            frame.loc[row, "contract"] = "lifetime"  # not an allowed value
        else:
            frame.loc[row, "monthly_charges"] = -5.0  # below min
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops generate-data", description="Write seeded synthetic customer-churn data as CSV."
    )
    parser.add_argument("--rows", type=int, default=5000, help="number of customers (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--data-drift", type=float, default=0.0, help="input distribution shift, 0..1")
    parser.add_argument("--concept-drift", type=float, default=0.0, help="input-label relation change, 0..1")
    parser.add_argument(
        "--dirty", type=float, default=0.0, help="share of rows that break the contract, 0..1"
    )
    parser.add_argument("--start", default="2026-01-01T00:00:00Z", help="first event time (ISO-8601 UTC)")
    parser.add_argument("--id-prefix", default="C", help="prefix of customer ids (default C)")
    parser.add_argument("--output", "-o", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    try:
        frame = generate(
            args.rows,
            seed=args.seed,
            data_drift=args.data_drift,
            concept_drift=args.concept_drift,
            dirty=args.dirty,
            start=args.start,
            id_prefix=args.id_prefix,
        )
    except ValueError as exc:
        parser.error(str(exc))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.output, index=False)
    print(f"wrote {len(frame)} rows to {args.output}")
    return 0
