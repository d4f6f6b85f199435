"""The ``mlops`` command as a careful tool: plain-text help, unknown stacks refused before anything starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.cli import COMMANDS
from mlops.cli import main as mlops

ROOT = Path(__file__).resolve().parents[2]
# reStructuredText roles and inline literals: what a docstring says, not what a terminal shows.
MARKUP = re.compile(r"``|:(mod|func|class|meth|data|attr):`")
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("command", [*COMMANDS, "local deploy"])
def test_every_help_text_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as exited:
        mlops([*command.split(), "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mlops")
    assert not MARKUP.search(out), out


def test_the_command_list_is_plain_text(capsys):
    assert mlops(["--help"]) == 0
    assert not MARKUP.search(capsys.readouterr().out)


@pytest.mark.parametrize("command", ["status", "dashboard", "local"])
def test_an_unknown_stack_is_refused_before_anything_starts_listing_the_stacks(command, tmp_path):
    # A subprocess: `mlops local` would otherwise start an emulator; the refusal must come first
    # and fast, with no credentials asked for.
    args = [sys.executable, "-m", "mlops.cli", command, "--stack", "prd"]
    args += ["--out", str(tmp_path)] if command == "dashboard" else []
    result = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--stack: 'prd' is not a stack of this project" in result.stderr
    assert f"expected one of: {', '.join(STACKS)}" in result.stderr
    assert "credentials" not in result.stderr.lower() and "emulator" not in result.stdout.lower()
