"""Delete-before-replace and its dependents (issue 20, item 4).

The terraform bridge deletes before it replaces a resource whose auto-nameable ``name`` the
program set (pulumi-terraform-bridge ``nameRequiresDeleteBeforeReplace``: the new resource
would take the same name), and the Pulumi engine then replaces the resources whose inputs
read it (``calculateDependentReplacements`` in pkg/resource/deploy/step_generator.go): they
are deleted before it and created again after it.
"""

from __future__ import annotations

import json

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
POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
)

ROLE_WITH_POLICY = f"""
import pulumi
import pulumi_aws as aws

role = aws.iam.Role("app-role", name="app-role", path=pulumi.Config("tiny").require("rolePath"),
    assume_role_policy={TRUST!r})
aws.iam.RolePolicy("app-policy", name="app-policy", role=role.name, policy={POLICY!r})
"""


def test_a_named_role_is_deleted_before_it_is_replaced_and_its_policy_with_it(tmp_path, fresh):
    root = scratch.project(tmp_path, ROLE_WITH_POLICY)
    iam = fresh.client("iam")
    scratch.engine(root, fresh.endpoint_url, rolePath="/a/").up()

    # A new path replaces the role (ForceNew); its name stays, so it must go first (created
    # first, the new role would meet EntityAlreadyExists), and IAM refuses to delete a role that
    # still has an inline policy: the policy goes before it and comes back after.
    done = scratch.engine(root, fresh.endpoint_url, rolePath="/b/").up()
    assert sorted((o.name, o.op) for o in done.operations) == [
        ("app-policy", "replace"),
        ("app-role", "replace"),
    ]
    assert [(r["RoleName"], r["Path"]) for r in iam.list_roles()["Roles"]] == [("app-role", "/b/")]
    assert iam.list_role_policies(RoleName="app-role")["PolicyNames"] == ["app-policy"]
    assert {o.op for o in scratch.engine(root, fresh.endpoint_url, rolePath="/b/").up().operations} == {
        "same"
    }

    plan = scratch.engine(root, fresh.endpoint_url, rolePath="/c/").up(preview=True)
    assert sorted((o.name, o.op, o.delete_first, o.changed) for o in plan.operations) == [
        ("app-policy", "replace", True, ["role"]),
        ("app-role", "replace", True, ["path"]),
    ]
