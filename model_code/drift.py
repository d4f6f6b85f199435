"""Drift of each input feature and of the predictions: reference data against current data.

Built to be sharded. The reference is summarised once into a :class:`Baseline` (buckets
and counts, JSON-serialisable); current data becomes a :class:`Profile`, nothing but counts
on the baseline's buckets, so shards' profiles add up (``a + b``, :func:`merge`) to the
profile of all their rows; :func:`compare` turns the two into a :class:`DriftReport`.
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

The rule is ``drifted = p_value < p_value_threshold and psi >= psi_threshold`` (defaults
0.01 and 0.1). Neither half works alone: with a million rows a negligible shift has a tiny
p-value, and over 20 features a 1% test alone cries wolf in about one run of five; PSI, an
effect size, is noisy on small samples (with no drift it averages about buckets x (1/n +
1/m)). The p-value says a shift is real, PSI >= 0.1 (the customary "moderate shift") that
it matters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from model_code import metrics
from model_code import schema as schema_mod
from model_code.schema import Schema

# The positive-class probability the model returned, captured next to its inputs.
PREDICTION_COLUMN = "prediction"
DEFAULT_PSI_THRESHOLD = 0.1
DEFAULT_P_VALUE_THRESHOLD = 0.01
DEFAULT_KS_BINS = 1000
DEFAULT_PSI_BINS = 10
# Edges only need to split the data finely: quantiles of a seeded sample take milliseconds
# where sorting a million rows per feature would not. Reference counts are still exact.
QUANTILE_SAMPLE = 100_000
PSI_FLOOR = 1e-4  # an empty bucket would make PSI infinite; floor shares, as is customary
MAX_UNSEEN_EXAMPLES = 20
FORMAT_VERSION = 1


def _numbers(values: pd.Series | np.ndarray) -> np.ndarray:
    """Float64 values; unparseable ones become null (quarantining them is the validator's job)."""
    if isinstance(values, np.ndarray):
        return values
    if not (pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)):
        values = pd.to_numeric(values, errors="coerce")
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _value_counts(values: pd.Series | dict[Any, int]) -> dict[Any, int]:
    # Count distinct values once (in C for Arrow-backed strings); only they are mapped.
    if isinstance(values, dict):
        return values
    counts = values.value_counts(dropna=False, sort=False)
    return {k: int(n) for k, n in zip(counts.index, counts.to_numpy(), strict=True) if n > 0}


@dataclass(frozen=True, eq=False)
class NumericBins:
    """Buckets ``[null, x < e0, e0 <= x < e1, ..., x >= e_last]`` on fine quantile ``edges``;
    ``psi_edges`` are a subset of them, so PSI buckets are unions of fine ones."""

    edges: np.ndarray
    psi_edges: np.ndarray
    kind: str = "numeric"

    @cached_property
    def psi_groups(self) -> np.ndarray:
        """The PSI bucket of each fine bucket (0 is null)."""
        return np.concatenate([[0, 1], 1 + np.searchsorted(self.psi_edges, self.edges, side="right")])

    @cached_property
    def _grid(self) -> tuple[float, float, int, np.ndarray, np.ndarray] | None:
        # searchsorted over 1000 edges costs ~65 ns a value (a branchy binary search). A
        # uniform grid over the central 98% of edges finds the bucket by arithmetic; two
        # compare steps settle cells that hold edges, and values in cells with more than two
        # (tails, spikes) fall back to searchsorted.
        k = len(self.edges)
        lo, hi = self.edges[int(0.01 * (k - 1))], self.edges[int(np.ceil(0.99 * (k - 1)))]
        if k < 16 or not hi > lo:
            return None
        cells = 8 * k
        scale = cells / (hi - lo)
        c = np.arange(cells + 2, dtype="float64")
        # Cell c holds (x - lo) * scale in [c - 1, c); widen by half a cell against rounding.
        first = np.searchsorted(self.edges, lo + (c - 1.5) / scale, side="right")
        last = np.searchsorted(self.edges, lo + (c + 0.5) / scale, side="right")
        first[0], last[-1] = 0, k
        return lo, scale, cells, first, last - first

    def bucket(self, x: np.ndarray) -> np.ndarray:
        """Fine bucket of each non-null value, less the null one: the number of edges <= x."""
        if self._grid is None:
            return np.searchsorted(self.edges, x, side="right")
        lo, scale, cells, first, span = self._grid
        t = x - lo
        t *= scale
        np.clip(t, -1.0, cells, out=t)
        t += 1.0
        cell = t.astype(np.intp)
        b = first[cell]
        padded = np.append(self.edges, np.nan)  # x >= nan is False: never steps past the end
        for _ in range(2):
            b += x >= padded[b]
        far = np.flatnonzero(span[cell] > 2)
        b[far] = np.searchsorted(self.edges, x[far], side="right")
        return b

    def count(self, values: pd.Series | np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        x = _numbers(values)
        nulls = np.isnan(x)
        n_null = int(nulls.sum())
        counts = np.bincount(self.bucket(x[~nulls] if n_null else x), minlength=len(self.edges) + 1)
        return np.concatenate([[n_null], counts]).astype(np.int64), ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "edges": self.edges.tolist(), "psi_edges": self.psi_edges.tolist()}


