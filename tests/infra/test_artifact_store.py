"""The artifact store: the stack key, the locked-down bucket and the content-addressed code upload."""

from __future__ import annotations

import json
import shutil

import pulumi
import pytest

from infra.artifact_store import (
    DATA_CAPTURE_PREFIX,
    EVENTBRIDGE_KEY_TAG,
    QUARANTINE_PREFIX,
    ArtifactStore,
    ArtifactStoreArgs,
    code_object_key,
    key_policy,
    lifecycle_rules,
    prefix_statements,
    schema_object_key,
    source_files,
    tls_only_bucket_policy,
    validate_bucket_name,
)
from model_code.contract.schema import EXAMPLE_SCHEMA
from tests.infra.harness import ACCOUNT, run

TAGS = {"project": "mlops-platform", "stack": "test", "owner": "ml-team"}
BUCKET = "customer-churn-test-123456789012"


@pytest.fixture
def code_dir(tmp_path):
    """A tiny package with an interpreter cache next to its sources."""
    pkg = tmp_path / "pkg"
    (pkg / "schemas").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text("def fit():\n    return 1\n")
    (pkg / "schemas" / "churn.yaml").write_text("name: churn\n")
    (pkg / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00machine-specific")
    return pkg


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The component declared once under mocks: (recorder, component, resolved outputs)."""
    pkg = tmp_path_factory.mktemp("code") / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text("def fit():\n    return 1\n")
    (pkg / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00")
    box = {}

    def program():
        store = ArtifactStore(
            "artifacts",
            ArtifactStoreArgs(bucket_name=BUCKET, tags=TAGS, code_paths=(str(pkg),)),
        )
        box["store"] = store
        return pulumi.Output.all(key_arn=store.key_arn, bucket_arn=store.bucket_arn).apply(box.update)

    rec = run(program)
    return rec, box["store"], box


def bucket_id(rec):
    return f"{rec.one('aws:s3/bucket:Bucket').name}-id"


# -- pure functions ----------------------------------------------------------------------------


def test_tls_policy_denies_plain_http_to_the_bucket_and_its_objects():
    arn = "arn:aws:s3:::b"
    [deny] = [s for s in tls_only_bucket_policy(arn)["Statement"] if s["Sid"] == "DenyInsecureTransport"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert deny["Resource"] == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_tls_policy_denies_tls_older_than_1_2():
    [deny] = [
        s for s in tls_only_bucket_policy("arn:aws:s3:::b")["Statement"] if s["Sid"] == "DenyTlsBelow12"
    ]
    assert deny["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}


def test_tls_policy_allows_nothing():
    assert {s["Effect"] for s in tls_only_bucket_policy("arn:aws:s3:::b")["Statement"]} == {"Deny"}


def test_key_policy_lets_only_this_account_administer_the_key():
    [admin] = [s for s in key_policy(ACCOUNT, "eu-west-1")["Statement"] if s["Action"] == "kms:*"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def test_no_service_uses_the_key_for_the_whole_account():
    # S3, SageMaker and SNS use the key with their callers' credentials: only CloudWatch Logs
    # (by its encryption context) and CloudWatch alarms (for the stack's alarms) act on their own.
    policy = key_policy(ACCOUNT, "eu-west-1", alarm_name_prefixes=("customer-churn-dev",))
    services = {
        svc
        for s in policy["Statement"]
        for svc in (
            [s["Principal"]["Service"]]
            if isinstance(s["Principal"].get("Service"), str)
            else s["Principal"].get("Service", [])
        )
    }
    assert services == {"logs.eu-west-1.amazonaws.com", "cloudwatch.amazonaws.com"}


def test_cloudwatch_may_use_the_key_only_for_the_stacks_alarms():
    # AWS SNS guide: an alarm publishing to a topic encrypted with a customer managed key needs
    # kms:Decrypt and kms:GenerateDataKey* for cloudwatch.amazonaws.com; CloudWatch supports the
    # aws:SourceAccount / aws:SourceArn conditions (the alarm's ARN).
    policy = key_policy(ACCOUNT, "eu-west-1", alarm_name_prefixes=("customer-churn-dev", "churn-endpoint"))
    [alarms] = [s for s in policy["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(alarms["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert alarms["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {
            "aws:SourceArn": [
                f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:churn-endpoint-*",
                f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:customer-churn-dev-*",
            ]
        },
    }
    assert not [
        s
        for s in key_policy(ACCOUNT, "eu-west-1")["Statement"]
        if "cloudwatch.amazonaws.com" in str(s["Principal"])
    ]


def test_key_policy_lets_cloudwatch_logs_encrypt_only_this_accounts_log_groups():
    [logs] = [
        s
        for s in key_policy(ACCOUNT, "eu-central-1")["Statement"]
        if s["Principal"] == {"Service": "logs.eu-central-1.amazonaws.com"}
    ]
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-central-1:{ACCOUNT}:log-group:*"}
    }


def test_lifecycle_expires_captured_traffic_and_quarantine_after_their_days():
    rules = {r["id"]: r for r in lifecycle_rules(30, 90, 30)}
    assert rules["expire-data-capture"]["filter"] == {"prefix": DATA_CAPTURE_PREFIX}
    assert rules["expire-data-capture"]["expiration"] == {"days": 30}
    assert rules["expire-quarantine"]["filter"] == {"prefix": QUARANTINE_PREFIX}
    assert rules["expire-quarantine"]["expiration"] == {"days": 90}


def test_lifecycle_prunes_noncurrent_versions_across_the_bucket():
    [rule] = [r for r in lifecycle_rules(30, 90, 14) if "noncurrent_version_expiration" in r]
    assert rule["filter"] == {"prefix": ""}
    assert rule["noncurrent_version_expiration"] == {"noncurrent_days": 14}


def test_lifecycle_rejects_a_retention_below_one_day():
    with pytest.raises(ValueError, match="quarantine_expiry_days: 0"):
        lifecycle_rules(30, 0, 30)


def test_bucket_name_must_be_lowercase():
    with pytest.raises(ValueError, match="Churn-Bucket"):
        validate_bucket_name("Churn-Bucket")


def test_code_key_is_the_same_for_the_same_code(code_dir, tmp_path):
    copy = shutil.copytree(code_dir, tmp_path / "copy" / "pkg")
    assert code_object_key([code_dir]) == code_object_key([copy])


def test_code_key_changes_when_a_source_file_changes(code_dir):
    before = code_object_key([code_dir])
    (code_dir / "train.py").write_text("def fit():\n    return 2\n")
    assert code_object_key([code_dir]) != before


def test_code_key_changes_when_a_file_is_renamed(code_dir):
    before = code_object_key([code_dir])
    (code_dir / "train.py").rename(code_dir / "fit.py")
    assert code_object_key([code_dir]) != before


def test_code_key_ignores_interpreter_caches(code_dir):
    before = code_object_key([code_dir])
    (code_dir / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"other machine")
    assert code_object_key([code_dir]) == before


def test_code_key_is_a_zip_under_code_with_16_hex_digits(code_dir):
    key = code_object_key([code_dir])
    assert key.startswith("code/model_code-") and key.endswith(".zip")
    assert len(key.removeprefix("code/model_code-").removesuffix(".zip")) == 16


def test_archive_names_files_under_their_package(code_dir):
    assert [name for name, _ in source_files([code_dir])] == [
        "pkg/__init__.py",
        "pkg/schemas/churn.yaml",
        "pkg/train.py",
    ]


def test_schema_key_changes_with_the_schema(tmp_path):
    schema = tmp_path / "churn.yaml"
    schema.write_text(EXAMPLE_SCHEMA.read_text())
    before = schema_object_key(schema)
    schema.write_text(EXAMPLE_SCHEMA.read_text() + "# edited\n")
    assert before.startswith("code/schemas/churn-") and schema_object_key(schema) != before


def test_prefix_statements_scope_objects_and_listing_to_the_prefix():
    objects, listing = prefix_statements("arn:aws:s3:::b", "mlflow/", write=True)
    assert objects["Resource"] == "arn:aws:s3:::b/mlflow/*"
    assert listing["Resource"] == "arn:aws:s3:::b"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["mlflow/", "mlflow/*"]}}


# -- the component -----------------------------------------------------------------------------


def test_bucket_has_its_explicit_name_and_is_kept_on_destroy(deployed):
    rec, _, _ = deployed
    bucket = rec.one("aws:s3/bucket:Bucket").inputs
    assert bucket["bucket"] == BUCKET
    assert bucket["forceDestroy"] is False


def test_bucket_is_encrypted_with_this_stacks_key(deployed):
    rec, _, outputs = deployed
    config = rec.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs
    [rule] = config["rules"]
    assert config["bucket"] == bucket_id(rec)
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": outputs["key_arn"],
    }
    assert rule["bucketKeyEnabled"] is True


def test_public_access_is_fully_blocked(deployed):
    rec, _, _ = deployed
    block = rec.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert block == {
        "bucket": bucket_id(rec),
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }


def test_bucket_policy_is_tls_only_for_this_bucket(deployed):
    rec, _, outputs = deployed
    policy = rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs
    assert policy["bucket"] == bucket_id(rec)
    assert json.loads(policy["policy"]) == tls_only_bucket_policy(outputs["bucket_arn"])


def test_bucket_is_versioned(deployed):
    rec, _, _ = deployed
    assert rec.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"
    }


def test_acls_are_disabled(deployed):
    rec, _, _ = deployed
    controls = rec.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert controls["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_lifecycle_rules_apply_to_the_bucket(deployed):
    rec, _, _ = deployed
    lifecycle = rec.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs
    prefixes = {r["id"]: r["filter"]["prefix"] for r in lifecycle["rules"]}
    assert lifecycle["bucket"] == bucket_id(rec)
    assert prefixes == {
        "expire-data-capture": "data-capture/",
        "expire-quarantine": "quarantine/",
        "prune-noncurrent-versions": "",
    }


def test_object_events_go_to_eventbridge(deployed):
    rec, _, _ = deployed
    assert rec.one("aws:s3/bucketNotification:BucketNotification").inputs == {
        "bucket": bucket_id(rec),
        "eventbridge": True,
    }


def test_key_rotates_and_a_deletion_can_be_cancelled_for_30_days(deployed):
    rec, _, _ = deployed
    key = rec.one("aws:kms/key:Key").inputs
    assert key["enableKeyRotation"] is True
    assert key["deletionWindowInDays"] == 30


def test_key_policy_is_built_for_the_deploying_account_and_region(deployed):
    rec, _, _ = deployed
    assert json.loads(rec.one("aws:kms/key:Key").inputs["policy"]) == key_policy(ACCOUNT, "eu-west-1")


def test_key_carries_the_standard_tags_and_the_tag_eventbridge_requires(deployed):
    rec, _, _ = deployed
    assert rec.one("aws:kms/key:Key").inputs["tags"] == {**TAGS, EVENTBRIDGE_KEY_TAG: "true"}


def test_key_has_an_alias_named_after_the_bucket(deployed):
    rec, _, _ = deployed
    assert rec.one("aws:kms/alias:Alias").inputs["name"] == f"alias/{BUCKET}"


def test_model_code_is_uploaded_under_its_content_key_with_the_stack_key(deployed):
    rec, store, outputs = deployed
    [code] = [
        o for o in rec.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if o.name == "artifacts-model-code"
    ]
    assert code.inputs["key"] == store.code_key
    assert code.inputs["bucket"] == bucket_id(rec)
    assert code.inputs["serverSideEncryption"] == "aws:kms"
    assert code.inputs["kmsKeyId"] == outputs["key_arn"]


def test_uploaded_archive_holds_the_sources_without_caches(deployed):
    rec, _, _ = deployed
    [code] = [
        o for o in rec.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if o.name == "artifacts-model-code"
    ]
    assert sorted(code.inputs["source"].assets) == ["pkg/__init__.py", "pkg/train.py"]


def test_schema_file_is_uploaded_next_to_the_code(deployed):
    rec, store, outputs = deployed
    [schema] = [o for o in rec.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if "schema" in o.name]
    assert store.schema_keys == {"customer-churn": schema_object_key(EXAMPLE_SCHEMA)}
    assert schema.inputs["key"] == store.schema_keys["customer-churn"]
    assert schema.inputs["kmsKeyId"] == outputs["key_arn"]


def test_every_taggable_resource_carries_the_standard_tags(deployed):
    rec, _, _ = deployed
    for token in ("aws:s3/bucket:Bucket", "aws:s3/bucketObjectv2:BucketObjectv2", "aws:kms/key:Key"):
        for resource in rec.of_type(token):
            assert TAGS.items() <= resource.inputs["tags"].items(), resource.name


def test_children_are_named_after_the_component(deployed):
    rec, _, _ = deployed
    assert all(r.name.startswith("artifacts") for r in rec.resources)
