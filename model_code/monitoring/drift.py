"""Drift of each input feature and of the predictions: reference data against current data.

Built to be sharded. The reference is summarised once into a :class:`Baseline` (buckets
and counts, JSON-serialisable); current data becomes a :class:`Profile`, nothing but counts
on the baseline's buckets, so shards' profiles add up (``a + b``, :func:`merge`) to the
profile of all their rows (those live in ``model_code.monitoring.drift_profile``, and are importable
from here too); :func:`compare` turns the two into a :class:`DriftReport`.
:func:`detect` does all three for two in-memory frames.

Per column the report holds the population stability index (PSI), a test p-value and a
``drifted`` flag:

* numeric features, and the ``prediction`` column when both sides carry it: a two-sample
  Kolmogorov-Smirnov test on *binned* CDFs. Buckets are split at up to ``ks_bins`` (1000)
  reference quantiles, and the statistic is the largest CDF gap at those edges: never more
  than the exact KS statistic, and short of it by at most the largest share either sample
  has in one bucket (about 1/ks_bins, unless the current data piles up inside one bucket).
  The p-value comes from scipy's ``kstwo`` distribution at the effective size ``n*m/(n+m)``,
  as in ``scipy.stats.ks_2samp(method="asymp")``. Nulls count as a value below every number,
  so a change in the null share moves the CDF at its left end. PSI groups the fine buckets
  into ``psi_bins`` (10) reference-quantile buckets plus one for nulls.
* categorical features: a chi-square test of homogeneity on the category counts, nulls and
  categories the reference never had ("unseen": they are drift) as buckets of their own;
  PSI on the same buckets.

The rule is ``drifted = p_value < p_value_threshold and psi >= psi_threshold``, defaults
0.01 and 0.05 (``DEFAULT_P_VALUE_THRESHOLD``, ``DEFAULT_PSI_THRESHOLD``), settable per
feature in the schema (``drift: {psi: 0.1, p_value: 0.001}``; see ``thresholds``).

Why significance *and* an effect size. A test's power grows with the number of rows: at a
million rows a 0.02-SD shift nobody would act on has p < 1e-10, so p-values alone flag
noise-sized changes on large windows. An effect size alone fails the other way: PSI measured
on samples carries a bias of about (buckets - 1) x (1/n + 1/m) with no drift at all (0.018 at
1,000 rows a side with 10 buckets), so small windows would cry wolf. The p-value says a
shift is real; the effect size that it is large enough to matter.

Why PSI as the effect size: it is computed from the same mergeable bucket counts for numeric
and categorical columns (so shards still add up), it is the figure users know, and its
threshold reads as a shift a user would call drift:

* a mean shift of d standard deviations of a normal feature gives PSI of about d**2 (on 10
  quantile buckets a little less: 0.3 SD gives 0.085);
* a category the reference never had, reaching a share s of rows, adds about
  s x ln(s / PSI_FLOOR): 0.11 at 2%, 0.046 at 1%.

The customary 0.1 ("moderate shift") misses both a 0.3-SD shift and a new category at 2%;
0.05 flags mean shifts from about 0.23 SD and new categories from about 1.2% of rows. With
no drift the test half alone flags about 1% of checks (at most: the binned KS test is
conservative), and requiring PSI as well flags fewer; the tests measure both on planted data
at 1,000 to 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

# `import name as name` marks a re-export: the statistics that moved to drift_profile are still
# importable from here.
from model_code import metrics
from model_code.contract import rules
from model_code.contract import schema as schema_mod
from model_code.contract.schema import Schema
from model_code.monitoring.drift_profile import (
    DEFAULT_KS_BINS,
    DEFAULT_PSI_BINS,
    PREDICTION_COLUMN,
    Baseline,
    NumericBins,
    Profile,
    require_features,
)
from model_code.monitoring.drift_profile import FORMAT_VERSION as FORMAT_VERSION
from model_code.monitoring.drift_profile import MAX_UNSEEN_EXAMPLES as MAX_UNSEEN_EXAMPLES
from model_code.monitoring.drift_profile import QUANTILE_SAMPLE as QUANTILE_SAMPLE
from model_code.monitoring.drift_profile import Bins as Bins
from model_code.monitoring.drift_profile import CategoryBins as CategoryBins
from model_code.monitoring.drift_profile import merge as merge

DEFAULT_PSI_THRESHOLD = 0.05
DEFAULT_P_VALUE_THRESHOLD = 0.01
PSI_FLOOR = 1e-4  # an empty bucket would make PSI infinite; floor shares, as is customary


@dataclass(frozen=True)
class FeatureDrift:
    """One column's drift: the test, its statistic and p-value, PSI and the verdict."""

    kind: str  # numeric | categorical
    test: str  # ks | chi2
    statistic: float  # KS: largest CDF gap; chi2: the chi-square statistic
    p_value: float
    psi: float
    drifted: bool
    reference_null_share: float
    current_null_share: float
    unseen_categories: tuple[str, ...] = ()
    psi_threshold: float = DEFAULT_PSI_THRESHOLD  # the thresholds this column was judged by
    p_value_threshold: float = DEFAULT_P_VALUE_THRESHOLD


