"""The diff, the auto-naming and the shape conversion, without an emulator."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.rpc import UNKNOWN

from localcloud.state import ResourceState, State, decide
from localcloud.translations import lookup
from localcloud.translations.base import DeployError, ShapeError, auto_name, shaped

MODEL = lookup("aws:sagemaker/model:Model")
ALARM = lookup("aws:cloudwatch/metricAlarm:MetricAlarm")


def _recorded(inputs):
    return ResourceState("urn:x", "t", "n", "id", inputs, {"arn": "a"})


def test_unchanged_inputs_mean_no_operation():
    assert decide(ALARM, _recorded({"threshold": 1.0, "name": "a"}), {"name": "a", "threshold": 1.0}) == (
        "same",
        set(),
    )


def test_a_force_new_input_replaces_and_another_updates():
    old = _recorded({"name": "m", "primaryContainer": {"modelPackageName": "arn:1"}, "tags": {"a": "1"}})
    assert decide(MODEL, old, {**old.inputs, "primaryContainer": {"modelPackageName": "arn:2"}}) == (
        "replace",
        {"primaryContainer"},
    )
    assert decide(ALARM, _recorded({"name": "a", "threshold": 1.0}), {"name": "a", "threshold": 2.0}) == (
        "update",
        {"threshold"},
    )


def test_an_input_added_or_removed_is_a_change():
    old = _recorded({"name": "a", "threshold": 1.0})
    described = {"name": "a", "threshold": 1.0, "alarmDescription": "p99 latency"}
    assert decide(ALARM, old, described) == ("update", {"alarmDescription"})
    assert decide(ALARM, _recorded(described), {"name": "a", "threshold": 1.0}) == (
        "update",
        {"alarmDescription"},
    )


def test_a_value_a_preview_does_not_know_yet_is_a_change_at_any_depth():
    # What another resource computes arrives as the SDK's unknown; the state never holds one.
    old = _recorded({"name": "a", "threshold": 1.0, "alarmActions": ["arn:topic"], "dimensions": {"x": "1"}})
    for changed, value in [
        ("threshold", UNKNOWN),
        ("alarmActions", ["arn:topic", UNKNOWN]),
        ("dimensions", {"x": UNKNOWN}),
    ]:
        assert decide(ALARM, old, {**old.inputs, changed: value}) == ("update", {changed})
    assert decide(ALARM, old, {**old.inputs, "name": UNKNOWN}) == ("replace", {"name"})


def test_a_resource_not_recorded_is_created():
    assert decide(ALARM, None, {"name": "a"})[0] == "create"


def test_auto_names_are_the_logical_name_and_seven_characters_stable_per_seed():
    name = auto_name("guard-policy", "local/urn/0")
    assert name.startswith("guard-policy-") and len(name) == len("guard-policy-") + 7
    assert auto_name("guard-policy", "local/urn/0") == name
    assert auto_name("guard-policy", "local/urn/1") != name
    assert len(auto_name("x" * 80, "seed", max_length=64)) == 64


def test_numbers_become_integers_where_the_api_says_so_and_keys_its_member_names():
    request = shaped(
        "cloudwatch",
        "PutMetricAlarm",
        {
            "AlarmName": "a",
            "evaluationPeriods": 5.0,
            "threshold": 0.5,
            "comparisonOperator": "GreaterThanThreshold",
        },
    )
    assert request == {
        "AlarmName": "a",
        "EvaluationPeriods": 5,
        "Threshold": 0.5,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    assert shaped(
        "s3",
        "PutBucketEncryption",
        {
            "Bucket": "b",
            "ServerSideEncryptionConfiguration": {
                "rules": [
                    {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "k"}}
                ]
            },
        },
    )["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": "k",
    }


def test_a_member_the_shape_lacks_or_a_fraction_for_an_integer_is_named():
    with pytest.raises(ShapeError, match="'bogus' is not a member of PutMetricAlarmInput"):
        shaped("cloudwatch", "PutMetricAlarm", {"AlarmName": "a", "bogus": 1})
    with pytest.raises(ShapeError, match=r"EvaluationPeriods: 2\.5 is not a whole number"):
        shaped("cloudwatch", "PutMetricAlarm", {"AlarmName": "a", "evaluationPeriods": 2.5})


def test_a_type_without_translation_is_named():
    with pytest.raises(DeployError, match="aws:ec2/vpc:Vpc: no translation"):
        lookup("aws:ec2/vpc:Vpc")


def test_the_state_file_round_trips(tmp_path):
    state = State("dev", {"urn:x": _recorded({"a": 1})}, {"bucket": "b"})
    state.save(tmp_path / "dev.json")
    assert State.load(tmp_path / "dev.json", "dev") == state


def test_the_state_file_names_its_stack_and_its_folders_are_made(tmp_path):
    # --state-dir may name folders that do not exist yet (a CI job's own scratch folder).
    path = tmp_path / "ci" / "job-7" / "dev.json"
    State("dev", {"urn:x": _recorded({"a": 1})}, {"bucket": "b"}, emulator="i-1").save(path)
    written = json.loads(path.read_text())
    assert (written["stack"], written["outputs"], written["emulator"]) == ("dev", {"bucket": "b"}, "i-1")
    assert [r["urn"] for r in written["resources"]] == ["urn:x"]
    assert [p.name for p in path.parent.iterdir()] == ["dev.json"]  # no temporary file left


def test_mlops_local_deploy_is_the_deploy_alone_and_plain_local_the_whole_scenario(capsys):
    from mlops import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["local", "deploy", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--stack" in out and "--preview" in out and "--destroy" in out and "--set" in out
    assert cli.COMMANDS["local"][0] == "localcloud.scenario.cli"


def test_an_asset_kind_without_translation_is_named():
    import pulumi

    from localcloud.state import normalize

    with pytest.raises(TypeError, match="RemoteAsset has no translation in the local cloud"):
        normalize({"code": pulumi.RemoteAsset("https://example.com/handler.py")})
