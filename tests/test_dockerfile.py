"""The project image, checked by reading the Dockerfile (there is no Docker engine here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
ENTRY_POINTS = ("train", "serve")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined and comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            parsed.append((keyword.upper(), " ".join(args.split())))
    return parsed


def args_of(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def test_base_image_is_pinned_to_an_exact_version_and_digest():
    [image] = args_of("FROM")
    name, _, digest = image.partition("@")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", name), name
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest


def test_jobs_run_as_root_so_they_can_write_sagemakers_mounted_volumes():
    # SageMaker mounts root-owned volumes over /opt/ml; a USER would leave jobs unable to
    # write their model, outputs and failure reason there.
    users = args_of("USER")
    assert users == [] or users[-1] in ("root", "0", "0:0"), f"the image ends as USER {users[-1]}"
    assert not [args for args in args_of("RUN") if "chown" in args and "/opt/ml" in args]


def test_the_dockerfile_explains_why_it_runs_as_root_with_the_evidence():
    comments = " ".join(
        ln.lstrip("# ").strip() for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("#")
    )
    assert "runs as root" in comments
    assert "/opt/ml" in comments and "aws/sagemaker-python-sdk#4325" in comments


def test_dependencies_come_from_the_runtime_lock_without_cache():
    assert any("requirements.lock" in args for args in args_of("COPY"))
    assert "pip install --no-cache-dir -r requirements.lock" in args_of("RUN")


def test_project_is_installed_without_resolving_dependencies_again():
    assert any("pip install --no-cache-dir --no-deps ." in args for args in args_of("RUN"))


def test_the_image_holds_only_the_code_containers_run():
    """model_code/ alone: the operator's tools, the Pulumi program and the local cloud stay out."""
    copied = {src for args in args_of("COPY") for src in args.split()[:-1] if not src.startswith("--")}
    packages = {
        src.rstrip("/") for src in copied if (ROOT / src).is_dir() and (ROOT / src / "__init__.py").exists()
    }
    assert packages == {"model_code"}
    # pip writes the `mlops` console script for the project; its package is not in the image
    assert any("rm /usr/local/bin/mlops" in args for args in args_of("RUN"))


def test_train_and_serve_are_on_the_path():
    [copy] = [args for args in args_of("COPY") if "docker/train" in args]
    assert copy.split()[-1] == "/usr/local/bin/"
    assert "docker/serve" in copy


def test_has_no_entrypoint_so_sagemaker_can_pass_train_or_serve():
    assert args_of("ENTRYPOINT") == []


def test_exposes_sagemakers_port_and_unbuffered_output():
    assert "8080" in args_of("EXPOSE")
    assert any("PYTHONUNBUFFERED=1" in args for args in args_of("ENV"))


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_script_is_executable(name):
    script = ROOT / "docker" / name
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/bin/sh\n")
    assert f"python -m model_code.entrypoints {name}" in script.read_text()


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_script_reaches_the_command(name):
    # The image's python is on PATH; here the virtualenv's stands in for it.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(ROOT / "docker" / name), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    ignored = {ln.strip().rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".state", ".git", "tests", "benchmarks"} <= ignored


def test_the_commit_is_declared_after_the_dependency_layer():
    # .ci/build passes CODE_VERSION per commit; an ARG invalidates the cache of every later
    # instruction, so declared before `pip install -r requirements.lock` it would rebuild the
    # slow dependency layer on every commit, and the layer cache would never hit.
    steps = instructions()
    code_version = steps.index(("ARG", "CODE_VERSION=unknown"))
    lock = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "requirements.lock" in a)
    assert code_version > lock
    assert ("ENV", "MLOPS_CODE_VERSION=$CODE_VERSION") in steps[code_version:]
