"""The project's own files: what a fresh clone and CI rely on."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_SCHEMA = ROOT.parent / "shared" / "schemas" / "pulumi-project.schema.json"
VENDORED_SCHEMA = ROOT / "tests" / "data" / "pulumi-project.schema.json"


def test_pulumi_yaml_validates_against_the_project_schema():
    schema_path = SHARED_SCHEMA if SHARED_SCHEMA.exists() else VENDORED_SCHEMA
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    jsonschema.validate(project, json.loads(schema_path.read_text()))
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_vendored_pulumi_schema_matches_the_shared_one():
    if not SHARED_SCHEMA.exists():
        pytest.skip("no ../shared/schemas beside this clone")
    assert VENDORED_SCHEMA.read_text() == SHARED_SCHEMA.read_text()


def test_major_versions_are_pinned():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, major in [
        ("pulumi", 3),
        ("pulumi-aws", 7),
        ("sagemaker", 3),
        ("great-expectations", 1),
        ("scikit-learn", 1),
        ("pandas", 3),
    ]:
        spec = next(d for d in deps if d.split(">")[0].split("<")[0].split("=")[0] == name)
        assert f"<{major + 1}" in spec, spec
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(d.startswith("moto") and "<6" in d for d in dev)


def test_lock_files_pin_every_package_exactly():
    for lock in ("requirements.lock", "requirements-dev.lock"):
        lines = [ln for ln in (ROOT / lock).read_text().splitlines() if ln and not ln.startswith((" ", "#"))]
        assert lines, lock
        assert all("==" in ln for ln in lines), [ln for ln in lines if "==" not in ln][:3]


def test_runtime_and_dev_locks_agree_on_shared_packages():
    def pins(lock):
        return dict(
            ln.split("==")
            for ln in (ROOT / lock).read_text().splitlines()
            if "==" in ln and not ln.startswith(" ")
        )

    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {k: v for k, v in runtime.items() if dev.get(k) != v} == {}


def test_installed_versions_match_the_lock():
    from importlib.metadata import version

    pins = dict(
        ln.split("==")
        for ln in (ROOT / "requirements-dev.lock").read_text().splitlines()
        if "==" in ln and not ln.startswith(" ")
    )
    for name in ("pulumi", "pulumi-aws", "sagemaker", "great-expectations", "moto", "pandas", "scikit-learn"):
        assert version(name) == pins[name], name


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_opens_with_the_two_command_quickstart():
    text = (ROOT / "README.md").read_text()
    quickstart = text[: text.index("\n## ", text.index("## Quickstart") + 1)]
    assert "make local" in quickstart and "make test" in quickstart


def test_mlops_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "generate-data",
        "validate",
        "train",
        "evaluate",
        "serve",
        "drift",
        "experiments",
        "local",
    ):
        assert command in out


def test_unknown_command_is_an_error_naming_it():
    proc = subprocess.run([sys.executable, "-m", "mlops.cli", "deploy"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown command 'deploy'" in proc.stderr
