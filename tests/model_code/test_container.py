"""The failure contract: each job type writes its reason to the one file SageMaker reads for it."""

from __future__ import annotations

import pytest

from model_code import container


@pytest.fixture
def opt_ml(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path))
    return tmp_path


def test_a_processing_job_writes_its_reason_as_the_exit_message(opt_ml):
    assert container.fail("no rows to validate", job=container.PROCESSING) == 1

    assert (opt_ml / "output" / "message").read_text() == "no rows to validate"
    assert not (opt_ml / "output" / "failure").exists()


def test_a_training_job_writes_its_reason_as_the_failure_reason(opt_ml):
    assert container.fail("train: no rows", job=container.TRAINING) == 1

    assert (opt_ml / "output" / "failure").read_text() == "train: no rows"
    assert not (opt_ml / "output" / "message").exists()


def test_the_reason_also_reaches_stderr(opt_ml, capsys):
    container.fail("bad data", job=container.PROCESSING)

    assert capsys.readouterr().err == "error: bad data\n"


def test_an_unknown_job_type_is_refused_naming_the_allowed_ones(opt_ml):
    with pytest.raises(ValueError, match="job: expected one of processing, training, got 'transform'"):
        container.fail("x", job="transform")


def test_without_the_local_variable_the_files_are_sagemakers_own(monkeypatch):
    monkeypatch.delenv("MLOPS_OPT_ML", raising=False)

    assert str(container.reason_file(container.PROCESSING)) == "/opt/ml/output/message"
    assert str(container.reason_file(container.TRAINING)) == "/opt/ml/output/failure"
