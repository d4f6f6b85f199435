"""No job calls a command its image lacks.

``.ci/images.yaml`` lists what each job image provides, read from the upstream file that
builds it. Every command of every job's script, and of the ``.ci/`` scripts it runs (followed
transitively), must be there, or put on the PATH by a script of the job (``adds``). The jobs
are read as gitlab-ci-local expands them (``extends`` merged, as GitLab does).
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.ci.shell import commands
from tests.test_gitlab_ci import ROOT, expanded, repo  # noqa: F401 - fixtures

MANIFEST = yaml.safe_load((ROOT / ".ci" / "images.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
JOBS = [name for name, job in CONFIG.items() if isinstance(job, dict) and "stage" in job]
_SCRIPT_CALL = re.compile(r"(?<![\w/])\.ci/([\w-]+)(?![\w.])")


def image_variable(job: dict) -> str:
    image = job["image"]["name"] if isinstance(job["image"], dict) else job["image"]
    assert image.startswith("$"), f"image {image!r}: name it through a variable listed in .ci/images.yaml"
    return image.lstrip("$").strip("{}")


def scripts_run(text: str, seen: set[str] | None = None) -> set[str]:
    """The .ci/ scripts ``text`` runs, and the ones they run."""
    seen = set() if seen is None else seen
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for name in _SCRIPT_CALL.findall(code):
        if name not in seen:
            seen.add(name)
            scripts_run((ROOT / ".ci" / name).read_text(), seen)
    return seen


def missing_commands(name: str, job: dict) -> set[str]:
    lines = [*(job.get("before_script") or []), *(job.get("script") or [])]
    text = "\n".join(lines)
    scripts = sorted(scripts_run(text))
    called = commands(text)
    for script in scripts:
        called |= commands((ROOT / ".ci" / script).read_text())
    adds = MANIFEST["adds"]
    provided = set(MANIFEST["images"][image_variable(job)]["provides"])
    provided |= set(adds.get(f".gitlab-ci.yml:{name}", []))
    for script in scripts:
        provided |= set(adds.get(f".ci/{script}", []))
    return called - provided


def test_every_job_image_is_listed_with_its_upstream_source(expanded):  # noqa: F811
    for name in JOBS:
        variable = image_variable(expanded[name])
        assert variable in MANIFEST["images"], f"{name}: {variable} is not in .ci/images.yaml"
        assert MANIFEST["images"][variable]["source"].startswith("https://github.com/"), variable
        assert CONFIG["variables"][variable].split(":")[-1] not in ("", "latest"), f"{variable} is not pinned"


@pytest.mark.parametrize("name", JOBS)
def test_every_command_a_job_calls_is_in_its_image(expanded, name):  # noqa: F811
    job = expanded[name]
    missing = missing_commands(name, job)
    assert not missing, (
        f"{name} runs on {image_variable(job)}, which lacks {sorted(missing)} (.ci/images.yaml)"
    )


def test_the_pulumi_image_has_no_make():
    # pulumi-docker-containers' python image is python:3.11-slim plus curl, git and CA certificates.
    assert "make" not in MANIFEST["images"]["PULUMI_IMAGE"]["provides"]
