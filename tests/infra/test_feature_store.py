"""The feature group derived from the data contract, its stores and its role."""

from __future__ import annotations

import json

import pulumi
import pytest

from infra.feature_store import (
    DEFAULT_EVENT_TIME,
    FeatureStore,
    FeatureStoreArgs,
    feature_definitions,
    glue_names,
    ingestion_role_policy,
)
from model_code.contract.schema import EXAMPLE_SCHEMA, load, parse
from tests.infra.harness import ACCOUNT, run

TAGS = {"project": "mlops-platform", "stack": "test", "owner": "ml-team"}
BUCKET = "customer-churn-test"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/stack-key"
FEATURE_STORE_TYPES = {"integral": "Integral", "fractional": "Fractional", "string": "String"}
# A second contract: a text label and no event time column.
LOANS = parse(
    {
        "name": "loan-default",
        "entity_id": "loan_id",
        "target": {"column": "status", "positive": "default", "negative": "repaid"},
        "features": [
            {"name": "amount", "type": "fractional", "min": 0},
            {"name": "term_months", "type": "integral"},
            {"name": "purpose", "type": "string"},
        ],
    }
)


def declare(schema, **extra):
    box = {}

    def program():
        store = FeatureStore(
            "features",
            FeatureStoreArgs(
                schema=schema, bucket_name=BUCKET, bucket_arn=BUCKET_ARN, kms_key_arn=KEY, tags=TAGS, **extra
            ),
        )
        box["store"] = store
        return pulumi.Output.all(role_arn=store.role_arn, offline_store_uri=store.offline_store_uri).apply(
            box.update
        )

    return run(program), box


@pytest.fixture(scope="module")
def churn():
    return load(EXAMPLE_SCHEMA)


@pytest.fixture(scope="module")
def deployed(churn):
    return declare(churn)


def group_of(rec):
    return rec.one("aws:sagemaker/featureGroup:FeatureGroup").inputs


def policy_statements(doc):
    return doc["Statement"]


# -- feature definitions -------------------------------------------------------------------------


def test_definitions_are_the_schemas_columns_in_order(churn):
    assert [d["feature_name"] for d in feature_definitions(churn)] == churn.columns


def test_definitions_type_each_feature_as_the_schema_declares(churn):
    types = {d["feature_name"]: d["feature_type"] for d in feature_definitions(churn)}
    assert {f.name: types[f.name] for f in churn.features} == {
        f.name: FEATURE_STORE_TYPES[f.type] for f in churn.features
    }


def test_record_id_and_event_time_are_strings(churn):
    types = {d["feature_name"]: d["feature_type"] for d in feature_definitions(churn)}
    assert types[churn.entity_id] == "String"
    assert types[churn.event_time] == "String"


def test_a_numeric_label_is_integral(churn):
    assert feature_definitions(churn)[-1] == {"feature_name": "churned", "feature_type": "Integral"}


def test_a_text_label_and_the_added_event_time_for_a_schema_without_one():
    assert feature_definitions(LOANS) == [
        {"feature_name": "loan_id", "feature_type": "String"},
        {"feature_name": DEFAULT_EVENT_TIME, "feature_type": "String"},
        {"feature_name": "amount", "feature_type": "Fractional"},
        {"feature_name": "term_months", "feature_type": "Integral"},
        {"feature_name": "purpose", "feature_type": "String"},
        {"feature_name": "status", "feature_type": "String"},
    ]


def test_a_fractional_positive_class_makes_a_fractional_label():
    raw = {**LOANS.source, "target": {"column": "status", "positive": 1.0}}
    assert feature_definitions(parse(raw))[-1] == {"feature_name": "status", "feature_type": "Fractional"}


def test_a_column_reserved_by_feature_store_is_refused():
    raw = {**LOANS.source, "features": [{"name": "write_time", "type": "string"}]}
    with pytest.raises(ValueError, match="'write_time' is reserved"):
        feature_definitions(parse(raw))


def test_a_column_feature_store_cannot_name_is_refused():
    raw = {**LOANS.source, "features": [{"name": "_internal", "type": "string"}]}
    with pytest.raises(ValueError, match="'_internal' is not a valid feature name"):
        feature_definitions(parse(raw))


def test_a_feature_named_like_the_added_event_time_is_refused():
    raw = {**LOANS.source, "features": [{"name": DEFAULT_EVENT_TIME, "type": "string"}]}
    with pytest.raises(ValueError, match="event time column"):
        feature_definitions(parse(raw))


# -- the role policy -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy():
    return ingestion_role_policy(
        bucket_arn=BUCKET_ARN,
        key_arn=KEY,
        feature_group_name="customer-churn",
        region="eu-west-1",
        account_id=ACCOUNT,
    )


def test_role_policy_has_no_wildcard_action_or_resource(policy):
    for statement in policy_statements(policy):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement
        assert "*" not in resources, statement


def test_role_reaches_only_the_feature_store_prefix_of_the_bucket(policy):
    s3 = [
        r
        for s in policy_statements(policy)
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        if r.startswith("arn:aws:s3")
    ]
    assert set(s3) == {BUCKET_ARN, f"{BUCKET_ARN}/feature-store/*"}


