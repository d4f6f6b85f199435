"""Every request to the local cloud authorised as IAM would, before it is served.

moto serves any request whatever its credentials (its own check, off by default, reads only
identity policies and names no resource but S3's). Here each request is made as a principal
and judged by AWS's policy evaluation logic ("Policy evaluation logic", IAM User Guide):

1. **Who.** The access key of the request's signature: a key from ``sts:AssumeRole`` (or
   ``AssumeRoleWithWebIdentity``) in the emulator is that role's session, with the role's
   inline and attached policies and its permissions boundary; an IAM user's key is that user;
   any other key (the ``testing`` key tests and ``make local`` deploy with) is the account's
   administrator, the identity a person deploys with from a laptop.
2. **What, on which resource.** The action is the service's IAM prefix and the API
   operation (S3's operations mapped to the IAM actions AWS checks for them, e.g. ``HeadObject``
   to ``s3:GetObject``). The resource is built from IAM's own action and resource data (the
   Service Authorization Reference as parliament ships it: each action's resource type and
   its ARN template), filled from the request's parameters. A request whose resource cannot
   be named that way is judged on action and conditions only, and counted (``unresolved``).
3. **Which documents.** The caller's identity policies, its permissions boundary, and the
   resource's own policy: bucket policy, key policy, topic and queue policy, repository policy,
   a role's trust policy (for ``sts:AssumeRole*``).
4. **Decision.** An explicit deny anywhere wins. Otherwise allowed when an identity policy
   allows and the boundary allows too, or when the resource's policy names the caller (its
   role or session; naming the account only delegates to the caller's own policies). A KMS
   key's policy is required (the account naming in it is what lets IAM policies count); a
   role is assumed only if its trust policy allows the caller. Cross-account requests need
   both sides. Implicit ``iam:PassRole`` is checked where a request hands a role to a service.

A denied request fails as AWS fails it: ``AccessDenied`` (``AccessDeniedException`` for JSON
services) naming the principal, the action and the resource, and why. SageMaker, EventBridge,
Scheduler and CloudWatch act inside the emulator as their principals do on AWS (the execution
role, the target role, the service principal): the behaviours call :func:`authorise` for those
actions, which judges them the same way and fails the same way.

The ledger (:data:`LEDGER`) counts what was evaluated and denied and which actions each role
used: ``mlops local --json`` reports it under ``iam`` (served at ``/_mlops/iam``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from localcloud.emulator.iam_policy import ALLOW, DENY, Principal, as_list, evaluate, wildcard_match

log = logging.getLogger(__name__)
ACCOUNT = "123456789012"  # moto's default account, the emulator's
ADMINISTRATOR = Principal(arn=f"arn:aws:iam::{ACCOUNT}:root", account=ACCOUNT)
_ADMIN_POLICY = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

# The signing name of a request and the IAM prefix of its actions, where they differ.
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "execute-api"}
# S3 operations (as moto names them) and the IAM action AWS checks for each.
_S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListBuckets": "ListAllMyBuckets",
    "HeadObject": "GetObject",
    "DeleteObjects": "DeleteObject",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "GetBucketPolicyStatus": "GetBucketPolicyStatus",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "GetBucketOwnershipControls": "GetBucketOwnershipControls",
    "GetObjectAttributes": "GetObject",
}
# Parameters that hand a role to the service being called (the implicit iam:PassRole). STS's
# RoleArn is the role the caller assumes (sts:AssumeRole, the role's trust): nothing is passed.
_ROLE_PARAMETERS = ("RoleArn", "ExecutionRoleArn", "Role")
_PASSES_NO_ROLE = {"sts"}
_SERVICE_PRINCIPAL = {"lambda": "lambda.amazonaws.com", "scheduler": "scheduler.amazonaws.com"}


class AccessDenied(Exception):
    """A request IAM would refuse; ``str()`` is AWS's message for it."""

    def __init__(self, principal: Principal, action: str, resource: str | None, why: str):
        self.principal, self.action, self.resource, self.why = principal, action, resource, why
        on = f" on resource: {resource}" if resource else ""
        super().__init__(f"User: {principal.arn} is not authorized to perform: {action}{on} because {why}")


