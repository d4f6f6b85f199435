"""parliament (duo-labs' IAM linter) over every policy document of every committed stack and the bootstrap.

Every identity policy, trust policy, key policy, bucket policy and topic policy the programs
declare for dev, staging, prod and local (each fresh and with a model deployed) and for
infra/bootstrap is analysed; no finding may appear other than the ones listed in ``ACCEPTED``,
each with why. The harness's mocks give resources placeholder ARNs, so each is first replaced
by the ARN AWS gives that resource (the shapes parliament checks actions' resources against).
"""

from __future__ import annotations

import json
from functools import cache

import parliament
import pytest

from tests.infra.harness import ACCOUNT, Recorder, bootstrap_stack, committed_stack

STACKS = [(s, m) for s in ("dev", "staging", "prod", "local") for m in (False, True)] + [("bootstrap", False)]
POLICY_TYPES = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/policy:Policy",
    "aws:iam/role:Role",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:kms/key:Key",
    "aws:sns/topicPolicy:TopicPolicy",
)

# (parliament issue, what it names) -> why it stays. Matched on the issue and a substring of
# its detail, so an accepted finding never hides another of the same kind.
ACCEPTED = {
    ("UNKNOWN_CONDITION_FOR_ACTION", "kms:ResourceAliases for action kms:Decrypt"): "kms:ResourceAliases "
    "is a condition key of the KMS key resource type, documented by AWS KMS for ABAC on cryptographic "
    "operations such as Decrypt (Developer Guide, 'Use aliases to control access to KMS keys'); "
    "parliament's data lists condition keys per action only",
    ("RESOURCE_STAR", "kms:"): "a key policy's Resource must be '*' (it means the key itself; "
    "AWS KMS refuses any other value); who may use the key is the principal and condition",
    ("MISMATCHED_TYPE", "ArnLike requires a value of type Arn"): "CloudWatch Logs' documented key "
    "policy conditions on kms:EncryptionContext:aws:logs:arn with ArnLike; the context value is "
    "a log group ARN, which parliament types as a string",
    ("UNKNOWN_CONDITION_FOR_ACTION", "kms:EncryptionContext:aws:logs:arn"): "CloudWatch Logs' "
    "documented statement grants kms:Describe* under the encryption-context condition; for the "
    "describe actions (no context) the statement never applies, which Logs does not need",
    ("MISMATCHED_TYPE", "s3:TlsVersion requires a value of type Numeric"): "IAM compares a "
    "numeric condition given as a JSON string ('1.2') as the number; the emulator's TLS tests rely "
    "on this exact document",
    ("UNKNOWN_CONDITION_FOR_ACTION", "s3:TlsVersion"): "the TLS-version deny covers every S3 "
    "action ('s3:*'); the few that carry no s3:TlsVersion are still denied without TLS by the "
    "aws:SecureTransport statement beside it",
    ("MALFORMED", "Statement contains neither Resource nor NotResource"): "a trust policy "
    "(assumeRolePolicy) names no Resource: the role it belongs to is its resource, and IAM refuses "
    "a Resource element there; parliament lints it as an identity policy",
    ("UNKNOWN_FEDERATION_SOURCE", ":oidc-provider/gitlab.com"): "GitLab's OIDC provider is this "
    "account's own identity provider (the bootstrap creates it); parliament knows only AWS's "
    "built-in federation sources",
    ("RESOURCE_MISMATCH", "s3:GetAccessGrant"): "the deploy role's verb wildcards (s3:Get*, "
    "s3:Put*, s3:List*) also expand to S3 Access Grants and other actions on resource types the "
    "program never creates; on the stack's bucket ARNs those expansions match nothing, so grant nothing",
    ("RESOURCE_MISMATCH", "sagemaker:CreateAction"): "the deploy role's sagemaker:Create*/Describe*/"
    "Delete*/Update*/List* expand to every SageMaker resource type; limited to ARNs named after "
    "the stack, they reach only what the stack creates",
    ("RESOURCE_MISMATCH", "sagemaker:CreateLineageGroupPolicy"): "a permissions boundary's "
    "sagemaker:* on this account's SageMaker ARNs is a ceiling, not a grant; the SageMaker actions "
    "AWS authorizes only on '*' that a role needs are listed on their own (Unscoped*)",
    ("RESOURCE_MISMATCH", "glue:DeleteDatabase"): "DeleteDatabase also authorizes on the database's "
    "user-defined functions; the program creates none",
    ("RESOURCE_MISMATCH", "sns:Unsubscribe"): "subscription ARNs are the topic's ARN plus an id "
    "(<topic>:<uuid>), which the stack's topic pattern <prefix>-* matches; parliament expects '*'",
    ("RESOURCE_MISMATCH", "kms:CreateAlias"): "CreateAlias/UpdateAlias/DeleteAlias authorize on "
    "both the alias and the key; the KeyAliases statement names the stack's aliases and "
    "ThisStacksKeys its keys (by the stack tag), so together they allow exactly those pairs",
    ("MISMATCHED_TYPE_BUT_USABLE", "StringEquals requires a value of type String but given Arn"): "IAM's "
    "own permissions-boundary examples compare iam:PermissionsBoundary to the policy ARN with "
    "StringEquals",
    ("RESOURCE_STAR", "application-autoscaling:"): "a scalable target's and scaling policy's ARNs "
    "are assigned by Application Auto Scaling at registration (a random id), so the deploy role "
    "cannot name them beforehand; the endpoint they scale is this stack's",
}

