"""Security invariants over every resource of every stack, as `pulumi up` would declare them.

Each committed stack runs twice: as committed (a fresh platform, no model yet) and with a
model package approved (so the endpoint, its models and autoscaling are declared too). The
invariants that apply to any program (buckets, keys, IAM, tags) cover the bootstrap project too.
"""

from __future__ import annotations

import importlib
import inspect
import json
from functools import cache

import pytest

from tests.infra.harness import Recorder, bootstrap_stack, committed_stack

CASES = [
    ("dev", False),
    ("dev", True),
    ("staging", False),
    ("staging", True),
    ("prod", False),
    ("prod", True),
]
# Actions AWS only grants on "*" (no resource-level permissions); each stays a single action.
WILDCARD_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "sagemaker:ListModelPackages",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:Search",
    "logs:CreateLogGroup",
    "logs:DescribeLogGroups",
    "logs:DescribeLogStreams",
    # The bootstrap's deploy roles: creating a key (only tagged for the role's stack, by
    # condition) and registering autoscaling have no resource to name beforehand.
    "kms:CreateKey",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DescribeScalingPolicies",
}


def stack(name: str, with_model: bool) -> Recorder:
    return bootstrap_stack() if name == "bootstrap" else committed_stack(name, with_model)


def cases(bootstrap: bool = False):
    found = [*CASES, ("bootstrap", False)] if bootstrap else CASES
    return pytest.mark.parametrize(
        ("name", "with_model"), found, ids=[f"{n}-{'model' if m else 'fresh'}" for n, m in found]
    )


def stack_key_arn(rec: Recorder) -> str:
    return rec.one("aws:kms/key:Key").outputs["arn"]


def policy_documents(rec: Recorder):
    """(resource name, document) for every IAM policy, inline or managed, and resource policies."""
    for r in rec.resources:
        raw = []
        if r.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
            raw.append(r.inputs.get("policy"))
        if r.type == "aws:iam/role:Role":
            raw += [p.get("policy") for p in r.inputs.get("inlinePolicies") or []]
        for doc in raw:
            if doc:
                yield r.name, json.loads(doc) if isinstance(doc, str) else doc


def statements(doc):
    found = doc.get("Statement", doc.get("statements", []))
    return [found] if isinstance(found, dict) else found


def as_list(value):
    return value if isinstance(value, list) else [value]


@cases(bootstrap=True)
def test_every_bucket_is_kms_encrypted_with_the_stack_key(name, with_model):
    rec = stack(name, with_model)
    key = stack_key_arn(rec)
    buckets = {f"{b.name}-id" for b in rec.of_type("aws:s3/bucket:Bucket")}
    encrypted = {
        e.inputs["bucket"]
        for e in rec.of_type(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        for rule in e.inputs["rules"]
        if rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        and rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key
    }
    assert buckets and buckets <= encrypted


@cases(bootstrap=True)
def test_every_bucket_blocks_public_access_and_requires_tls(name, with_model):
    rec = stack(name, with_model)
    buckets = {f"{b.name}-id" for b in rec.of_type("aws:s3/bucket:Bucket")}
    blocked = {
        p.inputs["bucket"]
        for p in rec.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        if all(
            p.inputs.get(k) is True
            for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
    }
    tls_only = set()
    for policy in rec.of_type("aws:s3/bucketPolicy:BucketPolicy"):
        doc = json.loads(policy.inputs["policy"])
        for s in statements(doc):
            if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get(
                "aws:SecureTransport"
            ) in ("false", False):
                tls_only.add(policy.inputs["bucket"])
    assert buckets <= blocked
    assert buckets <= tls_only


@cases(bootstrap=True)
def test_the_stack_key_rotates(name, with_model):
    assert stack(name, with_model).one("aws:kms/key:Key").inputs["enableKeyRotation"] is True


@cases(bootstrap=True)
def test_no_iam_policy_allows_a_wildcard_action_on_a_wildcard_resource(name, with_model):
    offenders = []
    for resource, doc in policy_documents(stack(name, with_model)):
        for s in statements(doc):
            if s.get("Effect") != "Allow":
                continue
            actions = as_list(s.get("Action", []))
            resources = as_list(s.get("Resource", []))
            if any(a == "*" or a.endswith(":*") for a in actions):
                offenders.append((resource, actions))
            if "*" in resources and not set(actions) <= WILDCARD_RESOURCE_ACTIONS:
                offenders.append((resource, actions, "on *"))
    assert offenders == []


@cases()
def test_feature_store_is_encrypted_online_and_offline(name, with_model):
    rec = stack(name, with_model)
    key = stack_key_arn(rec)
    group = rec.one("aws:sagemaker/featureGroup:FeatureGroup").inputs
    assert group["onlineStoreConfig"]["securityConfig"]["kmsKeyId"] == key
    assert group["offlineStoreConfig"]["s3StorageConfig"]["kmsKeyId"] == key


@cases()
def test_data_capture_sns_and_logs_are_encrypted(name, with_model):
    rec = stack(name, with_model)
    key = stack_key_arn(rec)
    for config in rec.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration"):
        capture = config.inputs.get("dataCaptureConfig")
        if capture:
            assert capture["kmsKeyId"] == key
        if not any("serverlessConfig" in v for v in config.inputs["productionVariants"]):
            assert config.inputs["kmsKeyArn"] == key
    topics = rec.of_type("aws:sns/topic:Topic")
    assert topics and all(t.inputs["kmsMasterKeyId"] == key for t in topics)
    for group in rec.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs["kmsKeyId"] == key, group.name
        assert group.inputs["retentionInDays"] > 0, group.name


@cache
def _taggable(token: str) -> bool:
    module, _, cls = token.split(":", 1)[1].partition("/")
    cls = token.rsplit(":", 1)[1]
    mod = importlib.import_module(f"pulumi_aws.{'lambda_' if module == 'lambda' else module}")
    return "tags" in inspect.signature(getattr(mod, cls)._internal_init).parameters


@cases(bootstrap=True)
def test_every_taggable_resource_carries_project_stack_and_owner(name, with_model):
    missing = []
    for r in stack(name, with_model).resources:
        if not r.type.startswith("aws:") or not _taggable(r.type):
            continue
        tags = r.inputs.get("tags") or {}
        if tags.get("project") != "mlops-platform" or tags.get("stack") != name or not tags.get("owner"):
            missing.append(f"{r.type} {r.name}")
    assert missing == []
