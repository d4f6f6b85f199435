"""The plumbing of a sharded processing step: its window, the files it was dealt, its output.

A check runs as a shard step on N instances (files dealt out by ``ShardedByS3Key``) and a
merge step on one. Every shard names its output after its host (``container.current_host``)
and records the job's host list; a merge fails when a host's output is missing or the shards
disagree (on the window, the baseline, the cutoff), so nothing is dropped or mixed silently.

Shards of one job must also agree on their window: ``resolve_window`` takes its end from the
pipeline execution's start time, which every shard is given, not from the shard's own clock.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from model_code import container

EXECUTION_START = "execution-start"  # --window-end: the pipeline execution's start time


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp

    def contains(self, times: pd.Series) -> pd.Series:
        return ((times >= self.start) & (times < self.end)).fillna(False).astype(bool)

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Window:
        return cls(pd.Timestamp(data["start"]), pd.Timestamp(data["end"]))


def utc(text: str | datetime) -> pd.Timestamp:
    """An ISO-8601 time as a UTC timestamp (UTC if it names no zone); ValueError if it is not one."""
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        stamp = pd.NaT
    if pd.isna(stamp):
        raise ValueError(f"expected an ISO-8601 time, got {text!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def resolve_window(window_end: str, hours: float, execution_start: str | None = None) -> Window:
    """The window ending at ``window_end`` (or the execution's start, or now, for ``execution-start``)."""
    if hours <= 0:
        raise ValueError(f"--window-hours: expected a positive number of hours, got {hours:g}")
    if window_end in ("", EXECUTION_START):
        end = utc(execution_start) if execution_start else pd.Timestamp.now(tz="UTC").floor("s")
    else:
        end = utc(window_end)
    return Window(end - timedelta(hours=hours), end)


def files_under(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files with one of ``suffixes`` anywhere under ``folder`` (none if it does not exist), sorted."""
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def write_shard(output: Path, data: dict[str, Any]) -> Path:
    """Write this host's output as ``<host>.json``, with the job's host list; returns its path."""
    host, hosts = container.current_host()
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{host}.json"
    path.write_text(json.dumps({"host": host, "hosts": hosts, **data}, indent=2) + "\n")
    return path


def read_shards(folder: Path, same: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every shard's JSON output, checked complete: one per host of the job, agreeing on ``same`` keys.

    Raises
    ------
    container.StepFailed
        When a host's output is missing or doubled, or shards disagree (e.g. on the window).
    """
    shards = [json.loads(p.read_text()) for p in files_under(folder, (".json",))]
    if not shards:
        raise container.StepFailed(f"{folder}: no shard outputs to merge")
    hosts = Counter(s["host"] for s in shards)
    expected = set(shards[0]["hosts"])
    missing, doubled = sorted(expected - set(hosts)), sorted(h for h, n in hosts.items() if n > 1)
    unexpected = sorted(set(hosts) - expected)
    if missing or doubled or unexpected:
        raise container.StepFailed(
            f"{folder}: shard outputs do not match the job's hosts {sorted(expected)}: "
            f"missing {missing}, doubled {doubled}, unexpected {unexpected}"
        )
    for key in same:
        values = {json.dumps(s.get(key), sort_keys=True) for s in shards}
        if len(values) > 1:
            raise container.StepFailed(f"{folder}: shards disagree on {key}: {sorted(values)}")
    return sorted(shards, key=lambda s: s["host"])


def sum_field(shards: list[dict[str, Any]], key: str) -> int:
    """The shards' ``key`` values, summed."""
    return sum(int(s[key]) for s in shards)


def sum_counts(shards: list[dict[str, Any]], key: str) -> dict[str, int]:
    """The shards' ``key`` counters (reason -> count), summed, sorted by reason."""
    total: Counter[str] = Counter()
    for s in shards:
        total.update(s[key])
    return dict(sorted(total.items()))