# Where each type's name lives in its inputs, and the ARN AWS gives it.
_ARNS = {
    "aws:s3/bucket:Bucket": ("bucket", "arn:aws:s3:::{name}"),
    "aws:iam/role:Role": ("name", "arn:aws:iam::{account}:role/{name}"),
    "aws:iam/policy:Policy": ("name", "arn:aws:iam::{account}:policy/{name}"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": (
        "url",
        "arn:aws:iam::{account}:oidc-provider/{name}",
    ),
    "aws:kms/key:Key": (None, "arn:aws:kms:{region}:{account}:key/{id}"),
    "aws:ecr/repository:Repository": ("name", "arn:aws:ecr:{region}:{account}:repository/{name}"),
    "aws:sns/topic:Topic": ("name", "arn:aws:sns:{region}:{account}:{name}"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "arn:aws:logs:{region}:{account}:log-group:{name}"),
    "aws:cloudwatch/eventRule:EventRule": ("name", "arn:aws:events:{region}:{account}:rule/{name}"),
    "aws:cloudwatch/eventApiDestination:EventApiDestination": (
        "name",
        "arn:aws:events:{region}:{account}:api-destination/{name}/{id}",
    ),
    "aws:lambda/function:Function": ("name", "arn:aws:lambda:{region}:{account}:function:{name}"),
    "aws:sagemaker/pipeline:Pipeline": (
        "pipelineName",
        "arn:aws:sagemaker:{region}:{account}:pipeline/{name}",
    ),
    "aws:sagemaker/featureGroup:FeatureGroup": (
        "featureGroupName",
        "arn:aws:sagemaker:{region}:{account}:feature-group/{name}",
    ),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": (
        "modelPackageGroupName",
        "arn:aws:sagemaker:{region}:{account}:model-package-group/{name}",
    ),
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": (
        "trackingServerName",
        "arn:aws:sagemaker:{region}:{account}:mlflow-tracking-server/{name}",
    ),
}


def stack(name: str, with_model: bool) -> Recorder:
    return bootstrap_stack() if name == "bootstrap" else committed_stack(name, with_model)


def aws_arns(rec: Recorder) -> dict[str, str]:
    """The mocks' placeholder ARN -> the ARN AWS gives that resource."""
    found = {}
    for r in rec.resources:
        if r.type in _ARNS and "arn" in r.outputs:
            key, pattern = _ARNS[r.type]
            name = str(r.inputs.get(key) or r.name).removeprefix("https://") if key else r.name
            if r.type.startswith("aws:sagemaker/"):
                name = name.lower()  # SageMaker lower-cases names in its ARNs
            found[r.outputs["arn"]] = pattern.format(
                name=name, account=ACCOUNT, region=rec.region, id=f"{r.name}-id"
            )
    return found


def documents(rec: Recorder):
    """(resource, field, JSON text) for every policy document the program declares."""
    arns = aws_arns(rec)
    for r in rec.resources:
        if r.type not in POLICY_TYPES:
            continue
        for field in ("policy", "assumeRolePolicy"):
            text = r.inputs.get(field)
            if not text:
                continue
            text = text if isinstance(text, str) else json.dumps(text)
            # Longest first: a placeholder may prefix another.
            for placeholder in sorted(arns, key=len, reverse=True):
                text = text.replace(placeholder, arns[placeholder])
            yield r, field, text


@cache
def findings(name: str, with_model: bool) -> tuple[tuple[str, str, str, str], ...]:
    found = []
    for resource, field, text in documents(stack(name, with_model)):
        for f in parliament.analyze_policy_string(text).findings:
            found.append((f"{resource.type} {resource.name}", field, f.issue, str(f.detail)))
    return tuple(found)


def accepted(issue: str, detail: str) -> bool:
    return any(issue == i and part in detail for i, part in ACCEPTED)


@pytest.mark.parametrize(
    ("name", "with_model"), STACKS, ids=[f"{n}-{'model' if m else 'fresh'}" for n, m in STACKS]
)
def test_parliament_finds_nothing_beyond_the_accepted(name, with_model):
    assert findings(name, with_model)  # the documents were analysed: the key policy always has findings
    unexpected = [f for f in findings(name, with_model) if not accepted(f[2], f[3])]
    assert unexpected == []


def test_every_accepted_finding_still_occurs_and_says_why():
    occurring = {
        (f[2], part)
        for n, m in STACKS
        for f in findings(n, m)
        for i, part in ACCEPTED
        if f[2] == i and part in f[3]
    }
    assert occurring == set(ACCEPTED)
    assert all(len(why) > 40 for why in ACCEPTED.values())


def test_parliament_reports_a_broken_document():
    # The linter is live: an action on a resource of the wrong kind is a finding.
    broken = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"}],
    }
    assert [f.issue for f in parliament.analyze_policy_string(json.dumps(broken)).findings] == [
        "RESOURCE_MISMATCH"
    ]
