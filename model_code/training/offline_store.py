"""A point-in-time training set from a feature group's offline store.

The offline store keeps every version of every record (each PutRecord and DeleteRecord is a row,
with ``write_time``, ``api_invocation_time`` and ``is_deleted``). A training set as of a window
``(start, end]`` is, per record identifier, the latest version whose event time falls in the
window, ordered as Feature Store orders versions: by event time, then ``write_time``, then
``api_invocation_time``; a record whose latest version there is a deletion is left out, and the
bookkeeping columns are dropped.

Times are read with :func:`model_code.monitoring.new_data.offline_times`: SageMaker's Parquet
timestamps carry no time zone (UTC), a String event time is ISO-8601 text.

Not yet used by the training pipeline: its EngineerFeatures step still reads the validated raw
uploads (``model_code.training.prepare``).
"""

from __future__ import annotations

import pandas as pd

from model_code.monitoring.new_data import offline_times

BOOKKEEPING = ("write_time", "api_invocation_time", "is_deleted")


def point_in_time(
    rows: pd.DataFrame,
    *,
    record_id: str,
    event_time: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per ``record_id``, the latest version with ``start < event time <= end`` (None: unbounded).

    ``rows`` are offline-store rows (every version); the answer has one row per record that is
    not deleted as of the window, sorted by event time then id, without the bookkeeping columns.
    """
    missing = [c for c in (record_id, event_time) if c not in rows.columns]
    if missing:
        raise ValueError(f"offline store: no {', '.join(missing)} column in the rows read")
    order = pd.DataFrame(
        {
            "event": offline_times(rows[event_time]),
            "written": offline_times(rows["write_time"]) if "write_time" in rows else pd.NaT,
            "called": offline_times(rows["api_invocation_time"]) if "api_invocation_time" in rows else pd.NaT,
        },
        index=rows.index,
    )
    inside = order["event"].notna()
    if start is not None:
        inside &= order["event"] > start
    if end is not None:
        inside &= order["event"] <= end
    ranked = order[inside].sort_values(["event", "written", "called"], kind="stable", na_position="first")
    latest = rows.loc[ranked.index].drop_duplicates(record_id, keep="last")
    if "is_deleted" in latest.columns:
        latest = latest[~latest["is_deleted"].fillna(False).astype(bool)]
    latest = latest.assign(_event=order.loc[latest.index, "event"])
    latest = latest.sort_values(["_event", record_id], kind="stable").drop(columns="_event")
    return latest.drop(columns=[c for c in BOOKKEEPING if c in latest.columns]).reset_index(drop=True)