@dataclass(frozen=True)
class DriftReport:
    """Drift per column of one comparison; ``drifted_features`` names the flagged ones."""

    model: str
    reference_rows: int
    current_rows: int
    psi_threshold: float
    p_value_threshold: float
    features: dict[str, FeatureDrift]

    @property
    def drifted_features(self) -> list[str]:
        return sorted(name for name, f in self.features.items() if f.drifted)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = {
            n: {**asdict(f), "unseen_categories": [*f.unseen_categories]} for n, f in self.features.items()
        }
        return {**out, "drifted_features": self.drifted_features}

    def to_metrics(self, model_name: str | None = None) -> list[dict[str, Any]]:
        """CloudWatch MetricData (namespace ``metrics.NAMESPACE``); Model is the schema name by default."""
        model = model_name or self.model
        data = []
        for name, f in self.features.items():
            dims = {"Model": model, "Feature": name}
            data.append(metrics.metric_datum("FeaturePSI", f.psi, dims))
            data.append(metrics.metric_datum("FeatureDriftPValue", f.p_value, dims))
            data.append(metrics.metric_datum("FeatureDrifted", int(f.drifted), dims))
        count = len(self.drifted_features)
        return [*data, metrics.metric_datum("DriftedFeatureCount", count, {"Model": model}, "Count")]


def thresholds(
    schema: Schema | None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    p_value_threshold: float = DEFAULT_P_VALUE_THRESHOLD,
) -> dict[str, tuple[float, float]]:
    """``{feature: (psi, p_value)}`` for the features whose schema entry sets its own thresholds."""
    if schema is None:
        return {}
    return {
        f.name: (f.drift_psi or psi_threshold, f.drift_p_value or p_value_threshold)
        for f in schema.features
        if f.drift_psi is not None or f.drift_p_value is not None
    }


def compare(
    baseline: Baseline,
    profile: Profile,
    *,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    p_value_threshold: float = DEFAULT_P_VALUE_THRESHOLD,
    schema: Schema | None = None,
) -> DriftReport:
    """Drift of the profiled rows from the baseline's reference, per column (see the module doc).

    The thresholds apply to every column but those whose ``schema`` entry sets its own.
    """
    if profile.baseline != baseline.fingerprint:
        raise ValueError(
            f"profile made on baseline {profile.baseline}, not this one ({baseline.fingerprint})"
        )
    if profile.rows == 0:
        raise ValueError("current: no rows to compare with the reference")
    own = thresholds(schema, psi_threshold, p_value_threshold)
    results = {}
    for name, cur in profile.counts.items():
        psi_limit, p_limit = own.get(name, (psi_threshold, p_value_threshold))
        b, ref = baseline.bins[name], baseline.reference.counts[name]
        if isinstance(b, NumericBins):
            test, (stat, p) = "ks", _ks(ref, cur)
            psi = _psi(np.bincount(b.psi_groups, ref), np.bincount(b.psi_groups, cur))
        else:
            test, (stat, p), psi = "chi2", _chi2(ref, cur), _psi(ref, cur)
        results[name] = FeatureDrift(
            kind=b.kind,
            test=test,
            statistic=stat,
            p_value=p,
            psi=psi,
            drifted=bool(p < p_limit and psi >= psi_limit),
            reference_null_share=float(ref[0] / ref.sum()),
            current_null_share=float(cur[0] / cur.sum()),
            unseen_categories=profile.unseen.get(name, ()),
            psi_threshold=psi_limit,
            p_value_threshold=p_limit,
        )
    return DriftReport(
        baseline.model, baseline.reference.rows, profile.rows, psi_threshold, p_value_threshold, results
    )


