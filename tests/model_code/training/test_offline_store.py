"""The point-in-time training set from offline-store rows: latest version per record in the window."""

from __future__ import annotations

import pandas as pd
import pytest

from model_code.training.offline_store import WaitExceeded, point_in_time, wait_for_records

T = pd.Timestamp


def version(record: str, event: str, value: float, written: str, called: str, deleted: bool = False) -> dict:
    # Times as SageMaker's Parquet holds them: no time zone, UTC.
    return {
        "customer_id": record,
        "event_time": event,
        "monthly_charges": value,
        "write_time": T(written),
        "api_invocation_time": T(called),
        "is_deleted": deleted,
    }


@pytest.fixture
def store() -> pd.DataFrame:
    return pd.DataFrame(
        [
            version("A", "2026-01-01T10:00:00Z", 1.0, "2026-01-01T10:10", "2026-01-01T10:00"),
            version("A", "2026-01-02T10:00:00Z", 2.0, "2026-01-02T10:10", "2026-01-02T10:00"),
            version("A", "2026-01-05T10:00:00Z", 5.0, "2026-01-05T10:10", "2026-01-05T10:00"),  # after
            # B: two versions with the same event time; the later write wins.
            version("B", "2026-01-02T09:00:00Z", 7.0, "2026-01-02T09:20", "2026-01-02T09:00"),
            version("B", "2026-01-02T09:00:00Z", 8.0, "2026-01-02T09:30", "2026-01-02T09:01"),
            # C: same event and write time; the later API call wins.
            version("C", "2026-01-02T08:00:00.500Z", 3.0, "2026-01-02T08:15", "2026-01-02T08:00"),
            version("C", "2026-01-02T08:00:00.500Z", 4.0, "2026-01-02T08:15", "2026-01-02T08:02"),
            # D: deleted after its put, inside the window: left out.
            version("D", "2026-01-02T07:00:00Z", 9.0, "2026-01-02T07:10", "2026-01-02T07:00"),
            version("D", "2026-01-02T11:00:00Z", float("nan"), "2026-01-02T11:10", "2026-01-02T11:00", True),
            # E: only before the window.
            version("E", "2025-12-30T10:00:00Z", 6.0, "2025-12-30T10:10", "2025-12-30T10:00"),
        ]
    )


def test_the_latest_version_of_each_record_in_the_window_without_deleted_ones(store):
    got = point_in_time(
        store, record_id="customer_id", event_time="event_time", start=T("2025-12-31", tz="UTC"),
        end=T("2026-01-03", tz="UTC"),
    )  # fmt: skip
    assert list(got["customer_id"]) == ["C", "B", "A"]  # by event time
    assert dict(zip(got["customer_id"], got["monthly_charges"], strict=True)) == {
        "A": 2.0,
        "B": 8.0,
        "C": 4.0,
    }
    assert not {"write_time", "api_invocation_time", "is_deleted"} & set(got.columns)


def test_a_deletion_after_the_window_does_not_remove_the_record_from_it(store):
    got = point_in_time(store, record_id="customer_id", event_time="event_time", end=T("2026-01-02T10:00Z"))
    assert "D" in set(got["customer_id"])
    assert set(got["customer_id"]) == {"A", "B", "C", "D", "E"}


def test_timezone_aware_write_times_order_the_same(store):
    aware = store.assign(write_time=store["write_time"].dt.tz_localize("UTC"))
    kwargs = {"record_id": "customer_id", "event_time": "event_time"}
    assert point_in_time(aware, **kwargs).equals(point_in_time(store, **kwargs))


def test_rows_without_the_identifier_column_are_refused_naming_it(store):
    with pytest.raises(ValueError, match="no customer column"):
        point_in_time(store, record_id="customer", event_time="event_time")


def _store_growing(batches: list[int]):
    """A read of the offline store that shows ``batches[i]`` live rows at the i-th read."""
    reads = iter(batches)

    def read() -> pd.DataFrame:
        n = next(reads)
        return pd.DataFrame({"customer_id": [f"C{i}" for i in range(n)], "is_deleted": [False] * n})

    return read


def test_the_wait_sleeps_until_the_reported_records_are_visible_and_says_how_many_it_waited_for():
    slept = []
    waited = wait_for_records(
        _store_growing([0, 40, 100]), 100, wait_seconds=600, poll_seconds=60, sleep=slept.append
    )
    assert (waited.records_waited_for, waited.seconds_waited, waited.polls) == (100, 120, 3)
    assert slept == [60, 60] and len(waited.rows) == 100


def test_the_wait_past_its_bound_names_the_parameter_and_the_counts():
    slept = []
    with pytest.raises(WaitExceeded) as exceeded:
        wait_for_records(
            _store_growing([10, 20, 30, 40]), 50, wait_seconds=150, poll_seconds=60, sleep=slept.append
        )
    # Never past the bound: the last sleep is what is left of it.
    assert slept == [60, 60, 30]
    assert str(exceeded.value).startswith(
        "OfflineStoreWaitSeconds: waited 150 s (the bound) for the offline store to show the 50 records "
        "ingestion reported; 40 visible, 10 still missing"
    )


def test_nothing_reported_means_no_wait():
    waited = wait_for_records(_store_growing([0]), 0, wait_seconds=0, sleep=lambda s: pytest.fail("slept"))
    assert (waited.records_waited_for, waited.seconds_waited) == (0, 0)


class _Listed:
    """An S3 client answering one listing and the reports' bodies, as S3 does."""

    def __init__(self, reports: dict[str, tuple[str, dict]]):
        self.reports = reports

    def get_paginator(self, _name):
        return self

    def paginate(self, Bucket, Prefix):
        contents = [
            {"Key": key, "LastModified": pd.Timestamp(when).to_pydatetime()}
            for key, (when, _) in self.reports.items()
        ]
        return [{"Contents": contents}]

    def get_object(self, Bucket, Key):
        import io
        import json

        return {"Body": io.BytesIO(json.dumps(self.reports[Key][1]).encode())}


def test_a_report_written_in_the_second_the_group_was_created_counts():
    """S3 keeps LastModified to the second (its listings show ``.000Z``): a report written
    0.4 s after the group was created lists as the second the group was created in."""
    from model_code.training.offline_store import INGEST_REPORT_SUFFIX, reported_records

    created = pd.Timestamp("2026-12-07T17:01:25.600000Z").to_pydatetime()
    s3 = _Listed(
        {
            f"pipelines/ingestion/a/{INGEST_REPORT_SUFFIX}": ("2026-12-07T17:01:25Z", {"records_put": 400}),
            f"pipelines/ingestion/b/{INGEST_REPORT_SUFFIX}": ("2026-12-07T17:01:30Z", {"records_put": 20}),
            f"pipelines/ingestion/old/{INGEST_REPORT_SUFFIX}": ("2026-12-07T17:01:24Z", {"records_put": 7}),
        }
    )
    assert reported_records(s3, "s3://bucket/pipelines/ingestion/", "group", created) == (420, 2)
