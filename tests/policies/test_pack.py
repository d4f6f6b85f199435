"""The policy pack as the Pulumi CLI runs it: `pulumi up --policy-pack policies` from CI.

The CLI starts ``policies/__main__.py`` with the virtualenv PulumiPolicy.yaml names, reads the
port the analyzer prints and talks to it over Pulumi's analyzer gRPC protocol. These tests do
the same with the SDK's own generated stubs: the pack lists every policy as mandatory and
refuses a resource breaking one, so what CI enforces is what the local engine enforces.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.invariants import PACK_NAME, POLICY_NAMES

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policies"


@pytest.fixture(scope="module")
def analyzer():
    # As the CLI: the pack's folder as working directory, its entry point run by Python.
    process = subprocess.Popen(
        [sys.executable, "-u", str(PACK / "__main__.py")], cwd=PACK, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(process.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_pack_is_a_python_pack_running_in_the_projects_virtualenv():
    settings = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert settings["runtime"]["name"] == "python"
    # The virtualenv `make setup` creates (the Makefile's VENV), relative to the pack's folder.
    makefile = (ROOT / "Makefile").read_text()
    assert "VENV := .venv" in makefile
    assert (PACK / settings["runtime"]["options"]["virtualenv"]).resolve() == ROOT / ".venv"


@pytest.mark.parametrize("script", ["preview", "deploy"])
def test_ci_previews_and_deploys_run_the_pack(script):
    text = (ROOT / ".ci" / script).read_text()
    command = "pulumi preview" if script == "preview" else "pulumi up"
    [line] = [line for line in text.splitlines() if line.startswith(command)]
    assert "--policy-pack policies" in line
    # The scripts run from the repository root, where the pack's folder is.
    assert 'cd "$(dirname "$0")/.."' in text


def test_the_analyzer_lists_every_policy_as_mandatory(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    assert {p.name for p in info.policies} == set(POLICY_NAMES)
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}


def test_the_analyzer_refuses_a_key_that_does_not_rotate_by_policy_name(analyzer):
    properties = struct_pb2.Struct()
    properties.update({"enableKeyRotation": False, "description": "a key"})
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type="aws:kms/key:Key",
            properties=properties,
            urn="urn:pulumi:dev::p::aws:kms/key:Key::k",
            name="k",
        )
    )
    refused = [(d.policyName, d.enforcementLevel) for d in response.diagnostics]
    assert ("kms-key-rotation", analyzer_pb2.MANDATORY) in refused
    assert all(d.policyName != "kms-key-rotation" or "k" in d.message for d in response.diagnostics)
