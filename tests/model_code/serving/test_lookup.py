"""Online feature lookup at inference: a request carrying only the record identifier is scored
on the features the feature group's online store holds, through ``mlops serve`` on real HTTP and
the local cloud's feature store runtime (BatchGetRecord) on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from localcloud.behaviours import Clock, install
from model_code.ingestion.ingest import feature_definitions, to_records
from model_code.serving import inference
from model_code.serving.lookup import FEATURE_GROUP_VARIABLE, OnlineLookup
from tests.localcloud.behaviours.support import REGION, START

GROUP = "churn-online"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def store(churn_frame, churn_schema) -> Iterator[tuple[str, list[dict]]]:
    """The emulator with the feature store runtime, a feature group and five records put online;
    yields its URL and the records as JSON requests would carry them in full."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = "http://{}:{}".format(*server.get_host_and_port())
    behaviours = install(Clock(START), endpoint_url=url)
    try:
        boto3.client("s3", endpoint_url=url, region_name=REGION, **_keys()).create_bucket(
            Bucket="features", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        sagemaker = boto3.client("sagemaker", endpoint_url=url, region_name=REGION, **_keys())
        sagemaker.create_feature_group(
            FeatureGroupName=GROUP,
            RecordIdentifierFeatureName=churn_schema.entity_id,
            EventTimeFeatureName=churn_schema.event_time,
            FeatureDefinitions=feature_definitions(churn_schema),
            OnlineStoreConfig={"EnableOnlineStore": True},
            OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://features/offline"}},
            RoleArn="arn:aws:iam::123456789012:role/features",
        )
        runtime = boto3.client(
            "sagemaker-featurestore-runtime", endpoint_url=url, region_name=REGION, **_keys()
        )
        rows = churn_frame.head(5)
        for record in to_records(rows, churn_schema):
            runtime.put_record(FeatureGroupName=GROUP, Record=record)
        columns = [churn_schema.entity_id, *churn_schema.feature_names]
        full = json.loads(rows[columns].to_json(orient="records"))
        yield url, full
    finally:
        behaviours.uninstall()
        server.stop()


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def server(spawn, model_dir, store):
    url, _ = store
    env = {
        FEATURE_GROUP_VARIABLE: GROUP,
        "AWS_ENDPOINT_URL": url,
        "AWS_DEFAULT_REGION": REGION,
        **CREDENTIALS,
    }
    return spawn(model_dir, workers=1, env=env)


def invoke(srv, payload) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{srv.url}/invocations",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_request_with_only_the_identifier_scores_as_the_full_request(server, store, churn_schema):
    _, full = store
    ids = [{churn_schema.entity_id: r[churn_schema.entity_id]} for r in full]
    looked_up = invoke(server, {"instances": ids})
    given = invoke(server, {"instances": full})
    assert looked_up[0] == given[0] == 200
    assert looked_up[1]["predictions"] == given[1]["predictions"]


def test_a_feature_the_request_names_keeps_the_requests_value(server, store, churn_schema):
    _, full = store
    record = full[0]
    partial = {churn_schema.entity_id: record[churn_schema.entity_id], "tenure_months": 119}
    status, answer = invoke(server, partial)
    assert status == 200
    assert answer == invoke(server, {**record, "tenure_months": 119})[1]
    assert answer != invoke(server, record)[1]


def test_unknown_identifiers_are_refused_naming_them(server, store, churn_schema):
    _, full = store
    known = full[0][churn_schema.entity_id]
    instances = [{"customer_id": known}, {"customer_id": "C-nobody"}, {"customer_id": "C-gone"}]
    status, answer = invoke(server, {"instances": instances})
    assert status == 400
    assert (
        answer["error"] == f"customer_id: no record in the online store of {GROUP} for 'C-nobody', 'C-gone'"
    )


def test_a_record_leaving_features_out_without_its_identifier_is_refused_naming_it(server):
    status, answer = invoke(server, {"instances": [{"tenure_months": 3}, {"contract": "one-year"}]})
    assert status == 400
    assert answer["error"].startswith("instances[0].customer_id: missing; expected the record identifier")


def test_without_the_lookup_an_identifier_alone_is_a_missing_feature(churn_schema):
    body = json.dumps({"customer_id": "C0000001"})
    with pytest.raises(inference.BadRequest, match=r"^tenure_months: missing; expected"):
        inference.input_fn(body, "application/json", churn_schema)


def test_the_lookup_asks_only_for_the_schemas_features_a_hundred_identifiers_a_call(churn_schema):
    calls = []

    class Runtime:
        def batch_get_record(self, Identifiers):
            calls.append(Identifiers[0])
            ids = Identifiers[0]["RecordIdentifiersValueAsString"]
            return {"Records": [], "Errors": [], "UnprocessedIdentifiers": []} | {
                "Records": [{"RecordIdentifierValueAsString": i, "Record": []} for i in ids]
            }

    lookup = OnlineLookup(GROUP, churn_schema.feature_names, Runtime())
    found = lookup([f"C{i}" for i in range(250)] + ["C0"])
    assert len(found) == 250
    # BatchGetRecord takes at most 100 identifiers per group (its API reference); the label
    # the group also holds is never read at inference.
    assert [len(c["RecordIdentifiersValueAsString"]) for c in calls] == [100, 100, 50]
    assert all(c["FeatureNames"] == churn_schema.feature_names for c in calls)
    assert churn_schema.target.column not in calls[0]["FeatureNames"]