def test_role_neither_reads_nor_lists_the_offline_store(policy):
    # Feature Store only writes the offline store with this role (AmazonSageMakerFeatureStoreAccess:
    # PutObject, GetBucketAcl, PutObjectAcl); nothing reads it back as this role.
    actions = {a for s in policy_statements(policy) for a in s["Action"]}
    assert actions & {"s3:GetObject", "s3:ListBucket"} == set()
    assert actions & {"s3:PutObject", "s3:GetBucketAcl", "s3:PutObjectAcl"} == {
        "s3:PutObject",
        "s3:GetBucketAcl",
        "s3:PutObjectAcl",
    }


def test_role_uses_only_the_stack_key(policy):
    kms = [s for s in policy_statements(policy) if any(a.startswith("kms:") for a in s["Action"])]
    assert [s["Resource"] for s in kms] == [KEY]


def test_role_reaches_only_this_groups_glue_catalog_database_and_table(policy):
    database, table = glue_names("customer-churn")
    [glue] = [s for s in policy_statements(policy) if s["Action"][0].startswith("glue:")]
    assert glue["Resource"] == [
        f"arn:aws:glue:eu-west-1:{ACCOUNT}:catalog",
        f"arn:aws:glue:eu-west-1:{ACCOUNT}:database/{database}",
        f"arn:aws:glue:eu-west-1:{ACCOUNT}:table/{database}/{table}",
    ]


def test_role_holds_no_record_permission(policy):
    # Records are put by the ingestion pipeline's role; Feature Store never calls its own API.
    assert not [a for s in policy_statements(policy) for a in s["Action"] if a.startswith("sagemaker:")]


def test_glue_names_follow_athenas_rules():
    assert glue_names("customer-churn-prod") == (
        "customer_churn_prod_features",
        "customer_churn_prod_offline",
    )


# -- the component -------------------------------------------------------------------------------


def test_feature_group_is_named_and_keyed_by_the_schema(deployed, churn):
    rec, _ = deployed
    group = group_of(rec)
    assert group["featureGroupName"] == churn.name
    assert group["recordIdentifierFeatureName"] == churn.entity_id
    assert group["eventTimeFeatureName"] == churn.event_time


def test_feature_group_columns_equal_the_schemas(deployed, churn):
    rec, _ = deployed
    declared = [(d["featureName"], d["featureType"]) for d in group_of(rec)["featureDefinitions"]]
    assert declared == [(d["feature_name"], d["feature_type"]) for d in feature_definitions(churn)]


def test_online_store_is_encrypted_with_the_stack_key(deployed):
    rec, _ = deployed
    assert group_of(rec)["onlineStoreConfig"] == {
        "enableOnlineStore": True,
        "securityConfig": {"kmsKeyId": KEY},
    }


def test_offline_store_is_under_the_buckets_feature_store_prefix_with_the_stack_key(deployed):
    rec, box = deployed
    storage = group_of(rec)["offlineStoreConfig"]["s3StorageConfig"]
    assert storage == {"s3Uri": f"s3://{BUCKET}/feature-store/", "kmsKeyId": KEY}
    assert box["offline_store_uri"] == storage["s3Uri"]


def test_feature_store_creates_the_glue_table_in_the_components_database(deployed):
    rec, _ = deployed
    offline = group_of(rec)["offlineStoreConfig"]
    database = rec.one("aws:glue/catalogDatabase:CatalogDatabase").inputs["name"]
    assert offline["disableGlueTableCreation"] is False
    assert offline["dataCatalogConfig"] == {
        "catalog": "AwsDataCatalog",
        "database": database,
        "tableName": glue_names("customer-churn")[1],
    }


def test_feature_group_runs_as_the_role_sagemaker_assumes(deployed):
    rec, box = deployed
    role = rec.one("aws:iam/role:Role").inputs
    trust = json.loads(role["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "sagemaker.amazonaws.com"}]
    assert group_of(rec)["roleArn"] == box["role_arn"]


def test_role_policy_is_attached_to_the_role_for_this_stacks_bucket_and_key(deployed):
    rec, _ = deployed
    attached = rec.one("aws:iam/rolePolicy:RolePolicy").inputs
    assert attached["role"] == f"{rec.one('aws:iam/role:Role').name}-id"
    assert json.loads(attached["policy"]) == ingestion_role_policy(
        bucket_arn=BUCKET_ARN,
        key_arn=KEY,
        feature_group_name="customer-churn",
        region="eu-west-1",
        account_id=ACCOUNT,
    )


def test_every_taggable_resource_carries_the_standard_tags(deployed):
    rec, _ = deployed
    for token in (
        "aws:sagemaker/featureGroup:FeatureGroup",
        "aws:iam/role:Role",
        "aws:glue/catalogDatabase:CatalogDatabase",
    ):
        assert rec.one(token).inputs["tags"] == TAGS, token


def test_without_an_online_store_only_the_offline_store_is_kept():
    rec, _ = declare(LOANS, online=False)
    group = group_of(rec)
    assert group["onlineStoreConfig"] == {"enableOnlineStore": False}
    assert group["offlineStoreConfig"]["s3StorageConfig"]["kmsKeyId"] == KEY


def test_a_stack_can_name_its_own_feature_group():
    rec, box = declare(LOANS, feature_group_name="loan-default-dev")
    assert group_of(rec)["featureGroupName"] == "loan-default-dev"
    assert rec.one("aws:glue/catalogDatabase:CatalogDatabase").inputs["name"] == "loan_default_dev_features"
    assert box["store"].feature_group_name == "loan-default-dev"


def test_a_schema_without_event_time_uses_the_column_ingestion_adds():
    rec, _ = declare(LOANS)
    assert group_of(rec)["eventTimeFeatureName"] == DEFAULT_EVENT_TIME