@dataclass
class Ledger:
    """What the emulator has authorised since it started (or was reset)."""

    evaluated: int = 0
    # Requests judged without a resource (its ARN not built from the request), by action.
    unresolved: Counter = field(default_factory=Counter)
    denied: list[dict[str, str]] = field(default_factory=list)
    used: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self, principal: Principal, action: str, resource: str | None, denial: AccessDenied | None
    ) -> None:
        with self.lock:
            self.evaluated += 1
            if resource is None:
                self.unresolved[action] += 1
            if denial is not None:
                self.denied.append(
                    {
                        "principal": principal.arn,
                        "action": action,
                        "resource": resource or "",
                        "why": denial.why,
                    }
                )
            elif principal.role_arn:
                self.used[principal.role_arn].add(action)

    def reset(self) -> None:
        with self.lock:
            self.evaluated = 0
            self.unresolved.clear()
            self.denied.clear()
            self.used.clear()

    def report(self) -> dict[str, Any]:
        """``{"evaluated", "unresolved", "denied", "unused"}``: unused per role of the account."""
        with self.lock:
            used = {role: set(actions) for role, actions in self.used.items()}
            report = {
                "evaluated": self.evaluated,
                "unresolved": dict(self.unresolved.most_common()),
                "denied": list(self.denied),
            }
        report["unused"] = unused_grants(used)
        return report


LEDGER = Ledger()
# On while an Emulator runs in this process (Emulator.start/stop): a bare moto server or moto's
# in-process mocks that other tests start in the same process stay as moto serves them.
ENABLED = False


# --- IAM's action and resource data --------------------------------------------------------


@lru_cache(maxsize=1)
def _iam_data() -> dict[str, dict[str, Any]]:
    """Per service prefix: its actions (lower-case name to privilege) and resource ARN templates."""
    # Located without importing parliament (its import warns about pkg_resources).
    text = (Path(find_spec("parliament").origin).parent / "iam_definition.json").read_text()
    data: dict[str, dict[str, Any]] = {}
    for service in json.loads(text):
        entry = data.setdefault(service["prefix"], {"actions": {}, "resources": {}})
        entry["actions"].update({p["privilege"].lower(): p for p in service["privileges"]})
        entry["resources"].update({r["resource"]: r["arn"] for r in service["resources"]})
    return data


def expand_action(pattern: str) -> list[str]:
    """The actions an ``Action`` entry (with wildcards) grants, by IAM's data."""
    prefix = pattern.partition(":")[0]
    services = [prefix] if "*" not in prefix and "?" not in prefix else list(_iam_data())
    out = []
    for service in services:
        for privilege in _iam_data().get(service, {}).get("actions", {}).values():
            candidate = f"{service}:{privilege['privilege']}"
            if wildcard_match(pattern, candidate, ignore_case=True):
                out.append(candidate)
    return out or [pattern]


def _privilege(action: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    prefix, _, name = action.partition(":")
    service = _iam_data().get(prefix)
    privilege = service and service["actions"].get(name.lower())
    return (service, privilege) if privilege else None


def resource_templates(action: str) -> tuple[list[str], bool]:
    """ARN templates of the resource types an action is authorised on (required ones first),
    and whether one is required (an action with none is authorised on ``*``)."""
    found = _privilege(action)
    if not found:
        return [], True
    service, privilege = found
    types = [t["resource_type"] for t in privilege["resource_types"] if t["resource_type"]]
    types.sort(key=lambda t: not t.endswith("*"))
    templates = [service["resources"][t.rstrip("*")] for t in types if t.rstrip("*") in service["resources"]]
    return templates, any(t.endswith("*") for t in types)


_VARIABLE = re.compile(r"\$\{(\w+)\}")


# A template variable a request may leave out, and the value AWS then uses.
_DEFAULTS = {"groupname": "default"}


def _parameter_for(variable: str, params: dict[str, str], last: bool) -> str | None:
    """The request parameter a template variable names (``params`` keys lower-case): the same
    name (``${ModelName}``; ``${UserNameWithPath}`` and ``UserName``); the name without its
    ``Name`` (``${RuleName}`` and ``Rule``); the longest ``...Name`` parameter it ends with
    (``${MlflowTrackingServerName}`` and ``TrackingServerName``); AWS's default for an omitted
    one (a schedule's group); and, for the resource's own name (the last variable), ``Name``."""
    name = variable.lower()
    for candidate in (name, name.removesuffix("withpath"), name.removesuffix("name")):
        if candidate in params:
            return params[candidate]
    endings = [p for p in params if p.endswith("name") and p != "name" and name.endswith(p)]
    if endings:
        return params[max(endings, key=len)]
    if name in _DEFAULTS:
        return _DEFAULTS[name]
    return params.get("name") if last else None


def resource_for(action: str, params: dict[str, str], region: str, account: str) -> str | None:
    """The ARN of a request's resource, from IAM's templates and the request's parameters.

    A parameter holding an ARN that fits a template is the resource itself (``TopicArn``,
    ``PipelineArn``, a ``KeyId`` given as an ARN); otherwise each ``${Variable}`` of the
    template is filled from its parameter. An action IAM authorises on no resource type, or
    only optionally, and whose template cannot be filled, is authorised on ``*``; None when a
    required resource cannot be named.
    """
    lowered = {k.lower(): v for k, v in params.items() if isinstance(v, str) and v}
    templates, required = resource_templates(action)
    for template in templates:
        fixed = (
            template.replace("${Partition}", "aws")
            .replace("${Region}", region)
            .replace("${Account}", account)
        )
        shape = _VARIABLE.sub("*", fixed)
        for value in lowered.values():
            if value.startswith("arn:") and wildcard_match(shape, value):
                return value
        variables = _VARIABLE.findall(fixed)
        values = [_parameter_for(v, lowered, i == len(variables) - 1) for i, v in enumerate(variables)]
        if all(v is not None and not v.startswith("arn:") for v in values):
            for variable, value in zip(variables, values, strict=True):
                fixed = fixed.replace(f"${{{variable}}}", value, 1)
            return fixed
    known = _privilege(action) is not None
    return "*" if known and not required else None


# --- Who: principals and their policies ------------------------------------------------------


def _iam_backend(account: str = ACCOUNT) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account]["aws"]


