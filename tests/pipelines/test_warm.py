"""Warm starts: a step's module forked from the zygote behaves as the fresh process it replaces."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil

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


def test_a_warm_step_whose_work_ran_in_worker_processes_ends(tmp_path):
    """The training search fits in loky workers: the step ends once its module returns."""
    log = tmp_path / "algo-1.log"
    code = warm.run("tests.pipelines.warm_pool_probe", [], {"PATH": os.environ["PATH"]}, tmp_path, log, 60)
    assert code == 0, log.read_text()
    assert log.read_text().split()[-1] == "14" and "failed with traceback" not in log.read_text()


def test_a_warm_step_past_its_timeout_is_killed(tmp_path):
    started = time.monotonic()
    assert warm.run(PROBE, ["0", "30"], {}, tmp_path, tmp_path / "log", 1) is None
    assert time.monotonic() - started < 20


def test_only_python_module_commands_start_warm(monkeypatch):
    assert warm.module_of([sys.executable, "-m", "mlops.cli", "train"], sys.executable) == "mlops.cli"
    assert warm.module_of([sys.executable, "-c", "print(1)"], sys.executable) is None
    assert warm.module_of(["/bin/sh", "-m", "x"], sys.executable) is None
    monkeypatch.setenv(warm.COLD, "1")
    assert warm.module_of([sys.executable, "-m", "mlops.cli"], sys.executable) is None


def test_a_spawned_process_has_the_handed_descriptor_and_is_handled_like_a_popen(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    log = tmp_path / "server.log"
    try:
        process = warm.spawn(PROBE, ["0", "30", "{fd}"], {}, tmp_path, log, listener.fileno())
    finally:
        listener.close()  # the spawned process holds its own copy
    assert process.pid > 0 and process.poll() is None
    deadline = time.monotonic() + 20
    while not log.exists() or not log.read_text():
        assert time.monotonic() < deadline, "the spawned probe printed nothing"
        time.sleep(0.05)
    seen = json.loads(log.read_text().splitlines()[0])
    ((fd, handed),) = seen["fds"].items()
    assert handed and seen["argv"][:2] == ["0", "30"] and fd.isdigit()
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == -signal.SIGTERM == process.returncode


def test_a_spawned_process_is_stopped_when_its_caller_is_killed(tmp_path):
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from pipelines.local import warm\n"
            f"p = warm.spawn({PROBE!r}, ['0', '600'], {{}}, Path(sys.argv[1]), Path(sys.argv[1]) / 'log')\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    spawned = psutil.Process(int(caller.stdout.readline()))
    try:
        caller.kill()  # SIGKILL: no cleanup of its own runs
        caller.wait(10)
        spawned.wait(timeout=30)  # its monitor saw the connection close and sent SIGTERM
    finally:
        if spawned.is_running():
            spawned.kill()


def test_signalling_a_spawned_process_that_has_just_ended_is_not_an_error():
    # Its monitor has reaped it but its status has not arrived yet: as Popen, nothing to signal.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    ours, monitors = socket.socketpair()
    process = warm.WarmProcess(ours)
    process.pid = ended.pid
    try:
        process.send_signal(signal.SIGTERM)
        assert process.poll() is None
        monitors.sendall(b"0\n")
        assert process.wait(5) == 0
    finally:
        monitors.close()