@dataclass(frozen=True, eq=False)
class CategoryBins:
    """Buckets ``[null, *categories, unseen]``."""

    categories: tuple[str, ...]
    kind: str = "categorical"

    @cached_property
    def _index(self) -> dict[str, int]:
        return {c: i + 1 for i, c in enumerate(self.categories)}

    def count(self, values: pd.Series | dict[Any, int]) -> tuple[np.ndarray, tuple[str, ...]]:
        """Bucket counts, and the first unseen categories by name."""
        counts = np.zeros(len(self.categories) + 2, dtype=np.int64)
        unseen = []
        for value, n in _value_counts(values).items():
            index = 0 if pd.isna(value) else self._index.get(str(value), -1)
            if index == -1:
                unseen.append(str(value))
            counts[index] += n
        return counts, tuple(sorted(unseen)[:MAX_UNSEEN_EXAMPLES])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "categories": list(self.categories)}


Bins = NumericBins | CategoryBins


@dataclass(frozen=True, eq=False)
class Profile:
    """Counts of some rows on a baseline's buckets. ``a + b`` is the profile of both."""

    baseline: str  # the baseline's fingerprint: counts on different buckets never mix
    rows: int
    counts: dict[str, np.ndarray]
    unseen: dict[str, tuple[str, ...]] = field(default_factory=dict)  # categorical columns only

    def __add__(self, other: Profile) -> Profile:
        if (other.baseline, set(other.counts)) != (self.baseline, set(self.counts)):
            raise ValueError(
                f"cannot merge profiles of different baselines or columns: {self.baseline} "
                f"{sorted(self.counts)} and {other.baseline} {sorted(other.counts)}"
            )
        # The first names of a union are the first of each part's first: merging stays exact.
        unseen = {
            k: tuple(sorted({*v, *other.unseen.get(k, ())})[:MAX_UNSEEN_EXAMPLES])
            for k, v in self.unseen.items()
        }
        counts = {k: v + other.counts[k] for k, v in self.counts.items()}
        return Profile(self.baseline, self.rows + other.rows, counts, unseen)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self.to_dict() == other.to_dict()

    __hash__ = None  # holds mutable arrays

    def to_dict(self) -> dict[str, Any]:
        features: dict[str, dict[str, Any]] = {}
        for name, c in self.counts.items():
            if name in self.unseen:
                features[name] = {"nulls": int(c[0]), "counts": c[1:-1].tolist(), "unseen": int(c[-1])}
                features[name]["unseen_examples"] = list(self.unseen[name])
            else:
                features[name] = {"nulls": int(c[0]), "counts": c[1:].tolist()}
        return {"version": FORMAT_VERSION, "baseline": self.baseline, "rows": self.rows, "features": features}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        counts, unseen = {}, {}
        for name, f in data["features"].items():
            tail = [f["unseen"]] if "unseen" in f else []
            counts[name] = np.array([f["nulls"], *f["counts"], *tail], dtype=np.int64)
            if "unseen" in f:
                unseen[name] = tuple(f["unseen_examples"])
        return cls(data["baseline"], int(data["rows"]), counts, unseen)


def merge(profiles: list[Profile]) -> Profile:
    """The profile of all the shards' rows together."""
    if not profiles:
        raise ValueError("merge: no profiles given")
    total = profiles[0]
    for p in profiles[1:]:
        total = total + p
    return total


