"""The mergeable statistics behind drift detection: a reference's buckets, and counts on them.

The reference is summarised once into a :class:`Baseline` (buckets and counts,
JSON-serialisable); current data becomes a :class:`Profile`, nothing but counts on the
baseline's buckets, so shards' profiles add up (``a + b``, :func:`merge`) to the profile of
all their rows. ``model_code.monitoring.drift.compare`` turns the two into a drift report.

Buckets, per column:

* numeric features, and the ``prediction`` column when the reference carries it: fine buckets
  split at up to ``ks_bins`` (1000) reference quantiles, for the binned KS test, grouped into
  ``psi_bins`` (10) reference-quantile buckets for PSI. Nulls are a bucket of their own, below
  every number.
* categorical features: one bucket per category (declared by the schema, then observed),
  one for nulls and one for categories the reference never had ("unseen"), the first few of
  which are kept by name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from model_code.contract.schema import Schema

# The positive-class probability the model returned, captured next to its inputs.
PREDICTION_COLUMN = "prediction"
DEFAULT_KS_BINS = 1000
DEFAULT_PSI_BINS = 10
# Edges only need to split the data finely: quantiles of a seeded sample take milliseconds
# where sorting a million rows per feature would not. Reference counts are still exact.
QUANTILE_SAMPLE = 100_000
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
        require_features(reference, schema, "reference")
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


def require_features(frame: pd.DataFrame, schema: Schema, which: str) -> None:
    """ValueError naming the schema features ``frame`` (the ``which`` data) has no column for."""
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
