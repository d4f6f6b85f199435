"""Issue 20 item 10: ``secure:`` config decrypted as the Pulumi CLI's passphrase provider
encrypts it, and secrets never printed or written in clear to the state.

The ciphertexts here are made from the scheme pulumi/pulumi documents in its source
(``sdk/go/common/resource/config/crypt.go``: PBKDF2-HMAC-SHA256, 1,000,000 iterations, a 32-byte
key, AES-256-GCM with a 12-byte nonce, ``v1:<base64 nonce>:<base64 ciphertext+tag>``), with
hashlib and the cryptography package directly, not with the code under test; the salt state is
the one in pulumi/pulumi's ``pkg/secrets/passphrase/manager_test.go`` (passphrase "password").
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import textwrap

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from localcloud.engine import Engine
from localcloud.secrets import SecretsError, passphrase_crypter

# From pulumi/pulumi pkg/secrets/passphrase/manager_test.go: made by the real CLI for "password".
PULUMI_STATE = "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ=="
PASSPHRASE = "password"
VALUE = "glptt-display-7f3e9a1c"


def pulumi_encrypt(plaintext: str, passphrase: str = PASSPHRASE, state: str = PULUMI_STATE) -> str:
    """A ``secure:`` value as the Pulumi CLI writes it, from its documented scheme."""
    salt = base64.b64decode(state.split(":")[1])
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 1_000_000, 32)
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), None)
    return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"


def test_the_real_clis_salt_state_opens_with_its_passphrase_only():
    assert passphrase_crypter(PASSPHRASE, PULUMI_STATE) is not None
    with pytest.raises(SecretsError, match="incorrect passphrase"):
        passphrase_crypter("password123", PULUMI_STATE)


PROGRAM = """
    import pulumi
    import pulumi_aws as aws

    config = pulumi.Config()
    topic = aws.sns.Topic("alerts", name="secret-alerts", display_name=config.require_secret("displayName"))
    pulumi.export("displayName", config.require_secret("displayName"))
    pulumi.export("topicArn", topic.arn)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "__main__.py").write_text(textwrap.dedent(PROGRAM))
    (tmp_path / "Pulumi.yaml").write_text("name: sec\nruntime: python\nmain: infra/\n")
    (tmp_path / "Pulumi.sec.yaml").write_text(
        f"encryptionsalt: {PULUMI_STATE}\n"
        "config:\n"
        "  aws:region: eu-west-1\n"
        f"  sec:displayName:\n    secure: {pulumi_encrypt(VALUE)}\n"
    )
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    return tmp_path


def _engine(project, emulator):
    return Engine("sec", emulator.endpoint_url, state_dir=project / ".state", root=project, policy_pack=False)


def test_a_secure_value_reaches_aws_decrypted_and_the_state_only_sealed(project, fresh):
    result = _engine(project, fresh).up()
    topic = result.outputs["topicArn"]
    attributes = fresh.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes["DisplayName"] == VALUE
    state = (project / ".state" / "sec.json").read_text()
    assert VALUE not in state
    assert VALUE not in json.dumps(result.outputs)
    # Deployed again with the same secret: nothing to change (the sealed value compares equal),
    # and the state file is written as it was: a sealed value is not sealed anew each time.
    again = _engine(project, fresh).up()
    assert [o.op for o in again.operations] == ["same"]
    assert (project / ".state" / "sec.json").read_text() == state


def test_a_secret_output_prints_as_secret(project, fresh, monkeypatch, capsys):
    from localcloud.cli import main

    monkeypatch.setenv("AWS_ENDPOINT_URL", fresh.endpoint_url)
    argv = ["--stack", "sec", "--project", str(project), "--state-dir", str(project / ".state")]
    code = main([*argv, "--no-policy-pack"])  # a scratch program, not a platform stack
    printed = capsys.readouterr().out
    assert code == 0
    assert '"displayName": "[secret]"' in printed
    assert VALUE not in printed


def test_a_wrong_passphrase_fails_naming_what_to_set(project, fresh, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "not-the-passphrase")
    with pytest.raises(SecretsError, match="incorrect passphrase: set PULUMI_CONFIG_PASSPHRASE"):
        _engine(project, fresh).up()
    assert fresh.client("sns").list_topics()["Topics"] == []


def test_no_passphrase_fails_naming_the_variables(project, fresh, monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    with pytest.raises(SecretsError, match="PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"):
        _engine(project, fresh).up()


DIGESTED = """
    import pulumi
    import pulumi_aws as aws

    topic = aws.sns.Topic("alerts", name="plain-alerts", display_name=pulumi.Config().require_secret("apiToken"),
        opts=pulumi.ResourceOptions(additional_secret_outputs=["arn"]))
"""


def test_without_a_provider_a_secret_is_kept_as_a_digest_that_still_shows_a_change(fresh, tmp_path):
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "__main__.py").write_text(textwrap.dedent(DIGESTED))
    (tmp_path / "Pulumi.yaml").write_text("name: dig\nruntime: python\nmain: infra/\n")
    (tmp_path / "Pulumi.dig.yaml").write_text("config:\n  aws:region: eu-west-1\n")

    def up(token: str):
        overrides = {"dig:apiToken": token}
        return Engine(
            "dig",
            fresh.endpoint_url,
            state_dir=tmp_path / ".state",
            root=tmp_path,
            overrides=overrides,
            policy_pack=False,
        ).up()

    first = up("first-token-value")
    state = (tmp_path / ".state" / "dig.json").read_text()
    arn = fresh.client("sns").list_topics()["Topics"][0]["TopicArn"]
    # The secret input and the output the program declared secret are not in the state in clear
    # (the id stays readable, as in Pulumi's own state: an id is never secret).
    assert "first-token-value" not in state
    (recorded,) = json.loads(state)["resources"]
    assert set(recorded["outputs"]["arn"]) == {"4dabf18193072939515e22adb298388d", "salt", "sha256"}
    assert [o.op for o in first.operations] == ["create"]
    assert [o.op for o in up("first-token-value").operations] == ["same"]
    changed = up("second-token-value")
    assert [(o.op, o.changed) for o in changed.operations] == [("update", ["displayName"])]
    attributes = fresh.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["DisplayName"] == "second-token-value"
