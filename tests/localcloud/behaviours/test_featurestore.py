"""The feature store runtime, through boto3: records read back online and found offline in SageMaker's layout."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from botocore.exceptions import ClientError

from model_code.ingestion.ingest import feature_definitions, to_records

ROLE = "arn:aws:iam::123456789012:role/features"


@pytest.fixture
def group(emulator, client, churn_schema) -> str:
    client("s3").create_bucket(
        Bucket="features", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    client("sagemaker").create_feature_group(
        FeatureGroupName="churn",
        RecordIdentifierFeatureName=churn_schema.entity_id,
        EventTimeFeatureName=churn_schema.event_time,
        FeatureDefinitions=feature_definitions(churn_schema),
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://features/offline"}},
        RoleArn=ROLE,
    )
    return "churn"


def records(churn_frame, churn_schema, n=3) -> list[list[dict]]:
    return to_records(churn_frame.head(n), churn_schema)


def as_dict(record: list[dict]) -> dict[str, str]:
    return {item["FeatureName"]: item["ValueAsString"] for item in record}


def test_records_put_are_read_back_online(group, client, churn_frame, churn_schema):
    runtime = client("sagemaker-featurestore-runtime")
    put = records(churn_frame, churn_schema)
    for record in put:
        runtime.put_record(FeatureGroupName=group, Record=record)
    first = as_dict(put[0])
    identifier = first[churn_schema.entity_id]
    got = runtime.get_record(FeatureGroupName=group, RecordIdentifierValueAsString=identifier)
    assert as_dict(got["Record"]) == first
    some = runtime.get_record(
        FeatureGroupName=group,
        RecordIdentifierValueAsString=identifier,
        FeatureNames=[churn_schema.event_time],
    )
    assert [i["FeatureName"] for i in some["Record"]] == [churn_schema.event_time]
    ids = [as_dict(r)[churn_schema.entity_id] for r in put] + ["nobody"]
    batch = runtime.batch_get_record(
        Identifiers=[{"FeatureGroupName": group, "RecordIdentifiersValueAsString": ids}]
    )
    assert [r["RecordIdentifierValueAsString"] for r in batch["Records"]] == ids[:3]
    assert "Record" not in runtime.get_record(FeatureGroupName=group, RecordIdentifierValueAsString="nobody")


def test_an_older_event_time_does_not_replace_the_online_record_and_delete_removes_it(
    group, client, churn_frame, churn_schema
):
    runtime = client("sagemaker-featurestore-runtime")
    record = as_dict(records(churn_frame, churn_schema, 1)[0])
    identifier, event = record[churn_schema.entity_id], churn_schema.event_time
    runtime.put_record(
        FeatureGroupName=group, Record=[{"FeatureName": k, "ValueAsString": v} for k, v in record.items()]
    )
    older = {**record, event: "2000-01-01T00:00:00Z"}
    runtime.put_record(
        FeatureGroupName=group, Record=[{"FeatureName": k, "ValueAsString": v} for k, v in older.items()]
    )
    got = as_dict(
        runtime.get_record(FeatureGroupName=group, RecordIdentifierValueAsString=identifier)["Record"]
    )
    assert got[event] == record[event]
    runtime.delete_record(
        FeatureGroupName=group, RecordIdentifierValueAsString=identifier, EventTime=record[event]
    )
    assert "Record" not in runtime.get_record(
        FeatureGroupName=group, RecordIdentifierValueAsString=identifier
    )


def offline_rows(s3) -> pd.DataFrame:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="features").get("Contents", [])]
    return pd.concat(
        [pd.read_parquet(io.BytesIO(s3.get_object(Bucket="features", Key=k)["Body"].read())) for k in keys]
        or [pd.DataFrame()]
    )


def test_records_reach_the_offline_store_in_sagemakers_layout_once_the_delay_has_passed(
    group, emulator, client, churn_frame, churn_schema
):
    runtime, s3, sm = client("sagemaker-featurestore-runtime"), client("s3"), client("sagemaker")
    put = records(churn_frame, churn_schema, 5)
    for record in put:
        runtime.put_record(FeatureGroupName=group, Record=record)
    assert s3.list_objects_v2(Bucket="features").get("KeyCount") == 0
    # AWS writes the offline store up to 15 minutes after the call: the default delay.
    emulator.advance(14 * 60)
    assert s3.list_objects_v2(Bucket="features").get("KeyCount") == 0
    emulator.advance(60)
    resolved = sm.describe_feature_group(FeatureGroupName=group)["OfflineStoreConfig"]["S3StorageConfig"][
        "ResolvedOutputS3Uri"
    ]
    assert re.fullmatch(
        r"s3://features/offline/123456789012/sagemaker/eu-west-1/offline-store/churn-\d+/data", resolved
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="features")["Contents"]]
    prefix = resolved.removeprefix("s3://features/")
    assert all(
        re.fullmatch(
            rf"{prefix}/year=\d{{4}}/month=\d\d/day=\d\d/hour=\d\d/\d{{8}}T\d{{6}}Z_\w{{16}}\.parquet", k
        )
        for k in keys
    )
    frame = pd.concat(
        pd.read_parquet(io.BytesIO(s3.get_object(Bucket="features", Key=k)["Body"].read())) for k in keys
    )
    assert sorted(frame[churn_schema.entity_id].astype(str)) == sorted(
        as_dict(r)[churn_schema.entity_id] for r in put
    )
    assert {"write_time", "api_invocation_time", "is_deleted"} <= set(frame.columns)
    assert not frame["is_deleted"].any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "colour: not a feature of churn"),
        ({"__event__": "yesterday"}, "is not yyyy-MM-ddTHH:mm:ss[.SSS]Z"),
    ],
)
def test_bad_records_are_refused_naming_the_feature(
    group, client, churn_frame, churn_schema, change, message
):
    record = as_dict(records(churn_frame, churn_schema, 1)[0])
    for key, value in change.items():
        record[churn_schema.event_time if key == "__event__" else key] = value
    with pytest.raises(ClientError) as raised:
        client("sagemaker-featurestore-runtime").put_record(
            FeatureGroupName=group, Record=[{"FeatureName": k, "ValueAsString": v} for k, v in record.items()]
        )
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert message in raised.value.response["Error"]["Message"]


def test_an_unknown_group_is_not_found(emulator, client):
    with pytest.raises(ClientError) as raised:
        client("sagemaker-featurestore-runtime").get_record(
            FeatureGroupName="nope", RecordIdentifierValueAsString="1"
        )
    assert raised.value.response["Error"]["Code"] == "ResourceNotFound"


def test_write_time_lags_the_call_by_the_delay_in_naive_utc_timestamps(
    group, emulator, client, churn_frame, churn_schema
):
    runtime, s3 = client("sagemaker-featurestore-runtime"), client("s3")
    runtime.put_record(FeatureGroupName=group, Record=records(churn_frame, churn_schema, 1)[0])
    called = emulator.clock.now()
    emulator.advance(20 * 60)
    frame = offline_rows(s3)
    assert len(frame) == 1
    # Parquet timestamps without a time zone, as SageMaker's offline store files hold them.
    for column in ("write_time", "api_invocation_time"):
        assert pd.api.types.is_datetime64_dtype(frame[column]) and frame[column].dt.tz is None
    api, written = frame["api_invocation_time"].iloc[0], frame["write_time"].iloc[0]
    assert api == pd.Timestamp(called).tz_convert("UTC").tz_localize(None)
    lag = (written - api).total_seconds()
    assert 15 * 60 <= lag < 16 * 60


def test_the_offline_delay_is_configurable(moto_server, client, churn_frame, churn_schema):
    import requests

    from localcloud.behaviours import Clock, install
    from tests.localcloud.behaviours.support import START

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    behaviours = install(Clock(START), endpoint_url=moto_server, offline_store_delay=120)
    try:
        s3 = client("s3")
        s3.create_bucket(Bucket="features", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        client("sagemaker").create_feature_group(
            FeatureGroupName="churn",
            RecordIdentifierFeatureName=churn_schema.entity_id,
            EventTimeFeatureName=churn_schema.event_time,
            FeatureDefinitions=feature_definitions(churn_schema),
            OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://features/offline"}},
            RoleArn=ROLE,
        )
        runtime = client("sagemaker-featurestore-runtime")
        runtime.put_record(FeatureGroupName="churn", Record=records(churn_frame, churn_schema, 1)[0])
        behaviours.advance(60)
        assert offline_rows(s3).empty
        behaviours.advance(60)
        (lag,) = (offline_rows(s3)["write_time"] - offline_rows(s3)["api_invocation_time"]).dt.total_seconds()
        assert lag == 120
    finally:
        behaviours.uninstall()
        requests.post(f"{moto_server}/moto-api/reset", timeout=10)


@pytest.mark.parametrize(
    ("event_time", "accepted"),
    [
        ("2026-03-01T10:00:00Z", True),  # yyyy-MM-dd'T'HH:mm:ssZ
        ("2026-03-01T10:00:00.123Z", True),  # yyyy-MM-dd'T'HH:mm:ss.SSSZ
        ("2026-03-01T10:00:00.123456Z", False),  # microseconds: not a format AWS accepts
        ("2026-03-01T10:00:00.1Z", False),
        ("2026-03-01T10:00:00+00:00", False),
        ("2026-03-01 10:00:00Z", False),
    ],
)
def test_event_times_only_in_the_formats_aws_accepts(
    group, client, churn_frame, churn_schema, event_time, accepted
):
    # SageMaker Feature Store's developer guide: a String event time is yyyy-MM-dd'T'HH:mm:ssZ
    # or yyyy-MM-dd'T'HH:mm:ss.SSSZ.
    record = as_dict(records(churn_frame, churn_schema, 1)[0]) | {churn_schema.event_time: event_time}
    put = [{"FeatureName": k, "ValueAsString": v} for k, v in record.items()]
    runtime = client("sagemaker-featurestore-runtime")
    if accepted:
        runtime.put_record(FeatureGroupName=group, Record=put)
        return
    with pytest.raises(ClientError) as raised:
        runtime.put_record(FeatureGroupName=group, Record=put)
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert churn_schema.event_time in raised.value.response["Error"]["Message"]
