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
