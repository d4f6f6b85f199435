"""The security policy pack on every local preview and deploy: a violation fails before any write.

A scratch project declares one resource breaking one invariant; the engine refuses it naming
the policy and the resource, and neither AWS (the emulator) nor the stack's state changes.
"""

from __future__ import annotations

import textwrap

import pytest

from localcloud.engine import Engine
from localcloud.policy import PolicyViolationError

PROGRAM = textwrap.dedent(
    """
    import pulumi_aws as aws

    tags = {"project": "mlops-platform", "stack": "bad", "owner": "ml-team"}
    aws.kms.Key("stack-key", description="a key that never rotates", enable_key_rotation=False, tags=tags)
    """
)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "__main__.py").write_text(PROGRAM)
    (tmp_path / "Pulumi.yaml").write_text("name: bad\nruntime: python\nmain: infra/\n")
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    return tmp_path


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_a_violation_fails_naming_policy_and_resource_before_any_write(project, fresh, preview):
    engine = Engine("bad", fresh.endpoint_url, state_dir=project / ".state", root=project)
    with pytest.raises(PolicyViolationError) as refused:
        engine.up(preview=preview)
    message = str(refused.value)
    assert "[kms-key-rotation]" in message and "stack-key" in message
    assert [v.policy for v in refused.value.violations] == ["kms-key-rotation"]
    assert fresh.client("kms").list_keys()["Keys"] == []
    assert not (project / ".state" / "bad.json").exists()


def test_without_the_pack_the_same_program_deploys(project, fresh):
    # As `pulumi up` without --policy-pack: the refusal above is the pack's, not AWS's.
    Engine("bad", fresh.endpoint_url, state_dir=project / ".state", root=project, policy_pack=False).up()
    assert len(fresh.client("kms").list_keys()["Keys"]) == 1


def test_a_value_unknown_until_deployed_is_not_a_violation():
    # During a preview the engine hands the pack an unknown for what another resource computes
    # (a key's ARN); the SDK's proxy raises UnknownValueError, which the CLI only reports as
    # "can't run during preview". A missing key stays a violation.
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    from localcloud.policy import Declared, evaluate

    tags = {"project": "mlops-platform", "stack": "dev", "owner": "ml-team"}

    def topic(key):
        inputs = {"name": "alarms", "tags": tags, **({"kmsMasterKeyId": key} if key else {})}
        return Declared(
            "aws:sns/topic:Topic", "alarms", "urn:pulumi:dev::p::aws:sns/topic:Topic::alarms", inputs
        )

    assert evaluate([topic(UNKNOWN_STRING_VALUE)], "dev") == []
    assert [v.policy for v in evaluate([topic(None)], "dev")] == ["customer-managed-kms"]


@pytest.mark.parametrize("pack", [True, False], ids=["with-pack", "without-pack"])
def test_the_program_sees_its_project_stack_and_region_with_or_without_the_pack(
    tmp_path, fresh, monkeypatch, pack
):
    """The program sees its project, its stack and the stack's region in the pack's run too
    (the platform's program imports the sagemaker SDK, which needs a region)."""
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "__main__.py").write_text(
        textwrap.dedent(
            """
            import os
            import pulumi

            seen = (pulumi.get_project(), pulumi.get_stack(), os.environ.get("AWS_DEFAULT_REGION"))
            if seen != ("picky", "bad", "eu-west-1"):
                raise RuntimeError(f"project, stack, region: {seen}")
            pulumi.export("seen", list(seen))
            """
        )
    )
    (tmp_path / "Pulumi.yaml").write_text("name: picky\nruntime: python\nmain: infra/\n")
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    engine = Engine("bad", fresh.endpoint_url, state_dir=tmp_path / ".state", root=tmp_path, policy_pack=pack)
    assert engine.up().outputs == {"seen": ["picky", "bad", "eu-west-1"]}
