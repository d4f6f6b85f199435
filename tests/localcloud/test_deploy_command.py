"""What the local deploy command prints: the plan a user reads before and after `pulumi up`.

Each row names the operation, the type, the logical and the physical name (the auto-name
when the program set none); deletes are listed newest first, in the order they run; the last
line counts the operations, the write requests this deploy made and the seconds it took.
"""

from __future__ import annotations

import re
import time

from localcloud import cli
from tests.localcloud import scratch

PROGRAM = """
import pulumi
import pulumi_aws as aws

config = pulumi.Config("tiny")
if config.get_bool("declared") is not False:
    # Declared in this order on purpose: the names sort the other way round.
    aws.sns.Topic("b-topic")
    aws.sns.Topic("a-topic")
pulumi.export("declared", config.get_bool("declared") is not False)
"""


def _deploy(root, endpoint_url, monkeypatch, capsys, *extra: str) -> tuple[int, str, float]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    argv = ["--stack", scratch.STACK, "--project", str(root), "--state-dir", str(root / ".state")]
    started = time.perf_counter()
    code = cli.main([*argv, "--no-policy-pack", *extra])
    return code, capsys.readouterr().out, time.perf_counter() - started


def _rows(out: str) -> list[list[str]]:
    """The plan's table rows, each as its cells."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in out.splitlines()
        if line.startswith("│") and "operation" not in line
    ]


def _summary(out: str) -> tuple[str, int, float]:
    line = next(line for line in out.splitlines() if "write calls" in line)
    counts, writes, seconds = re.fullmatch(r"(.*); (\d+) write calls; ([\d.]+) s", line.strip()).groups()
    return counts, int(writes), float(seconds)


def test_a_deploy_lists_what_it_made_with_auto_names_and_counts_its_writes(
    tmp_path, fresh, monkeypatch, capsys
):
    root = scratch.project(tmp_path, PROGRAM)
    code, out, wall = _deploy(root, fresh.endpoint_url, monkeypatch, capsys)
    assert code == 0
    assert "Deployed: stack tiny" in out
    topics = {t["TopicArn"].rsplit(":", 1)[-1] for t in fresh.client("sns").list_topics()["Topics"]}
    rows = _rows(out)
    assert sorted(row[:3] for row in rows) == [
        ["create", "aws:sns/topic:Topic", "a-topic"],
        ["create", "aws:sns/topic:Topic", "b-topic"],
    ]
    # The physical name is the provider's auto-name: the logical name and seven characters.
    assert {row[3] for row in rows} == topics
    assert all(re.fullmatch(rf"{row[2]}-[0-9a-f]{{7}}", row[3]) for row in rows)
    counts, writes, seconds = _summary(out)
    assert counts == "2 create" and writes >= 2 and 0 <= seconds <= wall + 0.05  # printed to 0.1 s

    code, out, _ = _deploy(root, fresh.endpoint_url, monkeypatch, capsys)
    assert code == 0 and _rows(out) == []  # unchanged resources are not listed
    assert _summary(out)[:2] == ("2 same", 0)


def test_a_preview_lists_the_deletes_newest_first_with_their_physical_names(
    tmp_path, fresh, monkeypatch, capsys
):
    root = scratch.project(tmp_path, PROGRAM)
    _deploy(root, fresh.endpoint_url, monkeypatch, capsys)
    recorded = {r.name: r.auto_name for r in scratch.state(root).resources.values()}

    code, out, _ = _deploy(
        root, fresh.endpoint_url, monkeypatch, capsys, "--preview", "--set", "declared=false"
    )
    assert code == 0 and "Preview: stack tiny" in out
    assert [row[:4] for row in _rows(out)] == [
        ["delete", "aws:sns/topic:Topic", "a-topic", recorded["a-topic"]],
        ["delete", "aws:sns/topic:Topic", "b-topic", recorded["b-topic"]],
    ]
    assert _summary(out)[:2] == ("2 delete", 0)
    assert len(fresh.client("sns").list_topics()["Topics"]) == 2

    code, out, _ = _deploy(root, fresh.endpoint_url, monkeypatch, capsys, "--destroy")
    assert code == 0
    assert [row[2] for row in _rows(out)] == ["a-topic", "b-topic"]
    assert fresh.client("sns").list_topics()["Topics"] == []


NAMED_ROLE = """
import json
import pulumi
import pulumi_aws as aws

trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
role = aws.iam.Role("app-role", name="app-role", description=pulumi.Config("tiny").get("about") or "first",
    assume_role_policy=trust)
pulumi.export("roleArn", role.arn)
"""


def test_a_preview_names_what_it_would_make_and_keeps_known_outputs_through_an_update(tmp_path, fresh):
    root = scratch.project(tmp_path, NAMED_ROLE)
    first = scratch.engine(root, fresh.endpoint_url).up(preview=True)
    # The name the program set is the physical name already; a create lists no changed inputs.
    assert [(o.op, o.physical, o.changed) for o in first.operations] == [("create", "app-role", [])]
    assert "roleArn" not in first.outputs  # not known before AWS assigns it (Pulumi: output<string>)
    deployed = scratch.engine(root, fresh.endpoint_url).up()
    arn = fresh.client("iam").get_role(RoleName="app-role")["Role"]["Arn"]
    assert deployed.outputs == {"roleArn": arn}

    # An update in place keeps the role's ARN: the preview shows it, known.
    plan = scratch.engine(root, fresh.endpoint_url, about="second").up(preview=True)
    assert [(o.op, o.physical, o.changed) for o in plan.operations] == [
        ("update", "app-role", ["description"])
    ]
    assert plan.outputs == {"roleArn": arn}
