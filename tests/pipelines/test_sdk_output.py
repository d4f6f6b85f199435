"""What a user sees while the program builds the pipelines: only what matters."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

from pipelines.sdk_output import POPPING_LOGGERS, quiet_build
from tests.infra.harness import ROOT

PROGRAM = "from tests.infra.harness import run_stack; run_stack('dev')"


def test_running_the_program_prints_nothing_about_what_it_builds_deliberately():
    # A fresh interpreter: definitions are cached per process, and the SDK configures logging
    # on first import, as it does under `pulumi up`.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    output = run.stdout + run.stderr
    for noise in ("Popping out", "PipelineSession", "INFO:sagemaker", "Applied value from config"):
        assert noise not in output
    assert output.strip() == ""


def test_other_sdk_warnings_still_show(caplog):
    logger = logging.getLogger(POPPING_LOGGERS[0])
    with caplog.at_level(logging.WARNING), quiet_build():
        logger.warning("Popping out 'ProcessingJobName' from the pipeline definition by default")
        logger.warning("The role cannot be assumed")
    assert [r.getMessage() for r in caplog.records] == ["The role cannot be assumed"]


def test_logging_and_warnings_are_as_before_after_the_build():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with quiet_build():
        logging.basicConfig(level=logging.INFO, force=False)  # what importing the SDK does
        root.addHandler(logging.StreamHandler())
    assert (root.handlers, root.level) == (handlers, level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("Running within a PipelineSession, there will be No Wait", UserWarning, stacklevel=1)
    assert len(caught) == 1
