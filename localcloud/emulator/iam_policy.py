"""IAM's policy language, evaluated: does one policy document allow, deny or say nothing?

Pure functions over policy documents (dicts), a request (action, resource, principal) and its
request context, as AWS documents them ("IAM JSON policy elements" and "Policy evaluation
logic" in the IAM User Guide). ``localcloud.emulator.authorisation`` combines the documents of
one request (identity, boundary, resource policy) into AWS's decision; this module judges one.

What is evaluated: ``Effect``; ``Action``/``NotAction`` (case-insensitive, ``*`` and ``?``);
``Resource``/``NotResource`` (case-sensitive wildcards); ``Principal``/``NotPrincipal``
(``*``, account ids and ``:root``, role ARNs matching their sessions, session ARNs,
``Service``, ``Federated``); and these condition operators, each with ``IfExists`` and the
``ForAnyValue:``/``ForAllValues:`` set prefixes: String(Not)Equals(IgnoreCase),
String(Not)Like, Arn(Not)Equals, Arn(Not)Like, Bool, Null, Numeric*. A key missing from the
request context fails a positive operator and satisfies a negated one, as AWS documents.
Any other operator (Date*, IpAddress, BinaryEquals) raises :class:`UnsupportedCondition`
rather than being skipped: nothing the program uses is silently waved through.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ALLOW, DENY = "Allow", "Deny"

_NUMERIC = {
    "NumericEquals": operator.eq,
    "NumericNotEquals": operator.ne,
    "NumericLessThan": operator.lt,
    "NumericLessThanEquals": operator.le,
    "NumericGreaterThan": operator.gt,
    "NumericGreaterThanEquals": operator.ge,
}
# Negated operators: a missing key satisfies them (the values "do not match").
_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
}


class UnsupportedCondition(NotImplementedError):
    """A policy condition operator the emulator does not evaluate."""


@dataclass(frozen=True)
class Principal:
    """Who makes a request.

    ``arn`` is what IAM reports (a role session is ``arn:aws:sts::<acct>:assumed-role/R/S``);
    ``role_arn`` the role behind a session; ``service`` a service principal
    (``sagemaker.amazonaws.com``); ``federated`` the identity provider of a web identity.
    """

    arn: str
    account: str
    role_arn: str | None = None
    service: str | None = None
    federated: str | None = None

    @property
    def is_account_root(self) -> bool:
        return self.arn == f"arn:aws:iam::{self.account}:root"


@dataclass
class Verdict:
    """One document's answer: ``Allow``, ``Deny`` or ``None`` (nothing applies), and by what."""

    effect: str | None = None
    statement: str = ""
    # How the principal was matched in a resource policy: "session", "role", "account", "any",
    # "service", "federated" (the account form only delegates to the caller's own policies).
    matched_by: str = ""
    conditions: list[str] = field(default_factory=list)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(glob: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's ``*``/``?`` wildcards, which span ``/`` and ``:`` (unlike shell globs' ``[...]``)."""
    return _pattern(glob, ignore_case).fullmatch(value) is not None


def action_matches(patterns: Any, action: str) -> bool:
    return any(wildcard_match(p, action, ignore_case=True) for p in as_list(patterns))


def resource_matches(patterns: Any, resource: str) -> bool:
    return any(wildcard_match(p, resource) for p in as_list(patterns))


def _account_of(value: str) -> str | None:
    if re.fullmatch(r"\d{12}", value):
        return value
    found = re.fullmatch(r"arn:aws:iam::(\d{12}):root", value)
    return found.group(1) if found else None


def principal_match(element: Any, principal: Principal) -> str:
    """How a ``Principal`` element names ``principal`` ("" when it does not)."""
    if element == "*":
        return "any"
    for kind, values in (element or {}).items():
        for value in as_list(values):
            if kind == "AWS":
                if value == "*":
                    return "any"
                if principal.service or principal.federated:
                    continue
                if _account_of(value) == principal.account:
                    return "account"
                if value == principal.arn:
                    return "session" if principal.role_arn else "role"
                if principal.role_arn and value == principal.role_arn:
                    return "role"
            elif kind == "Service" and principal.service == value:
                return "service"
            elif kind == "Federated" and principal.federated == value:
                return "federated"
    return ""


def _holds(base: str, actual: str, expected: list[Any]) -> bool:
    values = [str(e) for e in expected]
    if base == "Bool":
        return actual.lower() in [v.lower() for v in values]
    if base in ("StringEquals", "ArnEquals"):
        return actual in values
    if base == "StringEqualsIgnoreCase":
        return actual.lower() in [v.lower() for v in values]
    if base in ("StringLike", "ArnLike"):
        return any(wildcard_match(v, actual) for v in values)
    if base in ("StringNotEquals", "ArnNotEquals"):
        return actual not in values
    if base == "StringNotEqualsIgnoreCase":
        return actual.lower() not in [v.lower() for v in values]
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(wildcard_match(v, actual) for v in values)
    if base in _NUMERIC:
        try:
            number = float(actual)
        except ValueError:
            return False
        if base == "NumericNotEquals":
            return all(number != float(v) for v in values)
        return any(_NUMERIC[base](number, float(v)) for v in values)
    raise UnsupportedCondition(f"condition operator {base!r} is not evaluated by the emulator")


def _split_operator(op: str) -> tuple[str, str, bool]:
    prefix, _, base = op.rpartition(":")
    if_exists = base.endswith("IfExists")
    return prefix, base[: -len("IfExists")] if if_exists else base, if_exists


def condition_block_holds(block: dict[str, dict[str, Any]] | None, context: dict[str, list[str]]) -> bool:
    """Every operator and every key of a ``Condition`` element holds (``context`` keys lower-case)."""
    for op, keys in (block or {}).items():
        prefix, base, if_exists = _split_operator(op)
        if base not in _OPERATORS:
            raise UnsupportedCondition(f"condition operator {op!r} is not evaluated by the emulator")
        for key, expected in keys.items():
            actual = context.get(key.lower()) or []
            expected = as_list(expected)
            if base == "Null":
                if (not actual) != (str(expected[0]).lower() == "true"):
                    return False
                continue
            if not actual:
                if if_exists or prefix == "ForAllValues" or (base in _NEGATED and not prefix):
                    continue
                return False
            if prefix == "ForAnyValue" or (not prefix and base not in _NEGATED):
                ok = any(_holds(base, a, expected) for a in actual)
            else:
                ok = all(_holds(base, a, expected) for a in actual)
            if not ok:
                return False
    return True


_OPERATORS = {
    "Null",
    "Bool",
    "StringEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "ArnEquals",
    "ArnLike",
    *_NEGATED,
    *_NUMERIC,
}


def evaluate(
    policy: dict[str, Any],
    action: str,
    resource: str | None,
    context: dict[str, list[str]],
    principal: Principal | None = None,
) -> Verdict:
    """One policy document's verdict for a request: an explicit deny wins over an allow.

    ``resource`` None means the emulator could not name the request's resource: every
    ``Resource`` pattern is taken to match it (and no ``NotResource``), so such a request is
    judged on its action and conditions only. ``principal`` is given for resource policies
    (they name who they grant to) and None for identity policies and boundaries.
    """
    allow: Verdict | None = None
    for index, statement in enumerate(as_list(policy.get("Statement"))):
        sid = statement.get("Sid") or f"statement {index + 1}"
        if "NotAction" in statement:
            if action_matches(statement["NotAction"], action):
                continue
        elif not action_matches(statement.get("Action"), action):
            continue
        if resource is not None:
            if "NotResource" in statement:
                if resource_matches(statement["NotResource"], resource):
                    continue
            elif "Resource" in statement and not resource_matches(statement["Resource"], resource):
                continue
        matched_by = ""
        if principal is not None:
            if "NotPrincipal" in statement:
                if principal_match(statement["NotPrincipal"], principal):
                    continue
                matched_by = "any"
            else:
                matched_by = principal_match(statement.get("Principal"), principal)
                if not matched_by:
                    continue
        if not condition_block_holds(statement.get("Condition"), context):
            continue
        verdict = Verdict(statement.get("Effect"), sid, matched_by)
        if verdict.effect == DENY:
            return verdict
        if verdict.effect == ALLOW and (allow is None or _stronger(matched_by, allow.matched_by)):
            allow = verdict
    return allow or Verdict()


_STRENGTH = {"": 0, "account": 1, "role": 2, "any": 3, "service": 3, "federated": 3, "session": 4}


def _stronger(a: str, b: str) -> bool:
    return _STRENGTH[a] > _STRENGTH[b]
