"""A failed replacement never costs the live resource (issue 20, item 1).

Pulumi marks the old resource for deletion only once its replacement exists
(pulumi/pulumi pkg/resource/deploy/step.go): a create that fails leaves the old resource
live and recorded, reverting the program finds it unchanged, and retrying converges.
"""

from __future__ import annotations

import json

import pytest

from localcloud.translations.base import DeployError, auto_name
from tests.localcloud import scratch

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

NAMED_ROLE = f"""
import pulumi
import pulumi_aws as aws

aws.iam.Role("app-role", name=pulumi.Config("tiny").require("roleName"), assume_role_policy={TRUST!r})
"""

AUTO_NAMED_ROLE = f"""
import pulumi
import pulumi_aws as aws

aws.iam.Role("app-role", path=pulumi.Config("tiny").require("rolePath"), assume_role_policy={TRUST!r})
"""


def _role_ids(root) -> list[str]:
    return sorted(r.id for r in scratch.state(root).resources.values())


def test_a_rename_aws_refuses_then_a_revert_keeps_the_live_role(tmp_path, fresh):
    """The issue's reproduction: one IAM role whose name comes from config."""
    root = scratch.project(tmp_path, NAMED_ROLE)
    iam = fresh.client("iam")
    scratch.engine(root, fresh.endpoint_url, roleName="app-role-a").up()

    # A space is outside IAM's RoleName pattern [\w+=,.@-]+ (IAM API reference, CreateRole).
    with pytest.raises(DeployError, match=r"(?s)app-role \(aws:iam/role:Role\).*CreateRole.*RoleName"):
        scratch.engine(root, fresh.endpoint_url, roleName="app role b").up()
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["app-role-a"]
    assert _role_ids(root) == ["app-role-a"]

    reverted = scratch.engine(root, fresh.endpoint_url, roleName="app-role-a").up()
    assert [o.op for o in reverted.operations] == ["same"]
    assert iam.get_role(RoleName="app-role-a")["Role"]["RoleName"] == "app-role-a"
    assert _role_ids(root) == ["app-role-a"]


def test_a_replacement_whose_create_fails_leaves_the_original_and_a_retry_converges(tmp_path, fresh):
    root = scratch.project(tmp_path, AUTO_NAMED_ROLE)
    iam = fresh.client("iam")
    scratch.engine(root, fresh.endpoint_url, rolePath="/a/").up()
    (original,) = scratch.state(root).resources.values()
    # The replacement's auto-name is taken outside the stack: its CreateRole fails with
    # EntityAlreadyExists, which only AWS can tell (no preview sees it).
    squatter = auto_name("app-role", f"{scratch.STACK}/{original.urn}/1", 64)
    iam.create_role(RoleName=squatter, AssumeRolePolicyDocument=TRUST)

    with pytest.raises(DeployError, match="EntityAlreadyExists"):
        scratch.engine(root, fresh.endpoint_url, rolePath="/b/").up()
    assert iam.get_role(RoleName=original.id)["Role"]["Path"] == "/a/"
    assert _role_ids(root) == [original.id]

    reverted = scratch.engine(root, fresh.endpoint_url, rolePath="/a/").up()
    assert [o.op for o in reverted.operations] == ["same"]
    assert iam.get_role(RoleName=original.id)["Role"]["Path"] == "/a/"

    iam.delete_role(RoleName=squatter)
    retried = scratch.engine(root, fresh.endpoint_url, rolePath="/b/").up()
    assert [o.op for o in retried.operations] == ["replace"]
    assert [(r["RoleName"], r["Path"]) for r in iam.list_roles()["Roles"]] == [(squatter, "/b/")]
    assert _role_ids(root) == [squatter]


REPLACED_THEN_LATER = f"""
import pulumi
import pulumi_aws as aws

config = pulumi.Config("tiny")
role = aws.iam.Role("app-role", path=config.require("rolePath"), assume_role_policy={TRUST!r})
if config.get_bool("later"):
    aws.iam.Role(
        "later-role",
        name="later-role",
        assume_role_policy={TRUST!r},
        opts=pulumi.ResourceOptions(depends_on=[role]),
    )
"""


def test_a_deploy_failing_after_a_replacement_keeps_the_old_copy_recorded_and_deletes_it_next_time(
    tmp_path, fresh
):
    """The replacement exists, a later resource fails before the old copy is deleted: the old
    copy is still live in AWS, so the state keeps it, and the next deploy deletes it."""
    root = scratch.project(tmp_path, REPLACED_THEN_LATER)
    iam = fresh.client("iam")
    scratch.engine(root, fresh.endpoint_url, rolePath="/a/").up()
    (original,) = scratch.state(root).resources.values()
    # A name only AWS knows is taken: the later role's CreateRole fails in the deploy, not the preview.
    iam.create_role(RoleName="later-role", AssumeRolePolicyDocument=TRUST, Path="/squatter/")

    with pytest.raises(DeployError, match=r"later-role.*EntityAlreadyExists"):
        scratch.engine(root, fresh.endpoint_url, rolePath="/b/", later="true").up()
    live = {r["RoleName"]: r["Path"] for r in iam.list_roles()["Roles"]}
    (replacement,) = [name for name, path in live.items() if path == "/b/"]
    assert live == {original.id: "/a/", replacement: "/b/", "later-role": "/squatter/"}
    # Both copies of app-role are recorded, as both are in the account: the old one under a key
    # of its own (Pulumi's pending-replacement entry), read back as the next command reads it.
    assert _role_ids(root) == sorted([original.id, replacement])
    recorded = scratch.state(root).resources
    assert {key: r.urn for key, r in recorded.items()} == {key: key for key in recorded}
    assert sorted(key.endswith(f"#replaced:{original.id}") for key in recorded) == [False, True]

    iam.delete_role(RoleName="later-role")
    scratch.engine(root, fresh.endpoint_url, rolePath="/b/", later="true").up()
    live = {r["RoleName"]: r["Path"] for r in iam.list_roles()["Roles"]}
    assert live == {replacement: "/b/", "later-role": "/"}
    assert _role_ids(root) == sorted([replacement, "later-role"])