def detect(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: Schema,
    *,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    p_value_threshold: float = DEFAULT_P_VALUE_THRESHOLD,
    ks_bins: int = DEFAULT_KS_BINS,
    psi_bins: int = DEFAULT_PSI_BINS,
) -> DriftReport:
    """Drift of ``current`` from ``reference`` for each schema feature (and the prediction)."""
    require_features(current, schema, "current")
    baseline = Baseline.from_frame(reference, schema, ks_bins=ks_bins, psi_bins=psi_bins)
    profile = baseline.profile(current)
    return compare(
        baseline, profile, psi_threshold=psi_threshold, p_value_threshold=p_value_threshold, schema=schema
    )


def _ks(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    n, m = int(ref.sum()), int(cur.sum())
    d = float(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m).max())
    return d, float(stats.kstwo.sf(d, round(n * m / (n + m))))


def _chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:  # everything in one bucket on both sides: nothing moved
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    p = np.maximum(ref / ref.sum(), PSI_FLOOR)
    q = np.maximum(cur / cur.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def read_frame(path: str | Path, schema: Schema) -> pd.DataFrame:
    """A CSV or Parquet file coerced by the schema, keeping the ``prediction`` column if any."""
    path = Path(path)
    if path.suffix == ".parquet":
        raw = pd.read_parquet(path)
    else:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    frame = rules.coerce(raw, schema)
    if PREDICTION_COLUMN in raw.columns:
        frame[PREDICTION_COLUMN] = pd.to_numeric(raw[PREDICTION_COLUMN], errors="coerce")
    return frame


def print_report(report: DriftReport) -> None:
    """The report as a terminal table (what ``mlops drift`` shows; the JSON is what machines read)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Drift of {report.model}: {report.current_rows} rows against {report.reference_rows}"
    )
    for column in ("Feature", "Test", "Statistic", "p-value", "PSI", "Nulls ref → cur", "Drifted"):
        table.add_column(column, no_wrap=True)
    for name, f in report.features.items():
        nulls = f"{f.reference_null_share:.1%} → {f.current_null_share:.1%}"
        drifted = "[bold red]yes[/]" if f.drifted else "no"
        table.add_row(name, f.test, f"{f.statistic:.4g}", f"{f.p_value:.3g}", f"{f.psi:.3f}", nulls, drifted)
    console = Console(width=max(Console().width, 110))
    console.print(table)
    console.print(f"drifted: {', '.join(report.drifted_features) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    # Help text alone on its lines: `make mutation` leaves it be (pyproject's text_lines).
    parser = argparse.ArgumentParser(
        prog="mlops drift",
        description="Report drift per feature.",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="reference data, CSV or Parquet",
    )
    parser.add_argument(
        "--current",
        type=Path,
        required=True,
        help="current data, CSV or Parquet",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        default=schema_mod.EXAMPLE_SCHEMA,
        help="schema YAML",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="also write the report as JSON to this file",
    )
    parser.add_argument("--psi-threshold", type=float, default=DEFAULT_PSI_THRESHOLD)
    parser.add_argument("--p-value-threshold", type=float, default=DEFAULT_P_VALUE_THRESHOLD)
    args = parser.parse_args(argv)
    try:
        schema = schema_mod.load(args.schema)
        reference, current = read_frame(args.reference, schema), read_frame(args.current, schema)
        report = detect(
            reference,
            current,
            schema,
            psi_threshold=args.psi_threshold,
            p_value_threshold=args.p_value_threshold,
        )
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0