@dataclass(frozen=True, eq=False)
class Baseline:
    """The reference, summarised once: each column's buckets and the reference's counts on them."""

    model: str
    bins: dict[str, Bins]
    reference: Profile

    @classmethod
    def from_frame(
        cls,
        reference: pd.DataFrame,
        schema: Schema,
        *,
        ks_bins: int = DEFAULT_KS_BINS,
        psi_bins: int = DEFAULT_PSI_BINS,
        random_state: int = 0,
    ) -> Baseline:
        """Quantile edges and known categories (declared, then observed) from the reference."""
        if len(reference) == 0:
            raise ValueError("reference: no rows to build a drift baseline from")
        _require_features(reference, schema, "reference")
        rng = np.random.default_rng(random_state)
        bins: dict[str, Bins] = {}
        counts, unseen = {}, {}
        for name in [*schema.feature_names, PREDICTION_COLUMN]:
            if name not in reference.columns:
                continue
            if name in schema.categorical_features:
                values = _value_counts(reference[name])
                declared = schema.feature(name).values or ()
                observed = {str(v) for v in values if not pd.isna(v)} - set(declared)
                bins[name] = CategoryBins((*declared, *sorted(observed)))
                counts[name], unseen[name] = bins[name].count(values)
            else:
                x = _numbers(reference[name])
                bins[name] = _quantile_bins(x, ks_bins, psi_bins, rng)
                counts[name], _ = bins[name].count(x)
        return cls(schema.name, bins, Profile(_fingerprint(bins), len(reference), counts, unseen))

    @property
    def fingerprint(self) -> str:
        return self.reference.baseline

    def profile(self, frame: pd.DataFrame) -> Profile:
        """Counts of ``frame`` on this baseline's buckets (of the prediction only if present)."""
        missing = [n for n in self.bins if n not in frame.columns and n != PREDICTION_COLUMN]
        if missing:
            raise ValueError(f"current: missing feature columns {missing}")
        counts, unseen = {}, {}
        for name, b in self.bins.items():
            if name in frame.columns:
                counts[name], examples = b.count(frame[name])
                if b.kind == "categorical":
                    unseen[name] = examples
        return Profile(self.fingerprint, len(frame), counts, unseen)

    def to_dict(self) -> dict[str, Any]:
        bins = {name: b.to_dict() for name, b in self.bins.items()}
        return {
            "version": FORMAT_VERSION,
            "model": self.model,
            "bins": bins,
            "reference": self.reference.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"baseline: format version {data.get('version')!r}, expected {FORMAT_VERSION}")
        bins: dict[str, Bins] = {
            name: NumericBins(np.array(b["edges"], "float64"), np.array(b["psi_edges"], "float64"))
            if b["kind"] == "numeric"
            else CategoryBins(tuple(b["categories"]))
            for name, b in data["bins"].items()
        }
        reference = Profile.from_dict(data["reference"])
        if reference.baseline != _fingerprint(bins):
            raise ValueError("baseline: the reference counts were made on other buckets")
        return cls(data["model"], bins, reference)


def _require_features(frame: pd.DataFrame, schema: Schema, which: str) -> None:
    missing = [n for n in schema.feature_names if n not in frame.columns]
    if missing:
        raise ValueError(f"{which}: missing feature columns {missing}")


def _quantile_bins(x: np.ndarray, ks_bins: int, psi_bins: int, rng: np.random.Generator) -> NumericBins:
    x = x[~np.isnan(x)]
    if len(x) == 0:  # an all-null reference: one edge still lets numbers that appear later show
        return NumericBins(np.zeros(1), np.zeros(1))
    if len(x) > QUANTILE_SAMPLE:
        x = x[rng.integers(0, len(x), QUANTILE_SAMPLE)]
    # inverted_cdf picks data values: integer features get integer edges, no empty buckets.
    q = np.quantile(x, np.linspace(0.0, 1.0, ks_bins + 1), method="inverted_cdf")
    coarse = q[np.round(np.linspace(0, ks_bins, psi_bins + 1)).astype(int)]
    return NumericBins(np.unique(q), np.unique(coarse))


def _fingerprint(bins: dict[str, Bins]) -> str:
    text = json.dumps({k: b.to_dict() for k, b in bins.items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def compare(
    baseline: Baseline,
    profile: Profile,
    *,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    p_value_threshold: float = DEFAULT_P_VALUE_THRESHOLD,
) -> DriftReport:
    """Drift of the profiled rows from the baseline's reference, per column (see the module doc)."""
    if profile.baseline != baseline.fingerprint:
        raise ValueError(
            f"profile made on baseline {profile.baseline}, not this one ({baseline.fingerprint})"
        )
    if profile.rows == 0:
        raise ValueError("current: no rows to compare with the reference")
    results = {}
    for name, cur in profile.counts.items():
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
            drifted=bool(p < p_value_threshold and psi >= psi_threshold),
            reference_null_share=float(ref[0] / ref.sum()),
            current_null_share=float(cur[0] / cur.sum()),
            unseen_categories=profile.unseen.get(name, ()),
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
    _require_features(current, schema, "current")
    baseline = Baseline.from_frame(reference, schema, ks_bins=ks_bins, psi_bins=psi_bins)
    profile = baseline.profile(current)
    return compare(baseline, profile, psi_threshold=psi_threshold, p_value_threshold=p_value_threshold)


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
    frame = schema_mod.coerce(raw, schema)
    if PREDICTION_COLUMN in raw.columns:
        frame[PREDICTION_COLUMN] = pd.to_numeric(raw[PREDICTION_COLUMN], errors="coerce")
    return frame


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(prog="mlops drift", description="Report drift per feature.")
    parser.add_argument("--reference", type=Path, required=True, help="reference data, CSV or Parquet")
    parser.add_argument("--current", type=Path, required=True, help="current data, CSV or Parquet")
    parser.add_argument("--schema", type=Path, default=schema_mod.EXAMPLE_SCHEMA, help="schema YAML")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
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
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0
