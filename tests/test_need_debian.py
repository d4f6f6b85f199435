"""``make test`` sets itself up: Debian's chromium and rsync installed first when missing and allowed,
or a stop naming the one command to run (``.ci/need-debian``), before any lint or test runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "need-debian"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(
    tmp_path: Path, *, uid: int, sudo: bool | None, chromium: bool = False, rsync: bool = False
) -> tuple[int, str, str]:
    """The script with only fakes on PATH: ``id``, ``apt-get`` (records its arguments), ``sudo``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    _fake(bin_dir, "id", f"echo {uid}")
    _fake(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}')
    if sudo is not None:
        # sudo -n true: succeeds only without a password; otherwise runs the command.
        check = "exit 0" if sudo else "exit 1"
        _fake(bin_dir, "sudo", f'if [ "$1" = -n ]; then {check}; fi\necho "sudo $*" >> {log}\n"$@"')
    for name, present in (("chromium", chromium), ("rsync", rsync)):
        if present:
            _fake(bin_dir, name, "exit 0")
    sh = shutil.which("sh")
    result = subprocess.run(
        [sh, str(SCRIPT)],
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, log.read_text() if log.exists() else "", result.stderr


def test_nothing_is_installed_when_chromium_and_rsync_are_there(tmp_path):
    assert _run(tmp_path, uid=1000, sudo=False, chromium=True, rsync=True) == (0, "", "")


def test_root_installs_debians_chromium_and_rsync(tmp_path):
    code, calls, _ = _run(tmp_path, uid=0, sudo=None)
    assert code == 0
    assert "apt-get install -y -qq chromium rsync" in calls


def test_only_what_is_missing_is_installed(tmp_path):
    code, calls, _ = _run(tmp_path, uid=0, sudo=None, chromium=True)
    assert code == 0
    assert calls.splitlines()[-1] == "apt-get install -y -qq rsync"


def test_a_user_with_passwordless_sudo_installs_them_through_sudo(tmp_path):
    code, calls, _ = _run(tmp_path, uid=1000, sudo=True)
    assert code == 0
    assert "sudo apt-get install -y -qq chromium rsync" in calls


def test_a_user_who_cannot_install_gets_the_one_command_and_nothing_runs(tmp_path):
    code, calls, stderr = _run(tmp_path, uid=1000, sudo=False, rsync=True)
    assert code == 1 and calls == ""
    assert "sudo apt-get install -y chromium\n" in stderr


def test_make_test_checks_debian_packages_before_it_lints_or_tests():
    plan = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "MAKEFLAGS": ""},
    ).stdout.splitlines()  # fmt: skip
    first = next(n for n, line in enumerate(plan) if "need-debian" in line)
    assert all(first < n for n, line in enumerate(plan) if "ruff" in line or "pytest" in line)


def test_ci_runs_make_test():
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
