"""Warm starts: a step's module forked from the zygote behaves as the fresh process it replaces."""

from __future__ import annotations

import json
import os
import sys
import time

from pipelines.local import warm

PROBE = "tests.pipelines.warm_probe"


def test_a_warm_step_sees_only_its_environment_its_arguments_and_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLER_SECRET", "from-the-shell")
    log = tmp_path / "algo-1.log"
    code = warm.run(PROBE, ["3", "0"], {"MARKER": "step", "PATH": os.environ["PATH"]}, tmp_path, log, 60)
    assert code == 3
    seen = json.loads(log.read_text().splitlines()[0])
    assert seen["argv"] == ["3", "0"] and seen["cwd"] == str(tmp_path)
    assert "MARKER" in seen["environ"] and "CALLER_SECRET" not in seen["environ"]


def test_a_warm_step_past_its_timeout_is_killed(tmp_path):
    started = time.monotonic()
    assert warm.run(PROBE, ["0", "30"], {}, tmp_path, tmp_path / "log", 1) is None
    assert time.monotonic() - started < 20


def test_only_python_module_commands_start_warm(monkeypatch):
    assert (
        warm.module_of([sys.executable, "-m", "model_code.cli", "train"], sys.executable) == "model_code.cli"
    )
    assert warm.module_of([sys.executable, "-c", "print(1)"], sys.executable) is None
    assert warm.module_of(["/bin/sh", "-m", "x"], sys.executable) is None
    monkeypatch.setenv(warm.COLD, "1")
    assert warm.module_of([sys.executable, "-m", "model_code.cli"], sys.executable) is None
