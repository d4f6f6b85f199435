"""Security invariants over every resource of every stack, as `pulumi up` would declare them.

The invariants are the policy pack's (policies/, run in-process by ``localcloud.policy`` as the
CLI runs it with `--policy-pack`): every committed stack passes it, and a stack changed to
break one invariant is refused by that policy, naming the resource. Each committed stack runs
twice: as committed (a fresh platform, no model yet) and with a model package approved (so the
endpoint, its models and autoscaling are declared too); the bootstrap project too. What the
pack cannot know (that a key is *this stack's* key) is checked below it.
"""

from __future__ import annotations

import copy
import json

import pytest

from localcloud.policy import Declared, evaluate
from policies.invariants import POLICY_NAMES
from tests.infra.harness import Recorder, bootstrap_stack, committed_stack

CASES = [
    ("dev", False),
    ("dev", True),
    ("staging", False),
    ("staging", True),
    ("prod", False),
    ("prod", True),
]


def stack(name: str, with_model: bool) -> Recorder:
    return bootstrap_stack() if name == "bootstrap" else committed_stack(name, with_model)


def cases(bootstrap: bool = False):
    found = [*CASES, ("bootstrap", False)] if bootstrap else CASES
    return pytest.mark.parametrize(
        ("name", "with_model"), found, ids=[f"{n}-{'model' if m else 'fresh'}" for n, m in found]
    )


def stack_key_arn(rec: Recorder) -> str:
    return rec.one("aws:kms/key:Key").outputs["arn"]


def declared(rec: Recorder) -> list[Declared]:
    """What the program declared, as the pack is handed it (copies: cases change them)."""
    return [
        Declared(
            r.type,
            r.name,
            f"urn:pulumi:test::mlops-platform::{r.type}::{r.name}",
            copy.deepcopy(r.inputs),
            # The harness's mocks answer each resource with the id "<name>-id".
            {**copy.deepcopy(r.outputs), "id": f"{r.name}-id"},
        )
        for r in rec.resources
    ]


@cases(bootstrap=True)
def test_every_stack_passes_the_policy_pack(name, with_model):
    assert [str(v) for v in evaluate(declared(stack(name, with_model)), name)] == []


def _one(resources: list[Declared], type_: str, name_part: str = "") -> Declared:
    found = [r for r in resources if r.type == type_ and name_part in r.name]
    assert found, (type_, name_part)
    return found[0]


def _no_tls_policy(r: list[Declared]) -> str:
    policy = _one(r, "aws:s3/bucketPolicy:BucketPolicy")
    policy.inputs["policy"] = json.dumps({"Version": "2012-10-17", "Statement": []})
    return _one(r, "aws:s3/bucket:Bucket").name


def _public_policy_allowed(r: list[Declared]) -> str:
    _one(r, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs["blockPublicPolicy"] = False
    return _one(r, "aws:s3/bucket:Bucket").name


def _no_default_encryption(r: list[Declared]) -> str:
    r.remove(
        _one(r, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    )
    return _one(r, "aws:s3/bucket:Bucket").name


def _aws_managed_topic_key(r: list[Declared]) -> str:
    topic = _one(r, "aws:sns/topic:Topic")
    topic.inputs["kmsMasterKeyId"] = "alias/aws/sns"
    return topic.name


def _no_rotation(r: list[Declared]) -> str:
    key = _one(r, "aws:kms/key:Key")
    key.inputs["enableKeyRotation"] = False
    return key.name


def _service_wildcard_on_everything(r: list[Declared]) -> str:
    policy = _one(r, "aws:iam/rolePolicy:RolePolicy", "training")
    document = json.loads(policy.inputs["policy"])
    document["Statement"].append({"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"})
    policy.inputs["policy"] = json.dumps(document)
    return policy.name


def _logs_kept_forever(r: list[Declared]) -> str:
    group = _one(r, "aws:cloudwatch/logGroup:LogGroup")
    del group.inputs["retentionInDays"]
    return group.name


def _no_owner_tag(r: list[Declared]) -> str:
    bucket = _one(r, "aws:s3/bucket:Bucket")
    del bucket.inputs["tags"]["owner"]
    return bucket.name


def _unguarded_service_trust(r: list[Declared]) -> str:
    role = _one(r, "aws:iam/role:Role", "monitoring-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    for statement in trust["Statement"]:
        statement.pop("Condition", None)
    role.inputs["assumeRolePolicy"] = json.dumps(trust)
    return role.name


def _no_boundary(r: list[Declared]) -> str:
    role = _one(r, "aws:iam/role:Role", "endpoint-role")
    del role.inputs["permissionsBoundary"]
    return role.name


BREAKS = {
    "customer-managed-kms": _aws_managed_topic_key,
    "s3-default-encryption-kms": _no_default_encryption,
    "s3-public-access-blocked": _public_policy_allowed,
    "s3-tls-only": _no_tls_policy,
    "kms-key-rotation": _no_rotation,
    "iam-no-wildcard-on-wildcard": _service_wildcard_on_everything,
    "log-retention": _logs_kept_forever,
    "required-tags": _no_owner_tag,
    "service-trust-confused-deputy": _unguarded_service_trust,
    "role-permissions-boundary": _no_boundary,
}


def test_every_policy_of_the_pack_has_a_case_breaking_it():
    assert set(BREAKS) == set(POLICY_NAMES)


@pytest.mark.parametrize("policy", sorted(BREAKS))
def test_the_pack_refuses_a_stack_breaking_one_invariant_by_that_policys_name(policy):
    resources = declared(committed_stack("dev", True))
    broken = BREAKS[policy](resources)
    violations = evaluate(resources, "dev")
    assert {v.policy for v in violations} == {policy}
    assert all(v.resource_name == broken and broken in v.message for v in violations)


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
