"""What every component shares: child resource options and the tags every resource carries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pulumi

PROJECT = "mlops-platform"


def child_opts(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
    """Options for a component's children: parented to it, inheriting what the caller set."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=parent))


def standard_tags(stack: str, owner: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags on every taggable resource: cost reports and clean-up key on them."""
    return {"project": PROJECT, "stack": stack, "owner": owner, **(extra or {})}


def fit_name(name: str, limit: int = 64) -> str:
    """``name`` if it fits AWS's length ``limit``, else a prefix of it plus a digest of all of it.

    The digest keeps two long names that share a prefix apart, and the result is the same
    on every run (no random suffix, so previews show no spurious replacement).
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def assume_role_policy(service: str, condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A trust policy letting one AWS service assume a role (under ``condition``, if any).

    Pass a condition on ``aws:SourceAccount`` / ``aws:SourceArn`` wherever the service sets
    them, so no other account or resource can use the role (the confused-deputy guard).
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = dict(condition)
    return {"Version": "2012-10-17", "Statement": [statement]}


def source_account(account: str) -> dict[str, Any]:
    """The trust condition: on behalf of this account only."""
    return {"StringEquals": {"aws:SourceAccount": account}}
