"""Bucket policies evaluated with the request context the emulator supplies.

moto applies a bucket policy to object reads and writes but evaluates only ``StringEquals``
conditions and treats every other operator as satisfied, so a TLS-only policy (deny when
``aws:SecureTransport`` is false, deny when ``s3:TlsVersion`` is below 1.2) refuses every
request. AWS evaluates the conditions against the request; the emulator stands for the TLS
endpoint a client reaches on AWS, so it supplies ``aws:SecureTransport = true`` and
``s3:TlsVersion = 1.3`` for the requests it serves, and evaluates the policy's conditions:

    Bool, StringEquals, StringNotEquals, StringLike, StringNotLike, ArnLike, ArnEquals,
    NumericEquals, NumericNotEquals, NumericLessThan(Equals), NumericGreaterThan(Equals),
    each also with ``IfExists``; a key the context lacks fails the condition (as on AWS).

An operator outside that list fails the request loudly rather than being skipped.
"""

from __future__ import annotations

import fnmatch
import json
import operator
from typing import Any

from moto.iam.access_control import PermissionResult
from moto.s3 import models as s3_models

# What every request to the emulator carries, as a client on AWS's TLS endpoint would.
REQUEST_CONTEXT = {"aws:securetransport": "true", "s3:tlsversion": "1.3"}

_NUMERIC = {
    "NumericEquals": operator.eq,
    "NumericNotEquals": operator.ne,
    "NumericLessThan": operator.lt,
    "NumericLessThanEquals": operator.le,
    "NumericGreaterThan": operator.gt,
    "NumericGreaterThanEquals": operator.ge,
}


class UnsupportedCondition(NotImplementedError):
    """A policy condition operator the emulator does not evaluate."""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _holds(op: str, actual: str, expected: list[Any]) -> bool:
    if op == "Bool":
        return actual.lower() in [str(e).lower() for e in expected]
    if op in ("StringEquals", "ArnEquals"):
        return actual in expected
    if op == "StringNotEquals":
        return actual not in expected
    if op in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, e) for e in expected)
    if op == "StringNotLike":
        return not any(fnmatch.fnmatchcase(actual, e) for e in expected)
    if op in _NUMERIC:
        return any(_NUMERIC[op](float(actual), float(e)) for e in expected)
    raise UnsupportedCondition(f"bucket policy condition operator {op!r} is not evaluated by the emulator")


def conditions_hold(conditions: dict[str, dict[str, Any]] | None, context: dict[str, str]) -> bool:
    """True when every condition of a statement holds for ``context`` (keys lower-case)."""
    for op, keys in (conditions or {}).items():
        base, if_exists = (op[: -len("IfExists")], True) if op.endswith("IfExists") else (op, False)
        for key, expected in keys.items():
            actual = context.get(key.lower())
            if actual is None:
                if if_exists:
                    continue
                return False
            if not _holds(base, actual, _as_list(expected)):
                return False
    return True


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))


def evaluate(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> PermissionResult:
    """An explicit deny wins, then an allow; otherwise neutral (as moto's own evaluation)."""
    result = PermissionResult.NEUTRAL
    for statement in _as_list(policy.get("Statement", [])):
        if "NotAction" in statement:
            applies = not _matches(statement["NotAction"], action)
        else:
            applies = _matches(statement.get("Action", []), action)
        principal = statement.get("Principal")
        # moto verifies only the anonymous principal "*"; others are not evaluated here either.
        if not applies or (principal is not None and principal != "*" and principal != {"AWS": "*"}):
            continue
        if "Resource" in statement and not _matches(statement["Resource"], resource):
            continue
        if not conditions_hold(statement.get("Condition"), context):
            continue
        if statement.get("Effect") == "Deny":
            return PermissionResult.DENIED
        result = PermissionResult.PERMITTED
    return result


def _get_permission(self: s3_models.FakeBucket, action: str, resource: str) -> PermissionResult:
    if self.policy is None:
        return PermissionResult.NEUTRAL
    return evaluate(json.loads(self.policy), action, resource, REQUEST_CONTEXT)


def install() -> None:
    s3_models.FakeBucket.get_permission = _get_permission