def _sts_backend(account: str = ACCOUNT) -> Any:
    from moto.sts.models import sts_backends

    return sts_backends[account]["aws"]


def _json(document: Any) -> dict[str, Any]:
    if isinstance(document, dict):
        return document
    text = unquote(document) if isinstance(document, str) and document.startswith("%7B") else document
    return json.loads(text)


def _managed(policy: Any) -> dict[str, Any]:
    version = next(v for v in policy.versions if v.is_default)
    return _json(version.document)


def role_policies(role_name: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A role's identity policies (inline and attached) and its permissions boundary (or None)."""
    backend = _iam_backend()
    role = backend.get_role(role_name)
    documents = [_json(d) for d in role.policies.values()]
    documents += [_managed(p) for p in role.managed_policies.values()]
    boundary = None
    if role.permissions_boundary_arn:
        try:
            boundary = _managed(backend.get_policy(role.permissions_boundary_arn))
        except Exception:  # a boundary naming no policy allows nothing, as on AWS
            boundary = {"Statement": []}
    return documents, boundary


def principal_for_key(access_key: str, token: str | None) -> Principal:
    """The principal an access key signs for (the administrator for keys the emulator never issued)."""
    for assumed in _sts_backend().assumed_roles:
        if assumed.access_key_id == access_key:
            if token != assumed.session_token:
                raise InvalidToken()
            role_arn = assumed.role_arn
            return Principal(arn=assumed.arn, account=assumed.account_id, role_arn=role_arn)
    if access_key.startswith("ASIA"):
        raise InvalidToken()
    for user in _iam_backend().users.values():
        if any(key.access_key_id == access_key for key in user.access_keys):
            return Principal(arn=user.arn, account=ACCOUNT)
    return ADMINISTRATOR


class InvalidToken(Exception):
    """Temporary credentials the emulator did not issue (or their token does not match)."""


def identity_documents(principal: Principal) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    if principal is ADMINISTRATOR or principal.is_account_root:
        return [_ADMIN_POLICY], None
    if principal.role_arn:
        try:
            return role_policies(principal.role_arn.rsplit("/", 1)[-1])
        except Exception:  # the role was deleted: its sessions can do nothing
            return [], None
    if principal.service or principal.federated:
        return [], None
    user = next((u for u in _iam_backend().users.values() if u.arn == principal.arn), None)
    if user is None:
        return [], None
    return [_json(d) for d in user.policies.values()] + [
        _managed(p) for p in user.managed_policies.values()
    ], None


# --- Which resource policy -------------------------------------------------------------------


def resource_policy(action: str, resource: str | None) -> tuple[str, dict[str, Any]] | None:
    """The resource's own policy (its kind and document), if the resource has one."""
    if not resource or not resource.startswith("arn:"):
        return None
    parts = resource.split(":", 5)
    service, region, account, rest = parts[2], parts[3], parts[4] or ACCOUNT, parts[5]
    try:
        if service == "s3":
            from moto.s3.models import s3_backends

            bucket = s3_backends[ACCOUNT]["aws"].buckets.get(rest.split("/", 1)[0])
            if bucket is not None and bucket.policy:
                return "bucket policy", _json(
                    bucket.policy.decode() if isinstance(bucket.policy, bytes) else bucket.policy
                )
        elif service == "kms" and rest.startswith("key/"):
            from moto.kms.models import kms_backends

            key = kms_backends[account][region].keys.get(rest[4:])
            if key is not None:
                return "key policy", _json(key.policy)
        elif service == "iam" and rest.startswith("role/") and action.lower().startswith("sts:assumerole"):
            role = _iam_backend(account).get_role_by_arn(resource)
            return "trust policy", _json(role.assume_role_policy_document)
        elif service == "sns":
            from moto.sns.models import sns_backends

            topic = sns_backends[account][region].topics.get(resource)
            if topic is not None:
                return "topic policy", topic._policy_json
        elif service == "sqs":
            from moto.sqs.models import sqs_backends

            queue = sqs_backends[account][region].queues.get(rest)
            if queue is not None and queue.policy:
                return "queue policy", _json(queue.policy)
        elif service == "ecr" and rest.startswith("repository/"):
            from moto.ecr.models import ecr_backends

            repository = ecr_backends[account][region].repositories.get(rest[len("repository/") :])
            if repository is not None and repository.policy:
                return "repository policy", _json(repository.policy)
    except Exception:  # the resource does not exist (yet): its service answers that
        return None
    return None


# --- The decision ----------------------------------------------------------------------------


def decide(principal: Principal, action: str, resource: str | None, context: dict[str, list[str]]) -> None:
    """Raise :class:`AccessDenied` when IAM would refuse the request (see the module docstring)."""
    tags = {f"aws:resourcetag/{k.lower()}": [v] for k, v in _resource_tags(resource).items()}
    context = {**_principal_context(principal), **tags, **{k.lower(): v for k, v in context.items()}}
    identity, boundary = identity_documents(principal)
    verdicts = [evaluate(d, action, resource, context) for d in identity]
    bounded = evaluate(boundary, action, resource, context) if boundary is not None else None
    found = resource_policy(action, resource)
    granted = evaluate(found[1], action, resource, context, principal) if found else None

    if found is None and action.lower().startswith("sts:assumerole") and ":role/" in (resource or ""):
        raise AccessDenied(principal, action, resource, "the role does not exist (no trust policy allows it)")
    if any(v.effect == DENY for v in verdicts):
        raise AccessDenied(principal, action, resource, "of an explicit deny in an identity-based policy")
    if granted is not None and granted.effect == DENY:
        raise AccessDenied(
            principal, action, resource, f"of an explicit deny in a resource-based policy ({found[0]})"
        )
    if bounded is not None and bounded.effect == DENY:
        raise AccessDenied(principal, action, resource, "of an explicit deny in a permissions boundary")

    identity_allows = any(v.effect == ALLOW for v in verdicts)
    boundary_allows = bounded is None or bounded.effect == ALLOW
    resource_account = _account_in(resource) or principal.account
    by = granted.matched_by if granted is not None and granted.effect == ALLOW else ""
    kind = found[0] if found else ""

    if kind in ("key policy", "trust policy"):
        # The key's (the role's) own policy decides; naming the account delegates to IAM policies.
        if by in ("session", "any", "service", "federated") or (by == "role" and boundary_allows):
            return
        if by == "account" and identity_allows and boundary_allows:
            return
        raise AccessDenied(principal, action, resource, _why(kind, identity_allows, boundary_allows, by))
    if resource_account != principal.account:
        if by and by != "account" and identity_allows and boundary_allows:
            return
        raise AccessDenied(principal, action, resource, "no resource-based policy allows it across accounts")
    if by in ("session", "any", "service", "federated") or (by == "role" and boundary_allows):
        return
    if identity_allows and boundary_allows:
        return
    raise AccessDenied(principal, action, resource, _why("", identity_allows, boundary_allows, by))


def _why(kind: str, identity_allows: bool, boundary_allows: bool, by: str) -> str:
    if identity_allows and not boundary_allows:
        return "no permissions boundary allows it"
    if kind and not by:
        return f"no statement of the {kind} allows it"
    return "no identity-based policy allows it"


def _account_in(resource: str | None) -> str | None:
    if resource and resource.startswith("arn:"):
        account = resource.split(":", 5)[4]
        return account or None
    return None


def _principal_context(principal: Principal) -> dict[str, list[str]]:
    context = {
        "aws:securetransport": ["true"],  # the emulator stands for AWS's TLS endpoints
        "s3:tlsversion": ["1.3"],
        "aws:principalaccount": [principal.account],
    }
    if not principal.service:
        context["aws:principalarn"] = [principal.role_arn or principal.arn]
    return context


def authorise(
    principal: Principal, action: str, resource: str | None, context: dict[str, list[str]] | None = None
) -> None:
    """Judge one request and record it in the ledger; raise :class:`AccessDenied` if refused."""
    if not ENABLED:
        return
    if action == "sts:GetCallerIdentity":
        return  # "No permissions are required to perform this operation" (STS API reference)
    try:
        decide(principal, action, resource, context or {})
    except AccessDenied as denial:
        LEDGER.record(principal, action, resource, denial)
        log.warning("denied: %s", denial)
        raise
    LEDGER.record(principal, action, resource, None)


def role_principal(role_arn: str, session: str = "emulator") -> Principal:
    """The session principal a service acts as when it uses a role (for the behaviours)."""
    name = role_arn.rsplit("/", 1)[-1]
    account = role_arn.split(":")[4] or ACCOUNT
    return Principal(
        arn=f"arn:aws:sts::{account}:assumed-role/{name}/{session}", account=account, role_arn=role_arn
    )


def service_principal(service: str) -> Principal:
    return Principal(arn=service, account=ACCOUNT, service=service)


def _source(source_arn: str) -> dict[str, list[str]]:
    """The confused-deputy keys a service supplies when it acts for a resource of the account."""
    return {"aws:sourceaccount": [ACCOUNT], "aws:sourcearn": [source_arn]}


def act_as_role(role_arn: str, service: str, source_arn: str, action: str, resource: str) -> None:
    """A service using a role for a resource (an EventBridge rule's target role, a schedule's):
    the service assumes the role (its trust policy, with aws:SourceArn and aws:SourceAccount),
    then the action is authorised as the role's session."""
    authorise(service_principal(service), "sts:AssumeRole", role_arn, _source(source_arn))
    authorise(role_principal(role_arn, service.split(".")[0]), action, resource)


def act_as_service(service: str, source_arn: str, action: str, resource: str) -> None:
    """A service acting as itself (EventBridge or CloudWatch publishing to a topic): allowed only
    by the resource's policy, which names the service with the confused-deputy conditions."""
    authorise(service_principal(service), action, resource, _source(source_arn))


def service_credentials(role_arn: str, service: str, source_arn: str | None = None) -> dict[str, str]:
    """Temporary credentials of ``role_arn`` as ``service`` obtains them (``sts:AssumeRole``).

    The role's trust policy is evaluated for the service principal, with ``aws:SourceAccount``
    and ``aws:SourceArn`` as the service supplies them (the confused-deputy conditions), so a
    role the service may not assume fails here as it does on AWS. Returns boto3's keyword
    arguments (``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``).
    """
    context = _source(source_arn) if source_arn else {"aws:sourceaccount": [ACCOUNT]}
    authorise(service_principal(service), "sts:AssumeRole", role_arn, context)
    region = source_arn.split(":")[3] if source_arn else "us-east-1"
    session = _sts_backend().assume_role(
        region_name=region or "us-east-1",
        role_session_name=service.split(".")[0],
        role_arn=role_arn,
        policy="",
        duration=43200,
        external_id="",
    )
    return {
        "aws_access_key_id": session.access_key_id,
        "aws_secret_access_key": session.secret_access_key,
        "aws_session_token": session.session_token,
    }


def unused_grants(used: dict[str, set[str]]) -> dict[str, list[str]]:
    """Per role of the account: the actions its policies grant that no request of it used."""
    report: dict[str, list[str]] = {}
    for role in list(_iam_backend().roles.values()):
        if role.arn.startswith(f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/"):
            continue
        try:
            documents, _ = role_policies(role.name)
        except Exception:
            continue
        granted = set()
        for document in documents:
            for statement in as_list(document.get("Statement")):
                if statement.get("Effect") == ALLOW:
                    for pattern in as_list(statement.get("Action")):
                        granted.update(expand_action(pattern))
        used_here = used.get(role.arn, set())
        unused = sorted(a for a in granted if not any(a.lower() == u.lower() for u in used_here))
        if unused:
            report[role.arn] = unused
    return report


# --- What S3 asks of KMS for the caller ------------------------------------------------------


def _object_key(bucket_name: str, key: str | None, write: bool) -> str | None:
    """The KMS key S3 uses for an object: the object's own (reads), else the bucket's default."""
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["aws"]
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        return None
    if not write and key:
        try:
            found = backend.get_object(bucket_name, key)
        except Exception:
            found = None
        if found is not None and found.encryption == "aws:kms":
            return found.kms_key_id
        if found is not None:
            return None
    rules = ((bucket.encryption or {}).get("Rule") or {}) if isinstance(bucket.encryption, dict) else {}
    default = rules.get("ApplyServerSideEncryptionByDefault") or {}
    return default.get("KMSMasterKeyID") if default.get("SSEAlgorithm") == "aws:kms" else None


def authorise_via_s3(
    principal: Principal, action: str, resource: str, region: str, key_id: str | None = None
) -> None:
    """The KMS call S3 makes on the caller's behalf for an SSE-KMS object: ``kms:Decrypt`` to
    read it, ``kms:GenerateDataKey`` to write it, with ``kms:ViaService`` naming S3 (what the
    stack's grants and key policies condition on)."""
    if action not in ("s3:GetObject", "s3:PutObject"):
        return
    bucket, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
    write = action == "s3:PutObject"
    key_id = key_id or _object_key(bucket, key, write)
    key_arn = key_id and kms_key_arn(key_id, region)
    if key_arn:
        authorise(
            principal,
            "kms:GenerateDataKey" if write else "kms:Decrypt",
            key_arn,
            {
                "kms:viaservice": [f"s3.{region}.amazonaws.com"],
                "kms:calleraccount": [principal.account],
                **key_context(key_arn, region),
            },
        )


def authorise_model_read(role_arn: str, uri: str, region: str) -> None:
    """SageMaker reading a model artifact as the model's execution role (``CreateModel``'s role)."""
    principal = role_principal(role_arn, "SageMaker")
    resource = "arn:aws:s3:::" + uri.removeprefix("s3://")
    authorise(principal, "s3:GetObject", resource)
    authorise_via_s3(principal, "s3:GetObject", resource, region)


# --- The request hook: moto's authorisation step, replaced ------------------------------------


def _json_body(response: Any) -> dict[str, Any]:
    """The request's JSON body (JSON and REST-JSON services), or {}."""
    body = getattr(response, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not (isinstance(body, str) and body.lstrip().startswith("{")):
        return {}
    try:
        decoded = json.loads(body)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _params(response: Any, body: dict[str, Any]) -> dict[str, str]:
    """The request's scalar parameters: query string, JSON body and URI path, by name."""
    params: dict[str, str] = {}
    for key, values in (getattr(response, "querystring", None) or {}).items():
        if values:
            params[key] = values[0] if isinstance(values, list) else values
    params.update({k: v for k, v in body.items() if isinstance(v, str)})
    params.update(
        {k: unquote(v) for k, v in (getattr(response, "uri_match", None) or {}).items() if isinstance(v, str)}
    )
    return params


def _request_context(
    response: Any, body: dict[str, Any], params: dict[str, str], action: str
) -> dict[str, list[str]]:
    context: dict[str, list[str]] = {"aws:requestedregion": [response.region]}
    if "Namespace" in params:
        context["cloudwatch:namespace"] = [params["Namespace"]]
    if action == "s3:ListBucket":
        query = parse_qs(urlparse(response.uri).query)
        context["s3:prefix"] = query.get("prefix", [])
    encryption = response.headers.get("x-amz-server-side-encryption")
    if encryption:
        context["s3:x-amz-server-side-encryption"] = [encryption]
    if action.startswith("kms:CreateGrant"):
        context["kms:grantisforawsresource"] = ["false"]
    tags = _request_tags(response, body)
    for key, value in tags.items():
        context[f"aws:requesttag/{key.lower()}"] = [value]
    if tags:
        context["aws:tagkeys"] = list(tags)
    if action.startswith("iam:") and "PermissionsBoundary" in params:
        context["iam:permissionsboundary"] = [params["PermissionsBoundary"]]
    elif action.startswith("iam:") and "RoleName" in params:
        boundary = _role_boundary(params["RoleName"])
        if boundary:
            context["iam:permissionsboundary"] = [boundary]
    return context


def _request_tags(response: Any, body: dict[str, Any]) -> dict[str, str]:
    """The tags a request sets: a JSON ``Tags`` list, or the query protocol's ``Tags.member.N``."""
    tags: dict[str, str] = {}
    for tag in body.get("Tags", []) if isinstance(body.get("Tags"), list) else []:
        if isinstance(tag, dict):
            key = tag.get("Key", tag.get("TagKey"))
            if key is not None:
                tags[key] = tag.get("Value", tag.get("TagValue", ""))
    query = getattr(response, "querystring", None) or {}
    for name, values in query.items():
        found = re.fullmatch(r"Tags\.member\.(\d+)\.Key", name)
        if found:
            tags[values[0]] = (query.get(f"Tags.member.{found.group(1)}.Value") or [""])[0]
    return tags


def _role_boundary(role_name: str) -> str | None:
    try:
        return _iam_backend().get_role(role_name).permissions_boundary_arn
    except Exception:
        return None


def _resource_tags(resource: str | None) -> dict[str, str]:
    if not resource or not resource.startswith("arn:"):
        return {}
    _, _, service, region, account, rest = resource.split(":", 5)
    try:
        if service == "kms" and rest.startswith("key/"):
            from moto.kms.models import kms_backends

            tags = kms_backends[account or ACCOUNT][region].list_resource_tags(rest[4:])["Tags"]
            return {t["TagKey"]: t["TagValue"] for t in tags}
        if service == "iam" and rest.startswith("role/"):
            role = _iam_backend().get_role_by_arn(resource)
            return {k: v["Value"] for k, v in role.tags.items()}
        if service == "sagemaker":
            from moto.sagemaker.models import sagemaker_backends

            tags = sagemaker_backends[account or ACCOUNT][region].list_tags(resource)
            return {t["Key"]: t["Value"] for t in tags}
    except Exception:
        return {}
    return {}


def key_context(key_arn: str, region: str) -> dict[str, list[str]]:
    """``kms:ResourceAliases``: the aliases of the key a request uses (IAM sets it for every
    request on a key, so a grant may name a key by its alias when its id is not known)."""
    from moto.kms.models import kms_backends

    key_id = key_arn.rsplit("/", 1)[-1]
    return {"kms:resourcealiases": [a.alias_name for a in kms_backends[ACCOUNT][region].list_aliases(key_id)]}


def kms_key_arn(value: str, region: str) -> str | None:
    """A ``KeyId`` (id, ARN, alias name or alias ARN) as the key's ARN: IAM authorises on the key."""
    from moto.kms.models import kms_backends

    backend = kms_backends[ACCOUNT][region]
    try:
        key_id = (
            backend.get_key_id(value) if not value.startswith("alias/") and ":alias/" not in value else None
        )
        if key_id is None:
            key_id = backend.get_key_id_from_alias(
                value.split(":", 5)[-1] if value.startswith("arn:") else value
            )
        return f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}" if key_id else None
    except Exception:
        return None


def _iam_action(response: Any, service: str, s3_resource: str | None) -> str:
    name = response._get_action()
    if isinstance(name, list):
        name = name[0]
    if service == "s3":
        name = (
            response.data.get("Action", name) if isinstance(getattr(response, "data", None), dict) else name
        )
        name = _S3_ACTIONS.get(name, name)
        if s3_resource and s3_resource.endswith(":::*") and name == "ListBucket":
            name = "ListAllMyBuckets"
    return f"{_IAM_PREFIX.get(service, service)}:{name}"


def _authorise_request(response: Any, iam_request_cls: type, resource: str = "*") -> None:
    """moto's authorisation step for every request it serves (installed by :func:`install`)."""
    if not ENABLED:
        return
    from moto.core.exceptions import AccessDeniedError, InvalidClientTokenIdError, JsonRESTError

    body = _json_body(response)
    if response._get_action() == "AssumeRoleWithWebIdentity":
        return _authorise_web_identity(_params(response, body), response.region)
    signed = _signature(response.headers)
    if signed is None:
        return  # unsigned (moto's own API, presigned URLs): served as moto serves them
    access_key, region, service = signed
    try:
        principal = principal_for_key(access_key, response.headers.get("X-Amz-Security-Token"))
    except InvalidToken:
        raise InvalidClientTokenIdError() from None
    is_s3 = service == "s3"
    action = _iam_action(response, service, resource if is_s3 else None)
    params = _params(response, body)
    if is_s3:
        target = None if resource in (None, "*") else resource
    else:
        target = resource_for(action, params, region, ACCOUNT)
        if action.startswith("kms:") and "KeyId" in params:
            target = kms_key_arn(params["KeyId"], region) or target
        if action.startswith("sqs:") and "QueueUrl" in params:
            target = f"arn:aws:sqs:{region}:{ACCOUNT}:{params['QueueUrl'].rstrip('/').rsplit('/', 1)[-1]}"
    context = _request_context(response, body, params, action)
    if action.startswith("kms:") and target and ":key/" in target:
        context.update(key_context(target, region))
    try:
        authorise(principal, action, target, context)
        if is_s3 and target:
            key_id = response.headers.get("x-amz-server-side-encryption-aws-kms-key-id")
            authorise_via_s3(principal, action, target, region, key_id)
        for name in _ROLE_PARAMETERS if service not in _PASSES_NO_ROLE else ():
            role = params.get(name)
            if role and role.startswith("arn:aws:iam::") and ":role/" in role:
                passed_to = _SERVICE_PRINCIPAL.get(
                    service, f"{_IAM_PREFIX.get(service, service)}.amazonaws.com"
                )
                authorise(principal, "iam:PassRole", role, {"iam:passedtoservice": [passed_to]})
    except AccessDenied as denial:
        if is_s3:
            from moto.s3.exceptions import S3ClientError

            raise S3ClientError("AccessDenied", str(denial)) from None
        if _speaks_json(response):
            raise JsonRESTError("AccessDeniedException", str(denial)) from None
        error = AccessDeniedError(user_arn=principal.arn, action=action)
        error.description = error.description.replace(
            f"User: {principal.arn} is not authorized to perform: {action}", str(denial)
        )
        raise error from None


# Services whose REST-JSON protocol answers errors in JSON whatever the request's content type.
_REST_JSON = {"awslambda", "scheduler"}


def _speaks_json(response: Any) -> bool:
    """JSON and REST-JSON services answer errors in JSON (``AccessDeniedException``)."""
    content_type = response.headers.get("Content-Type") or ""
    service = getattr(response, "service_name", "")
    return bool(response.headers.get("X-Amz-Target")) or "json" in content_type or service in _REST_JSON


def _signature(headers: Any) -> tuple[str, str, str] | None:
    """(access key, region, service) of a SigV4 ``Authorization`` header, or None (unsigned)."""
    found = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/", headers.get("Authorization") or "")
    return found.groups() if found else None


def authorise_signed(headers: Any, action: str, resource: str) -> None:
    """Authorise a request the behaviours serve themselves (the feature store runtime), from its
    signature's access key; raise :class:`AccessDenied` (or InvalidToken) as for moto's."""
    signed = _signature(headers)
    if signed is None or not ENABLED:
        return
    principal = principal_for_key(signed[0], headers.get("X-Amz-Security-Token"))
    authorise(principal, action, resource)


def _web_identity_error(code: str, message: str, status: int = 400) -> Exception:
    """STS's error (query protocol, XML) for a refused AssumeRoleWithWebIdentity."""
    from moto.core.exceptions import _RESTError

    error = _RESTError(code, message)
    error.code = status
    return error


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (its payload), or ValueError when it is not one."""
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    claims = json.loads(base64.urlsafe_b64decode(payload))
    if not isinstance(claims, dict):
        raise ValueError("its payload is not a JSON object")
    return claims


def _authorise_web_identity(params: dict[str, str], region: str) -> None:
    """``sts:AssumeRoleWithWebIdentity`` as STS decides it (unsigned: the token is the credential).

    The token's issuer must be an OpenID Connect provider of the account whose client ids
    include the token's ``aud``, and it must not have expired; then the role's trust policy is
    evaluated for that provider (``Federated``) with the keys IAM derives from the token:
    ``<issuer host/path>:sub`` and ``:aud`` (and ``:amr``). The token's signature is not
    verified (the emulator has no route to the issuer's JWKS); its claims are what is judged.
    """
    import time as time_module

    role_arn = params.get("RoleArn", "")
    try:
        claims = token_claims(params.get("WebIdentityToken", ""))
    except ValueError as error:
        raise _web_identity_error(
            "InvalidIdentityToken", f"Couldn't parse the web identity token: {error}"
        ) from None
    issuer = str(claims.get("iss", ""))
    host = issuer.removeprefix("https://").rstrip("/")
    provider = next((p for p in _iam_backend().open_id_providers.values() if p.url.rstrip("/") == host), None)
    if provider is None:
        raise _web_identity_error(
            "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}"
        )
    audiences = as_list(claims.get("aud"))
    if not any(a in provider.client_id_list for a in audiences):
        raise _web_identity_error("InvalidIdentityToken", "Incorrect token audience")
    if isinstance(claims.get("exp"), int | float) and claims["exp"] < time_module.time():
        raise _web_identity_error(
            "ExpiredTokenException", "Token expired: current date/time is after the token's exp"
        )
    provider_arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"
    principal = Principal(arn=provider_arn, account=ACCOUNT, federated=provider_arn)
    context = {f"{host}:sub": [str(claims.get("sub", ""))], f"{host}:aud": [str(a) for a in audiences]}
    if "amr" in claims:
        context[f"{host}:amr"] = [str(a) for a in as_list(claims["amr"])]
    try:
        authorise(principal, "sts:AssumeRoleWithWebIdentity", role_arn, context)
    except AccessDenied:
        raise _web_identity_error(
            "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
        ) from None


def install() -> None:
    from moto.core.authorization import ActionAuthenticatorMixin

    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorise_request


def reset() -> None:
    LEDGER.reset()
