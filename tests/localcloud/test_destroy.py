"""What a destroy leaves in the state file: nothing it deleted, everything it could not delete."""

from __future__ import annotations

import json

import pytest

from localcloud.translations import lookup
from localcloud.translations.base import DeployError
from tests.localcloud import scratch

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
TWO_ROLES = f"""
import pulumi
import pulumi_aws as aws

first = aws.iam.Role("first-role", name="first-role", assume_role_policy={TRUST!r})
aws.iam.Role(
    "second-role",
    name="second-role",
    assume_role_policy={TRUST!r},
    opts=pulumi.ResourceOptions(depends_on=[first]),
)
pulumi.export("firstRole", first.name)
"""


def test_a_destroy_empties_the_state_file_as_it_empties_the_account(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    assert sorted(r.name for r in scratch.state(root).resources.values()) == ["first-role", "second-role"]
    result = scratch.engine(root, fresh.endpoint_url).destroy()
    assert sorted((o.op, o.name) for o in result.operations) == [
        ("delete", "first-role"),
        ("delete", "second-role"),
    ]
    assert fresh.client("iam").list_roles()["Roles"] == []
    # Read back from the file, as the next command would; `pulumi stack output` shows nothing.
    assert scratch.state(root).resources == {}
    assert scratch.state(root).outputs == {}


def test_a_destroy_that_fails_says_so_and_keeps_what_it_could_not_delete(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    iam = fresh.client("iam")
    # A policy attached out of band: IAM refuses to delete a role that still has one.
    iam.put_role_policy(
        RoleName="first-role",
        PolicyName="out-of-band",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
            }
        ),
    )
    with pytest.raises(DeployError, match=r"first-role \(aws:iam/role:Role\): .*DeleteConflict"):
        scratch.engine(root, fresh.endpoint_url).destroy()
    # The newest is deleted first; the one IAM refused stays recorded, as it stays in the account.
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["first-role"]
    assert [r.name for r in scratch.state(root).resources.values()] == ["first-role"]
    # The stack is not gone: its outputs still name what is left.
    assert scratch.state(root).outputs == {"firstRole": "first-role"}


def test_a_stacks_outputs_are_its_own_programs_exports_only(tmp_path, fresh):
    """Two programs deployed one after the other in one process (as the test suite and a
    long-lived tool do): the second stack's outputs hold none of the first's exports."""
    other = scratch.project(tmp_path / "other", 'import pulumi\npulumi.export("otherExport", "x")\n')
    scratch.engine(other, fresh.endpoint_url).up()
    root = scratch.project(tmp_path / "mine", TWO_ROLES)
    assert scratch.engine(root, fresh.endpoint_url).up().outputs == {"firstRole": "first-role"}
    assert scratch.state(root).outputs == {"firstRole": "first-role"}


KEPT_AND_DROPPED = f"""
import pulumi
import pulumi_aws as aws

if pulumi.Config("tiny").get_bool("declared") is not False:
    aws.iam.Role("kept-role", name="kept-role", assume_role_policy={TRUST!r},
        opts=pulumi.ResourceOptions(retain_on_delete=True))
    aws.iam.Role("dropped-role", name="dropped-role", assume_role_policy={TRUST!r})
pulumi.export("declared", pulumi.Config("tiny").get_bool("declared") is not False)
"""


def _role_names(emulator) -> list[str]:
    return sorted(r["RoleName"] for r in emulator.client("iam").list_roles()["Roles"])


def test_a_preview_of_removed_resources_deletes_nothing_and_writes_nothing(tmp_path, fresh):
    root = scratch.project(tmp_path, KEPT_AND_DROPPED)
    scratch.engine(root, fresh.endpoint_url).up()
    state_file = scratch.state_file(root)
    before = state_file.read_text()

    plan = scratch.engine(root, fresh.endpoint_url, declared="false").up(preview=True)
    assert sorted((o.op, o.name) for o in plan.operations) == [
        ("delete", "dropped-role"),
        ("delete", "kept-role"),
    ]
    assert plan.outputs == {"declared": False}  # the outputs the deploy would leave
    assert _role_names(fresh) == ["dropped-role", "kept-role"]
    assert state_file.read_text() == before


def test_a_retained_resource_leaves_the_stack_and_stays_in_the_account(tmp_path, fresh):
    root = scratch.project(tmp_path, KEPT_AND_DROPPED)
    scratch.engine(root, fresh.endpoint_url).up()

    removed = scratch.engine(root, fresh.endpoint_url, declared="false").up()
    # Pulumi lists a retained resource's delete; only the account keeps it (retainOnDelete).
    assert sorted((o.op, o.name) for o in removed.operations) == [
        ("delete", "dropped-role"),
        ("delete", "kept-role"),
    ]
    assert _role_names(fresh) == ["kept-role"]
    assert scratch.state(root).resources == {}
    assert scratch.state(root).outputs == {"declared": False}


def test_a_destroy_keeps_a_retained_resource_in_the_account(tmp_path, fresh):
    root = scratch.project(tmp_path, KEPT_AND_DROPPED)
    scratch.engine(root, fresh.endpoint_url).up()
    scratch.engine(root, fresh.endpoint_url).destroy()
    assert _role_names(fresh) == ["kept-role"]
    assert scratch.state(root).resources == {}


def test_each_delete_is_written_to_the_state_before_the_next_starts(tmp_path, fresh, monkeypatch):
    """As Pulumi checkpoints after each step: a destroy killed between two deletes leaves a state
    that lists what is left, with the stack's outputs as they were."""
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    state_file = scratch.state_file(root)
    seen: dict[str, dict] = {}
    role = lookup("aws:iam/role:Role")
    delete = type(role).delete

    def observed(self, call, id_, inputs):
        seen[id_] = json.loads(state_file.read_text())  # what a crash here would leave
        return delete(self, call, id_, inputs)

    monkeypatch.setattr(type(role), "delete", observed)
    scratch.engine(root, fresh.endpoint_url).destroy()
    # Newest first: second-role went, then first-role's delete found it gone from the state.
    assert [r["name"] for r in seen["second-role"]["resources"]] == ["first-role", "second-role"]
    assert [r["name"] for r in seen["first-role"]["resources"]] == ["first-role"]
    assert seen["first-role"]["outputs"] == {"firstRole": "first-role"}
    assert {seen[role]["stack"] for role in seen} == {scratch.STACK}
