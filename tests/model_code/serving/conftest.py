"""Fixtures for the model server tests: stand-in model folders and real server processes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest

from model_code.serving.process import ServerProcess
from model_code.training import artifact


@pytest.fixture(scope="module")
def stand_in_dir(model_dir, tmp_path_factory) -> Callable[[object], str]:
    """A model folder like ``model_dir`` whose pipeline is the given stand-in."""
    bundle = artifact.load(model_dir)

    def save(pipeline: object) -> str:
        folder = tmp_path_factory.mktemp("stand-in")
        return str(artifact.save(folder, dataclasses.replace(bundle, pipeline=pipeline)))

    return save


@pytest.fixture(scope="module")
def spawn() -> Iterator[Callable[..., ServerProcess]]:
    """Start ``mlops serve`` processes on free 127.0.0.1 ports; every one is stopped at the end."""
    started: list[ServerProcess] = []

    def start(model_dir: str, **options) -> ServerProcess:
        server = ServerProcess(model_dir, host="127.0.0.1", port=0, **options)
        started.append(server)
        return server.start(timeout=60)

    yield start
    for server in started:
        server.close()
