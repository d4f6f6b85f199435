"""The image's train and serve commands: what SageMaker's `docker run IMAGE train|serve` runs."""

from __future__ import annotations

import pytest

from model_code import entrypoints
from model_code.serving import serve
from model_code.training import train


@pytest.fixture
def commands(monkeypatch):
    """The argv the training and serving commands would have received, each named."""
    seen: list[list[str]] = []
    monkeypatch.setattr(train, "main", lambda argv: seen.append(["train", *argv]) or 0)
    monkeypatch.setattr(serve, "main", lambda argv: seen.append(["serve", *argv]) or 0)
    return seen


def test_train_runs_mlops_train_with_the_given_options(commands):
    assert entrypoints.main(["train", "--selection", "pca"]) == 0
    assert commands == [["train", "--selection", "pca"]]


def test_serve_defaults_to_sagemakers_model_dir_port_and_all_interfaces(monkeypatch, commands):
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    monkeypatch.delenv("SAGEMAKER_BIND_TO_PORT", raising=False)
    entrypoints.main(["serve"])
    assert commands == [["serve", "--model-dir", "/opt/ml/model", "--port", "8080", "--host", "0.0.0.0"]]


def test_serve_uses_the_model_dir_sagemaker_names(monkeypatch, commands):
    monkeypatch.setenv("SM_MODEL_DIR", "/mnt/model")
    entrypoints.serve([])
    assert commands[0][commands[0].index("--model-dir") + 1] == "/mnt/model"


def test_serve_uses_the_port_sagemaker_binds_in_an_inference_pipeline(monkeypatch, commands):
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9001")
    entrypoints.serve([])
    assert commands[0][commands[0].index("--port") + 1] == "9001"


def test_serve_options_given_after_the_defaults_win(commands):
    entrypoints.serve(["--workers", "3", "--port", "9999"])
    assert commands[0][-4:] == ["--workers", "3", "--port", "9999"]


def test_unknown_command_is_a_usage_error(capsys):
    assert entrypoints.main(["predict"]) == 2
    assert "train|serve" in capsys.readouterr().err
