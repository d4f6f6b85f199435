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


ROLE_WITH_TWO_POLICIES = f"""
import pulumi
import pulumi_aws as aws

other = aws.iam.Role("other-role", name="other-role", assume_role_policy={TRUST!r})
aws.iam.RolePolicy("other-policy", name="other-policy", role=other.name, policy={POLICY!r})
role = aws.iam.Role("app-role", name="app-role", path=pulumi.Config("tiny").require("rolePath"),
    assume_role_policy={TRUST!r})
aws.iam.RolePolicy("read-policy", name="read-policy", role=role.name, policy={POLICY!r})
aws.iam.RolePolicy("write-policy", name="write-policy", role=role.name, policy={POLICY!r})
"""


def test_every_dependent_of_a_replaced_role_goes_before_it_and_nothing_else_does(tmp_path, fresh):
    root = scratch.project(tmp_path, ROLE_WITH_TWO_POLICIES)
    iam = fresh.client("iam")
    scratch.engine(root, fresh.endpoint_url, rolePath="/a/").up()

    done = scratch.engine(root, fresh.endpoint_url, rolePath="/b/").up()
    assert sorted((o.name, o.op) for o in done.operations) == [
        ("app-role", "replace"),
        ("other-policy", "same"),
        ("other-role", "same"),
        ("read-policy", "replace"),
        ("write-policy", "replace"),
    ]
    assert sorted((r["RoleName"], r["Path"]) for r in iam.list_roles()["Roles"]) == [
        ("app-role", "/b/"),
        ("other-role", "/"),
    ]
    assert sorted(iam.list_role_policies(RoleName="app-role")["PolicyNames"]) == [
        "read-policy",
        "write-policy",
    ]
    assert iam.list_role_policies(RoleName="other-role")["PolicyNames"] == ["other-policy"]
    assert {o.op for o in scratch.engine(root, fresh.endpoint_url, rolePath="/b/").up().operations} == {
        "same"
    }


ROLE_AND_OPTIONAL_POLICY = f"""
import pulumi
import pulumi_aws as aws

config = pulumi.Config("tiny")
role = aws.iam.Role("app-role", name="app-role", path=config.require("rolePath"),
    assume_role_policy={TRUST!r})
if config.get_bool("withPolicy") is not False:
    aws.iam.RolePolicy("app-policy", name="app-policy", role=role.name, policy={POLICY!r})
"""


def test_a_dependent_the_program_drops_while_its_role_is_replaced_is_listed_as_deleted(tmp_path, fresh):
    root = scratch.project(tmp_path, ROLE_AND_OPTIONAL_POLICY)
    iam = fresh.client("iam")
    scratch.engine(root, fresh.endpoint_url, rolePath="/a/").up()

    done = scratch.engine(root, fresh.endpoint_url, rolePath="/b/", withPolicy="false").up()
    assert sorted((o.op, o.type, o.name, o.physical) for o in done.operations) == [
        ("delete", "aws:iam/rolePolicy:RolePolicy", "app-policy", "app-role:app-policy"),
        ("replace", "aws:iam/role:Role", "app-role", "app-role"),
    ]
    assert iam.list_role_policies(RoleName="app-role")["PolicyNames"] == []
    assert [r.name for r in scratch.state(root).resources.values()] == ["app-role"]


ROLE_MODEL_CONFIG = f"""
import pulumi
import pulumi_aws as aws

role = aws.iam.Role("app-role", name="app-role", path=pulumi.Config("tiny").require("rolePath"),
    assume_role_policy={TRUST!r})
model = aws.sagemaker.Model("app-model", name="app-model", execution_role_arn=role.arn,
    primary_container={{"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1"}})
aws.sagemaker.EndpointConfiguration("app-config", name="app-config", production_variants=[{{
    "variant_name": "champion", "model_name": model.name, "initial_instance_count": 1,
    "instance_type": "ml.m5.large"}}])
"""


def test_dependents_are_replaced_transitively(tmp_path, fresh):
    """The model reads the role's ARN and the configuration reads the model's name, each in an
    input that forces a new resource: both go before the role and come back after it, as the
    Pulumi engine's dependent replacements are transitive."""
    root = scratch.project(tmp_path, ROLE_MODEL_CONFIG)
    scratch.engine(root, fresh.endpoint_url, rolePath="/a/").up()
    done = scratch.engine(root, fresh.endpoint_url, rolePath="/b/").up()
    assert sorted((o.name, o.op, o.delete_first) for o in done.operations) == [
        ("app-config", "replace", True),
        ("app-model", "replace", True),
        ("app-role", "replace", True),
    ]
    sagemaker = fresh.client("sagemaker")
    role = fresh.client("iam").get_role(RoleName="app-role")["Role"]
    assert role["Path"] == "/b/"
    assert sagemaker.describe_model(ModelName="app-model")["ExecutionRoleArn"] == role["Arn"]
    assert (
        sagemaker.describe_endpoint_config(EndpointConfigName="app-config")["ProductionVariants"][0][
            "ModelName"
        ]
        == "app-model"
    )
