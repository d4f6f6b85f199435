"""State belongs to one emulator, and a refresh reconciles it (issue 20, items 5 and 9).

Like ``pulumi refresh``, a refresh reads every recorded resource back: one that no longer
exists leaves the state (so the deploy creates it again), and the inputs a type reads back
(an endpoint's configuration) are what the next diff compares with. A state recorded against
another emulator (restarted, reset, or an earlier embedded run's) is refused naming both remedies.
"""

from __future__ import annotations

import json

import pytest

from localcloud import cli
from localcloud.state import Operation
from localcloud.translations.base import DeployError
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

TWO_ROLES = f"""
import pulumi_aws as aws

aws.iam.Role("kept-role", name="kept-role", assume_role_policy={TRUST!r})
aws.iam.Role("lost-role", name="lost-role", assume_role_policy={TRUST!r})
"""


def _roles(emulator) -> list[str]:
    return sorted(r["RoleName"] for r in emulator.client("iam").list_roles()["Roles"])


def test_a_state_recorded_against_another_emulator_is_refused_naming_what_to_do(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    fresh.reset()  # the emulator restarted: nothing the state lists exists any more

    with pytest.raises(DeployError) as refused:
        scratch.engine(root, fresh.endpoint_url).up()
    message = str(refused.value)
    assert "another emulator" in message and "--refresh" in message and "tiny.json" in message
    assert _roles(fresh) == []

    redone = scratch.engine(root, fresh.endpoint_url).up(refresh=True)
    assert sorted((o.op, o.name) for o in redone.operations) == [
        ("create", "kept-role"),
        ("create", "lost-role"),
    ]
    assert _roles(fresh) == ["kept-role", "lost-role"]
    assert {o.op for o in scratch.engine(root, fresh.endpoint_url).up().operations} == {"same"}


def test_refresh_forgets_what_was_deleted_outside_the_stack_and_the_deploy_recreates_it(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    fresh.client("iam").delete_role(RoleName="lost-role")

    # Without a refresh the state still says it exists, as in Pulumi.
    assert {o.op for o in scratch.engine(root, fresh.endpoint_url).up(preview=True).operations} == {"same"}
    refreshed = scratch.engine(root, fresh.endpoint_url).refresh()
    assert sorted((o.op, o.name) for o in refreshed.operations) == [
        ("delete", "lost-role"),
        ("same", "kept-role"),
    ]
    assert sorted(r.name for r in scratch.state(root).resources.values()) == ["kept-role"]
    again = scratch.engine(root, fresh.endpoint_url).up()
    assert sorted((o.op, o.name) for o in again.operations) == [
        ("create", "lost-role"),
        ("same", "kept-role"),
    ]
    assert _roles(fresh) == ["kept-role", "lost-role"]


def test_the_command_refreshes_before_it_deploys(tmp_path, fresh, monkeypatch, capsys):
    root = scratch.project(tmp_path, TWO_ROLES)
    monkeypatch.setenv("AWS_ENDPOINT_URL", fresh.endpoint_url)
    argv = ["--stack", scratch.STACK, "--project", str(root), "--state-dir", str(root / ".state")]
    argv.append("--no-policy-pack")  # a scratch program, not a platform stack
    assert cli.main(argv) == 0
    fresh.reset()
    assert cli.main(argv) == 1
    assert "--refresh" in capsys.readouterr().err
    assert cli.main([*argv, "--refresh"]) == 0
    out = capsys.readouterr().out
    assert "Refreshed: 2 gone" in out and "2 create" in out
    assert _roles(fresh) == ["kept-role", "lost-role"]


LOGS = """
import pulumi
import pulumi_aws as aws

logs = aws.cloudwatch.LogGroup("audit-logs", name="/tiny/audit", retention_in_days=30)
aws.cloudwatch.LogGroup("plain-logs", name="/tiny/plain")
pulumi.export("auditLogs", logs.name)
"""


def _retention(emulator, name: str) -> int | None:
    groups = emulator.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next(g.get("retentionInDays") for g in groups if g["logGroupName"] == name)


def test_a_retention_changed_in_the_console_is_drift_the_refresh_names_and_the_deploy_sets_back(
    tmp_path, fresh
):
    root = scratch.project(tmp_path, LOGS)
    scratch.engine(root, fresh.endpoint_url).up()
    # Someone shortens the audit logs' retention by hand.
    fresh.client("logs").put_retention_policy(logGroupName="/tiny/audit", retentionInDays=1)

    refreshed = scratch.engine(root, fresh.endpoint_url).refresh()
    assert sorted(refreshed.refreshed, key=lambda o: o.name) == [
        Operation(
            "update", "aws:cloudwatch/logGroup:LogGroup", "audit-logs", "/tiny/audit", ["retentionInDays"]
        ),
        Operation("same", "aws:cloudwatch/logGroup:LogGroup", "plain-logs", "/tiny/plain", []),
    ]
    # A refresh keeps the stack's outputs; the state now holds what AWS holds.
    assert refreshed.outputs == {"auditLogs": "/tiny/audit"}
    assert refreshed.preview is False
    recorded = {r.name: r for r in scratch.state(root).resources.values()}
    assert recorded["audit-logs"].outputs["retentionInDays"] == 1.0
    assert recorded["audit-logs"].outputs["arn"].endswith(":log-group:/tiny/audit")

    deployed = scratch.engine(root, fresh.endpoint_url).up()
    assert sorted((o.op, o.name, tuple(o.changed)) for o in deployed.operations) == [
        ("same", "plain-logs", ()),
        ("update", "audit-logs", ("retentionInDays",)),
    ]
    assert _retention(fresh, "/tiny/audit") == 30
    assert _retention(fresh, "/tiny/plain") is None
    assert {o.op for o in scratch.engine(root, fresh.endpoint_url).up().operations} == {"same"}


def test_a_retention_removed_in_the_console_is_drift_too(tmp_path, fresh):
    root = scratch.project(tmp_path, LOGS)
    scratch.engine(root, fresh.endpoint_url).up()
    fresh.client("logs").delete_retention_policy(logGroupName="/tiny/audit")
    # Without a refresh the deploy compares with the last read, as Pulumi does: nothing to do.
    assert {o.op for o in scratch.engine(root, fresh.endpoint_url).up(preview=True).operations} == {"same"}
    deployed = scratch.engine(root, fresh.endpoint_url).up(refresh=True)
    assert [(o.op, o.name) for o in deployed.refreshed if o.op != "same"] == [("update", "audit-logs")]
    assert [(o.op, o.name) for o in deployed.operations if o.op != "same"] == [("update", "audit-logs")]
    assert _retention(fresh, "/tiny/audit") == 30


def test_a_refresh_preview_reports_what_is_gone_and_writes_nothing(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    state_file = scratch.state_file(root)
    before = state_file.read_text()
    fresh.client("iam").delete_role(RoleName="lost-role")

    previewed = scratch.engine(root, fresh.endpoint_url).refresh(preview=True)
    assert previewed.preview is True
    assert sorted(previewed.operations, key=lambda o: o.name) == [
        Operation("same", "aws:iam/role:Role", "kept-role", "kept-role", []),
        Operation("delete", "aws:iam/role:Role", "lost-role", "lost-role"),
    ]
    assert state_file.read_text() == before


def test_a_destroy_with_refresh_does_not_count_what_was_already_gone(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    fresh.client("iam").delete_role(RoleName="lost-role")

    destroyed = scratch.engine(root, fresh.endpoint_url).destroy(refresh=True)
    assert [(o.op, o.name) for o in destroyed.refreshed if o.op == "delete"] == [("delete", "lost-role")]
    assert [(o.op, o.name) for o in destroyed.operations] == [("delete", "kept-role")]
    assert destroyed.outputs == {}
    assert _roles(fresh) == [] and scratch.state(root).resources == {}


def test_a_destroy_without_refresh_deletes_every_recorded_resource_even_one_already_gone(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    fresh.client("iam").delete_role(RoleName="lost-role")

    destroyed = scratch.engine(root, fresh.endpoint_url).destroy()
    assert destroyed.refreshed == []
    assert sorted((o.op, o.name) for o in destroyed.operations) == [
        ("delete", "kept-role"),
        ("delete", "lost-role"),
    ]
    assert scratch.state(root).resources == {}


def test_a_destroy_preview_lists_the_deletes_and_deletes_nothing(tmp_path, fresh):
    root = scratch.project(tmp_path, TWO_ROLES)
    scratch.engine(root, fresh.endpoint_url).up()
    state_file = scratch.state_file(root)
    before = state_file.read_text()

    previewed = scratch.engine(root, fresh.endpoint_url).destroy(preview=True)
    assert previewed.preview is True
    assert sorted(previewed.operations, key=lambda o: o.name) == [
        Operation("delete", "aws:iam/role:Role", "kept-role", "kept-role"),
        Operation("delete", "aws:iam/role:Role", "lost-role", "lost-role"),
    ]
    assert _roles(fresh) == ["kept-role", "lost-role"]
    assert state_file.read_text() == before


def test_a_refresh_the_deployer_may_not_make_fails_naming_the_resource_and_keeps_the_state(tmp_path, fresh):
    """A deploy role without ``logs:DescribeLogGroups`` (read by the refresh of a log group):
    refused as IAM refuses it, named by resource and type, and the state file stays as it was."""
    from localcloud.emulator.session import CREDENTIALS, deploy_as

    root = scratch.project(tmp_path, LOGS)
    scratch.engine(root, fresh.endpoint_url).up()
    state_file = scratch.state_file(root)
    before = state_file.read_text()
    iam = fresh.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName="narrow-deployer", AssumeRolePolicyDocument=json.dumps(trust))
    allowed = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sts:GetCallerIdentity", "iam:GetRole"], "Resource": "*"}
        ],
    }
    iam.put_role_policy(RoleName="narrow-deployer", PolicyName="reads", PolicyDocument=json.dumps(allowed))
    credentials = fresh.client("sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/narrow-deployer", RoleSessionName="refresh"
    )["Credentials"]
    deploy_as(
        {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
    )
    try:
        with pytest.raises(DeployError) as refused:
            scratch.engine(root, fresh.endpoint_url).refresh()
    finally:
        deploy_as(CREDENTIALS)
    message = str(refused.value)
    assert message.startswith("audit-logs (aws:cloudwatch/logGroup:LogGroup): ") or message.startswith(
        "plain-logs (aws:cloudwatch/logGroup:LogGroup): "
    )
    assert "logs:DescribeLogGroups" in message and "narrow-deployer" in message
    assert state_file.read_text() == before


POLICY_AND_KEY = f"""
import json
import pulumi_aws as aws

role = aws.iam.Role("app-role", name="app-role", assume_role_policy={TRUST!r})
aws.iam.RolePolicy("app-policy", role=role.name, policy=json.dumps({{"Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}}]}}))
aws.kms.Key("app-key", description="app data", enable_key_rotation=True)
"""


def test_a_refresh_reads_back_an_auto_named_policy_and_a_key(tmp_path, fresh):
    root = scratch.project(tmp_path, POLICY_AND_KEY)
    scratch.engine(root, fresh.endpoint_url).up()
    recorded = {r.name: r for r in scratch.state(root).resources.values()}
    policy_name = recorded["app-policy"].auto_name
    assert policy_name.startswith("app-policy-")

    refreshed = scratch.engine(root, fresh.endpoint_url).refresh()
    assert sorted((o.op, o.name) for o in refreshed.operations) == [
        ("same", "app-key"),
        ("same", "app-policy"),
        ("same", "app-role"),
    ]
    fresh.client("iam").delete_role_policy(RoleName="app-role", PolicyName=policy_name)
    fresh.client("kms").schedule_key_deletion(KeyId=recorded["app-key"].id, PendingWindowInDays=7)
    refreshed = scratch.engine(root, fresh.endpoint_url).refresh()
    assert sorted((o.op, o.name, o.physical) for o in refreshed.operations if o.op != "same") == sorted(
        [("delete", "app-policy", policy_name), ("delete", "app-key", recorded["app-key"].id)]
    )
