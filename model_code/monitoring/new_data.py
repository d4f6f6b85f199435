"""The monitoring pipeline's new-data check: the feature group's records newer than a cutoff.

**New data** counts the feature group's records in the offline store (Parquet under
``.../offline-store/<group>-<created>/data/``; deleted ones apart) whose event time is after
``--since``: an ISO time, ``""`` for all, or ``last-training``: the champion's ``DataEnd``
(the newest event time it was trained on, where the next new-data-only run starts), else its
creation time, else all records. A record written twice (a file ingested again) counts once.

Shards (``count-shard``) count their files and keep hashed keys of the new records; the merge
(``count``) counts the keys once, whatever the sharding.

Reading the offline store's Parquet files (:func:`offline_times`), nothing assumes pandas' own
typing: a time column may be text (a String event time, ``yyyy-MM-dd'T'HH:mm:ss[.SSS]Z``), epoch
seconds (a Fractional one) or a Parquet timestamp, which SageMaker writes without a time zone
(``write_time``, ``api_invocation_time``: UTC); each is read as a UTC time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_code import container, metrics, register_info
from model_code.contract.schema import Schema
from model_code.monitoring.shards import files_under, sum_field, utc

LAST_TRAINING = "last-training"  # --since: the champion's DataEnd


def event_time_column(schema: Schema) -> str:
    """The feature group's event-time feature: the schema's, or ``event_time`` if it names none."""
    return schema.event_time or "event_time"


def resolve_since(since: str, group: str) -> tuple[pd.Timestamp | None, str]:
    """The cutoff after which records are new (None: every record), and where it came from.

    ``last-training``: the champion's ``DataEnd`` (the newest event time it was trained on,
    after which the next new-data-only run starts), or its creation time when it has none;
    every record when the group has no approved model yet.
    """
    if since != LAST_TRAINING:
        return (utc(since), "--since") if since else (None, "--since ''")
    package = register_info.latest_approved(group)
    if package is None:
        return None, f"no approved model in {group}"
    data_end = register_info.data_end(package)
    if data_end:
        return utc(data_end), f"{package['ModelPackageArn']} DataEnd"
    return utc(package["CreationTime"]), f"{package['ModelPackageArn']} CreationTime"


def offline_times(column: pd.Series) -> pd.Series:
    """A time column of an offline-store file as UTC times (NaT where it holds no time).

    Timestamps without a time zone, as SageMaker writes them, are UTC; numbers are epoch seconds
    (a Fractional event time); anything else is read as ISO-8601 text.
    """
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(column):
        return column.dt.tz_localize("UTC")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return pd.to_datetime(column.astype("float64"), unit="s", utc=True, errors="coerce")
    return pd.to_datetime(column.astype("string"), utc=True, errors="coerce", format="ISO8601")


def in_feature_group(relative: Path, group: str) -> bool:
    """Whether an offline-store file (its path below the input prefix) belongs to ``group``.

    Feature Store writes ``.../offline-store/<group>-<creation time>/data/...``; a prefix
    above that (the store of every group in the bucket) holds other groups' files too.
    """
    parts = [p.lower() for p in relative.parts[:-1]]
    if "offline-store" not in parts:
        return True  # the prefix already is the group's own folder
    folder = parts[parts.index("offline-store") + 1] if parts[-1] != "offline-store" else ""
    return re.fullmatch(rf"{re.escape(group.lower())}-\d+", folder) is not None


def count_shard(
    folder: Path, schema: Schema, since: pd.Timestamp | None, group: str
) -> tuple[dict[str, Any], np.ndarray]:
    """This shard's offline-store rows of ``group`` (Parquet under ``folder``), and the hashed
    (id, event time) keys of the live ones after ``since``: a record written twice (a
    re-ingested file) is one new record."""
    column, ids = event_time_column(schema), schema.entity_id
    counts = dict.fromkeys(("files", "other_groups", "rows", "deleted", "unparseable_times", "new_rows"), 0)
    keys = []
    for path in files_under(folder, (".parquet",)):
        if not in_feature_group(path.relative_to(folder), group):
            counts["other_groups"] += 1
            continue
        frame = pd.read_parquet(path)
        missing = [c for c in (ids, column) if c not in frame.columns]
        if missing:
            raise container.StepFailed(f"{path}: no {missing} column in the offline-store file")
        live = pd.Series(True, index=frame.index)
        if "is_deleted" in frame.columns:  # Feature Store keeps deleted records, flagged
            live = ~frame["is_deleted"].fillna(False).astype(bool)
        times = offline_times(frame[column])
        new = live & times.notna()
        if since is not None:
            new &= (times > since).fillna(False)
        counts["files"] += 1
        counts["rows"] += len(frame)
        counts["deleted"] += int((~live).sum())
        counts["unparseable_times"] += int((live & times.isna()).sum())
        counts["new_rows"] += int(new.sum())
        # Hashes of (id, event time in microseconds): the same record hashes alike in every shard.
        key = pd.DataFrame({"id": frame.loc[new, ids].astype("string"), "time": times[new].dt.as_unit("us")})
        key["time"] = key["time"].astype("int64")
        keys.append(pd.util.hash_pandas_object(key, index=False).to_numpy(dtype=np.uint64))
    return counts, np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.uint64)


def merge_counts(shards: list[dict[str, Any]], keys: list[np.ndarray], schema: Schema) -> dict[str, Any]:
    """The shards' counts summed, new records counted once, and the NewRecordCount datum."""
    new_records = int(np.unique(np.concatenate(keys)).size) if keys else 0
    counts = {
        k: sum_field(shards, k)
        for k in ("files", "other_groups", "rows", "deleted", "unparseable_times", "new_rows")
    }
    datum = metrics.metric_datum("NewRecordCount", new_records, {"Model": schema.name}, "Count")
    return {
        "model": schema.name,
        "since": shards[0]["since"],
        "since_source": shards[0]["since_source"],
        **counts,
        "new_records": new_records,
        "shards": [s["host"] for s in shards],
        "published": [datum],
    }
