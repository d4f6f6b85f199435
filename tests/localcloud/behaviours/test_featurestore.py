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


def test_records_reach_the_offline_store_in_sagemakers_layout_at_the_next_clock_step(
    group, emulator, client, churn_frame, churn_schema
):
    runtime, s3, sm = client("sagemaker-featurestore-runtime"), client("s3"), client("sagemaker")
    put = records(churn_frame, churn_schema, 5)
    for record in put:
        runtime.put_record(FeatureGroupName=group, Record=record)
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
