"""What every component shares: child resource options and the tags every resource carries."""

from __future__ import annotations

import pulumi

PROJECT = "mlops-platform"


def child_opts(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
    """Options for a component's children: parented to it, inheriting what the caller set."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=parent))


def standard_tags(stack: str, owner: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags on every taggable resource: cost reports and clean-up key on them."""
    return {"project": PROJECT, "stack": stack, "owner": owner, **(extra or {})}
