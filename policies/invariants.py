"""The platform's security invariants, as CrossGuard policies (pulumi-policy), all mandatory.

The Pulumi CLI runs them on every preview and deploy (`--policy-pack policies`, see
``__main__.py``); the local engine (``localcloud.policy``) and the tests run the same
validation functions in-process over what the program declares. Each policy names what it
checks in ``description``; a violation names the resource and what is wrong with it.

Resource policies see one resource's inputs; stack policies see every resource (a bucket's
encryption, public access block and policy are resources of their own). Values the engine
cannot know during a preview raise the SDK's ``UnknownValueError``: the CLI reports those as
"can't run during preview", and the deploy's own preview checks them once known.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PACK_NAME = "mlops-platform-security"
PROJECT = "mlops-platform"
REQUIRED_TAGS = ("project", "stack", "owner")
BUCKET = "aws:s3/bucket:Bucket"
ROLE = "aws:iam/role:Role"
IDENTITY_POLICY_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")

# Actions AWS authorises only on "*" (no resource-level permissions in the Service
# Authorization Reference), or that this platform may grant on "*" only under a condition
# that scopes them (kms:CreateKey with the stack tag). An Allow on Resource "*" may hold only
# these; anything else names its resources.
UNSCOPED_ACTIONS = frozenset(
    {
        "ecr:GetAuthorizationToken",
        "cloudwatch:PutMetricData",
        "sagemaker:ListModelPackages",
        "sagemaker:ListPipelineExecutions",
        "sagemaker:Search",
        "logs:DescribeLogGroups",
        "kms:CreateKey",
        "kms:ListAliases",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DeleteScalingPolicy",
        "application-autoscaling:DescribeScalingPolicies",
    }
)

# Service principals whose confused-deputy guard AWS documents for the roles they assume,
# each with where: a role trusting one of them must condition on aws:SourceAccount or
# aws:SourceArn. Lambda is not listed: it documents no source keys for execution roles (its
# invocations are guarded on the function's resource policy, checked below).
CONFUSED_DEPUTY_KEYS = ("aws:SourceAccount", "aws:SourceArn")
DOCUMENTED_SOURCE_CONDITIONS = {
    "sagemaker.amazonaws.com": "SageMaker AI developer guide, 'Cross-service confused deputy prevention' "
    "(Pipelines, Processing and Training jobs, Inference)",
    "scheduler.amazonaws.com": "EventBridge Scheduler user guide, 'Cross-service confused deputy prevention'",
    "events.amazonaws.com": "EventBridge user guide, 'Cross-service confused deputy prevention'",
}

# AWS managed keys are named alias/aws/<service>: encryption the account cannot govern (no key
# policy of its own, no rotation or deletion control), so not a customer managed key.
_ALIAS_OF_AWS_MANAGED_KEY = "alias/aws/"


# -- reading inputs (the SDK hands Mapping/Sequence proxies, not dicts and lists) ---------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def _document(value: Any) -> Mapping[str, Any] | None:
    """A policy document given as JSON text or as an object; None if absent."""
    if value is None or value == "":
        return None
    return json.loads(value) if isinstance(value, str) else value


def statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not document:
        return []
    return _as_list(document.get("Statement"))


def _get(props: Mapping[str, Any], *path: str) -> Any:
    value: Any = props
    for key in path:
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = value[0] if len(value) else None
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def is_customer_managed_key(key: Any) -> bool:
    """A key id, ARN or alias of a customer managed key (not AWS's own ``alias/aws/...``)."""
    return isinstance(key, str) and bool(key.strip()) and _ALIAS_OF_AWS_MANAGED_KEY not in key


def identity_policies(resource_type: str, props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every identity-based policy document a resource declares (inline or managed)."""
    if resource_type in IDENTITY_POLICY_TYPES:
        document = _document(props.get("policy"))
        if document:
            yield document
    if resource_type == ROLE:
        for inline in _as_list(props.get("inlinePolicies")):
            document = _document(inline.get("policy"))
            if document:
                yield document


def trusted_services(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, Mapping):
        return []
    return [str(s) for s in _as_list(principal.get("Service"))]


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    """The condition keys a statement tests, whatever the operator (lower-cased, as IAM compares)."""
    found = set()
    for operands in (statement.get("Condition") or {}).values():
        found.update(str(k).lower() for k in operands)
    return found


# -- the checks, as plain functions returning messages (one per problem) ------------------------


def key_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """What a resource encrypts without a customer managed key."""

    def need(label: str, key: Any) -> list[str]:
        return [] if is_customer_managed_key(key) else [f"{label}: {key!r} is not a customer managed KMS key"]

    if resource_type == "aws:sns/topic:Topic":
        return need("kmsMasterKeyId", props.get("kmsMasterKeyId"))
    if resource_type == "aws:cloudwatch/logGroup:LogGroup":
        return need("kmsKeyId", props.get("kmsKeyId"))
    if resource_type == "aws:lambda/function:Function":
        return need("kmsKeyArn", props.get("kmsKeyArn"))
    if resource_type == "aws:scheduler/schedule:Schedule":
        return need("kmsKeyArn", props.get("kmsKeyArn"))
    if resource_type == "aws:cloudwatch/eventConnection:EventConnection":
        return need("kmsKeyIdentifier", props.get("kmsKeyIdentifier"))
    if resource_type == "aws:ecr/repository:Repository":
        config = _get(props, "encryptionConfigurations") or {}
        if _get(props, "encryptionConfigurations", "encryptionType") != "KMS":
            return [f"encryptionConfigurations: {dict(config)!r} is not KMS encryption"]
        return need("encryptionConfigurations.kmsKey", _get(props, "encryptionConfigurations", "kmsKey"))
    if resource_type == "aws:s3/bucketObjectv2:BucketObjectv2":
        if props.get("serverSideEncryption") != "aws:kms":
            return [f"serverSideEncryption: {props.get('serverSideEncryption')!r} is not aws:kms"]
        return need("kmsKeyId", props.get("kmsKeyId"))
    if resource_type == (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ):
        found = []
        for rule in _as_list(props.get("rules")):
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            if default.get("sseAlgorithm") != "aws:kms":
                found.append(f"rules.sseAlgorithm: {default.get('sseAlgorithm')!r} is not aws:kms")
            else:
                found += need("rules.kmsMasterKeyId", default.get("kmsMasterKeyId"))
        return found or ([] if _as_list(props.get("rules")) else ["rules: no default encryption rule"])
    if resource_type == "aws:sagemaker/endpointConfiguration:EndpointConfiguration":
        found = []
        # Serverless variants run on AWS-managed storage: SageMaker refuses a key for them.
        serverless = any(v.get("serverlessConfig") for v in _as_list(props.get("productionVariants")))
        if not serverless:
            found += need("kmsKeyArn", props.get("kmsKeyArn"))
        if props.get("dataCaptureConfig"):
            found += need("dataCaptureConfig.kmsKeyId", _get(props, "dataCaptureConfig", "kmsKeyId"))
        return found
    if resource_type == "aws:sagemaker/featureGroup:FeatureGroup":
        found = need(
            "offlineStoreConfig.s3StorageConfig.kmsKeyId",
            _get(props, "offlineStoreConfig", "s3StorageConfig", "kmsKeyId"),
        )
        if _get(props, "onlineStoreConfig", "enableOnlineStore"):
            found += need(
                "onlineStoreConfig.securityConfig.kmsKeyId",
                _get(props, "onlineStoreConfig", "securityConfig", "kmsKeyId"),
            )
        return found
    return []


def rotation_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type != "aws:kms/key:Key":
        return []
    return [] if props.get("enableKeyRotation") is True else ["enableKeyRotation: must be true"]


def _is_wildcard_action(action: str) -> bool:
    return action == "*" or action.endswith(":*")


def wildcard_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Allow statements granting every action of a service (or all) on every resource, and any
    other action on "*" that has resource-level permissions."""
    found = []
    for document in identity_policies(resource_type, props):
        for s in statements(document):
            if s.get("Effect") != "Allow" or "*" not in [str(r) for r in _as_list(s.get("Resource"))]:
                continue
            actions = [str(a) for a in _as_list(s.get("Action"))]
            sid = s.get("Sid", "(no Sid)")
            wild = [a for a in actions if _is_wildcard_action(a)]
            if wild:
                found.append(f"statement {sid}: actions {wild} on Resource '*'")
            scoped = sorted(set(actions) - UNSCOPED_ACTIONS - set(wild))
            if scoped:
                found.append(f"statement {sid}: {scoped} on Resource '*' (these take resource ARNs)")
    return found


def retention_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type != "aws:cloudwatch/logGroup:LogGroup":
        return []
    days = props.get("retentionInDays")
    return [] if isinstance(days, int | float) and days > 0 else [f"retentionInDays: {days!r}, expected > 0"]


@cache
def _taggable(resource_type: str) -> bool:
    """Whether the provider's resource takes ``tags`` (read from the pulumi-aws SDK itself)."""
    import importlib
    import inspect

    if not resource_type.startswith("aws:") or resource_type.count(":") != 2:
        return False
    module = resource_type.split(":")[1].split("/")[0]
    cls = resource_type.rsplit(":", 1)[1]
    try:
        mod = importlib.import_module(f"pulumi_aws.{'lambda_' if module == 'lambda' else module}")
        return "tags" in inspect.signature(getattr(mod, cls)._internal_init).parameters
    except (ImportError, AttributeError):
        return False


def tag_problems(resource_type: str, props: Mapping[str, Any], stack: str | None) -> list[str]:
    if not _taggable(resource_type):
        return []
    tags = props.get("tags") or {}
    found = [f"tags: no {k!r} tag" for k in REQUIRED_TAGS if not tags.get(k)]
    if tags.get("project") and tags["project"] != PROJECT:
        found.append(f"tags.project: {tags['project']!r}, expected {PROJECT!r}")
    if stack and tags.get("stack") and tags["stack"] != stack:
        found.append(f"tags.stack: {tags['stack']!r}, expected this stack's name {stack!r}")
    return found


def trust_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Service trusts without the confused-deputy condition their service documents, and
    Lambda invoke permissions for a service without the source they are for."""
    found = []
    if resource_type == ROLE:
        for s in statements(_document(props.get("assumeRolePolicy"))):
            if s.get("Effect") != "Allow":
                continue
            keys = condition_keys(s)
            for service in trusted_services(s):
                if service in DOCUMENTED_SOURCE_CONDITIONS and not keys & {
                    k.lower() for k in CONFUSED_DEPUTY_KEYS
                }:
                    found.append(
                        f"assumeRolePolicy: {service} may assume the role without an aws:SourceAccount "
                        f"or aws:SourceArn condition (documented in the "
                        f"{DOCUMENTED_SOURCE_CONDITIONS[service]})"
                    )
    if resource_type == "aws:lambda/permission:Permission":
        principal = str(props.get("principal") or "")
        if principal.endswith(".amazonaws.com") and not (
            props.get("sourceArn") and props.get("sourceAccount")
        ):
            found.append(f"{principal} may invoke the function without sourceArn and sourceAccount")
    return found


def boundary_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A role a service assumes (every role the deploy creates) carries a permissions boundary."""
    if resource_type != ROLE:
        return []
    services = [
        svc for s in statements(_document(props.get("assumeRolePolicy"))) for svc in trusted_services(s)
    ]
    boundary = props.get("permissionsBoundary")
    if services and not (isinstance(boundary, str) and ":policy/" in boundary):
        return [f"permissionsBoundary: {boundary!r}; a role for {sorted(set(services))} must carry one"]
    return []


# -- stack checks: a bucket's protections are resources of their own ----------------------------


def _refers_to(resource: Any, prop: str, bucket: Any) -> bool:
    """Whether ``resource.props[prop]`` names ``bucket``: by the engine's property dependency, or by
    value (the bucket's id or name)."""
    if bucket in (getattr(resource, "property_dependencies", None) or {}).get(prop, []):
        return True
    value = resource.props.get(prop)
    return value is not None and value in {bucket.props.get("id"), bucket.props.get("bucket")} - {None}


def bucket_problems(resources: Iterable[Any], check: str) -> list[tuple[Any, str]]:
    """(bucket, problem) for each bucket missing its public access block, TLS-only policy or
    customer-key default encryption (``check``: "public", "tls" or "kms")."""
    resources = list(resources)
    found = []
    for bucket in (r for r in resources if r.resource_type == BUCKET):
        mine = [r for r in resources if r is not bucket and _refers_to(r, "bucket", bucket)]
        if check == "public":
            flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
            blocks = [r for r in mine if r.resource_type.endswith(":BucketPublicAccessBlock")]
            if not any(all(b.props.get(f) is True for f in flags) for b in blocks):
                found.append((bucket, f"no public access block with all of {list(flags)} true"))
        elif check == "tls":
            policies = [r for r in mine if r.resource_type == "aws:s3/bucketPolicy:BucketPolicy"]
            if not any(denies_insecure_transport(_document(p.props.get("policy"))) for p in policies):
                found.append((bucket, "no bucket policy denying requests with aws:SecureTransport false"))
        elif check == "kms":
            configs = [
                r for r in mine if r.resource_type.endswith(":BucketServerSideEncryptionConfiguration")
            ]
            if not configs or any(key_problems(c.resource_type, c.props) for c in configs):
                found.append((bucket, "no default encryption with a customer managed KMS key"))
    return found


def denies_insecure_transport(document: Mapping[str, Any] | None) -> bool:
    for s in statements(document):
        secure = _get(s, "Condition", "Bool", "aws:SecureTransport")
        if (
            s.get("Effect") == "Deny"
            and str(secure).lower() == "false"
            and s.get("Principal") in ("*", {"AWS": "*"})
        ):
            return True
    return False


# -- the policies -------------------------------------------------------------------------------


def _stack_name() -> str | None:
    try:
        import pulumi

        return pulumi.get_stack() or None
    except Exception:  # outside a Pulumi program (the analyzer before it is configured)
        return None


def _resource_policy(name: str, description: str, problems) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for problem in problems(args.resource_type, args.props):
            report_violation(f"{args.resource_type} {args.name}: {problem}", None)

    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


def _bucket_policy(name: str, description: str, check: str) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for bucket, problem in bucket_problems(args.resources, check):
            report_violation(f"{bucket.resource_type} {bucket.name}: {problem}", bucket.urn)

    return StackValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


POLICIES = (
    _resource_policy(
        "customer-managed-kms",
        "Everything that stores data encrypts it with a customer managed KMS key.",
        key_problems,
    ),
    _bucket_policy(
        "s3-default-encryption-kms",
        "Every bucket encrypts by default with a customer managed KMS key.",
        "kms",
    ),
    _bucket_policy(
        "s3-public-access-blocked",
        "Every bucket blocks public ACLs and policies.",
        "public",
    ),
    _bucket_policy(
        "s3-tls-only",
        "Every bucket's policy denies requests not made over TLS.",
        "tls",
    ),
    _resource_policy(
        "kms-key-rotation",
        "Every KMS key rotates its material yearly.",
        rotation_problems,
    ),
    _resource_policy(
        "iam-no-wildcard-on-wildcard",
        "No IAM policy allows a wildcard action on every resource, or a resource-scoped action on '*'.",
        wildcard_problems,
    ),
    _resource_policy(
        "log-retention",
        "Every log group expires its events.",
        retention_problems,
    ),
    _resource_policy(
        "required-tags",
        "Every taggable resource carries the project, stack and owner tags.",
        lambda t, p: tag_problems(t, p, _stack_name()),
    ),
    _resource_policy(
        "service-trust-confused-deputy",
        "A service trust carries the confused-deputy condition (aws:SourceAccount / aws:SourceArn) "
        "its service documents.",
        trust_problems,
    ),
    _resource_policy(
        "role-permissions-boundary",
        "Every role a service assumes carries the stack's permissions boundary.",
        boundary_problems,
    ),
)
POLICY_NAMES = tuple(p.name for p in POLICIES)
