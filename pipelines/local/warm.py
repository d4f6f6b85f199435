"""Warm starts for the image's Python commands: forked from a process that has imported the libraries.

A processing or training step's own work is often a fraction of a second, but a fresh Python
process spends 2-5 s importing pandas, scikit-learn, SciPy and Great Expectations first, and a
lifecycle run starts about forty of them. So the executor runs ``python -m <module> ...`` (what
``IMAGE_COMMANDS`` expand to) through a zygote: a process of its own (:func:`serve`) that imports ``PRELOAD`` once, then forks one child per step. The child
becomes the container's process: the environment replaced by the step's clean one, the step's
working directory, standard output and error into the step's log, ``sys.argv`` set, and the
module run as ``__main__``; its exit status is the container's.

Only third-party code is shared: the project's modules are imported by each child after its
environment is set, so what they read at import time (``MLOPS_OPT_ML`` among it) is the step's.
Any other command, or ``MLOPS_COLD_STARTS=1`` in the executor's environment, runs as a fresh
subprocess. multiprocessing's fork server is not used because its children import the parent's
``__main__`` again, which runs any script that lacks the ``if __name__ == "__main__"`` guard.

Protocol, one UNIX-socket connection per step: the executor sends the request as one JSON
line (with a file descriptor beside it, for :func:`spawn`); a monitor process forked for it
forks the container, answers its pid, waits for it and answers its exit status. The zygote
exits when the executor's end of its stdin closes.

:func:`spawn` starts a long-running process the same way without waiting for it (the local
cloud's model servers): it returns a handle shaped like ``subprocess.Popen``'s, and the process
is sent SIGTERM when the connection closes because its caller has gone.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

# Third-party libraries the image's commands import, heaviest first.
PRELOAD = (
    "great_expectations",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "sklearn.metrics",
    "scipy.stats",
    "pandas",
    "pyarrow.parquet",
    "boto3",
    "yaml",
)
# AWS service models the steps' clients use, parsed once in the zygote.
SERVICES = ("s3", "sagemaker", "sagemaker-featurestore-runtime", "cloudwatch", "sts")
COLD = "MLOPS_COLD_STARTS"
# Steps run side by side on one machine, where the math libraries' thread pools (OpenMP in
# scikit-learn's gradient boosting, OpenBLAS), each sized to every core, would fight: on 2
# cores with one busy, a training step took 7.9 s with them and 5.0 s on one thread.
THREAD_LIMITS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
REPO_ROOT = Path(__file__).resolve().parents[2]
_lock = threading.Lock()
_zygote: _Zygote | None = None


def module_of(argv: list[str], python: str) -> str | None:
    """The module a ``<python> -m <module> ...`` command runs, or None for any other command."""
    if len(argv) >= 3 and argv[0] == python and argv[1] == "-m" and os.environ.get(COLD) != "1":
        return argv[2]
    return None


def prestart() -> None:
    """Start the zygote now, so its imports overlap other work (it starts on first use anyway)."""
    _started()


def run(
    module: str, args: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float | None
) -> int | None:
    """Run ``python -m module *args`` warm; its exit status, or None if killed after ``timeout`` s."""
    return _started().run(
        {"module": module, "args": args, "env": env, "cwd": str(cwd), "log": str(log)}, timeout
    )


def spawn(
    module: str, args: list[str], env: dict[str, str], cwd: Path, log: Path, pass_fd: int | None = None
) -> WarmProcess:
    """Start ``python -m module *args`` warm and return at once with its handle.

    ``pass_fd`` (a listening socket, say) is handed to the process; ``{fd}`` in ``args`` becomes
    its number there. Callers honour ``MLOPS_COLD_STARTS=1`` (:data:`COLD`) themselves.
    """
    request = {"module": module, "args": args, "env": env, "cwd": str(cwd), "log": str(log)}
    return _started().spawn(request, pass_fd)


def _started() -> _Zygote:
    global _zygote
    with _lock:
        if _zygote is None or _zygote.process.poll() is not None:
            _zygote = _Zygote()
        return _zygote


class _Zygote:
    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="mlops-warm-")
        self.address = str(Path(self._folder.name) / "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(64)
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from pipelines.local.warm import serve; serve({listener.fileno()})"],
            stdin=subprocess.PIPE,
            pass_fds=[listener.fileno()],
            cwd=REPO_ROOT,
            # The libraries read their thread limits when they load: here, in the zygote.
            env={**os.environ, **THREAD_LIMITS, "PYTHONPATH": path},
        )
        listener.close()
        atexit.register(self.close)

    def run(self, request: dict, timeout: float | None) -> int | None:
        process = self.spawn(request, None, watch_caller=False)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()  # its death
            return None

    def spawn(self, request: dict, pass_fd: int | None, watch_caller: bool = True) -> WarmProcess:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.address)
        socket.send_fds(
            conn,
            [json.dumps({**request, "watch_caller": watch_caller}).encode() + b"\n"],
            [pass_fd] if pass_fd is not None else [],
        )
        process = WarmProcess(conn)
        process.pid = process._line(None)
        return process

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()
        self._folder.cleanup()


class WarmProcess:
    """A process :func:`spawn` started, seen as ``subprocess.Popen`` shows one: ``pid``,
    ``poll()``, ``wait(timeout)``, ``send_signal(sig)``, ``returncode``."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn, self._buffer = conn, b""
        self.pid = 0
        self.returncode: int | None = None

    def _line(self, timeout: float | None) -> int | None:
        """The monitor's next answer, or None if none came within ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._conn], [], [], left)[0]:
                return None
            chunk = self._conn.recv(4096)
            if not chunk:
                raise RuntimeError("the warm-start zygote (pipelines.local.warm.serve) ended unexpectedly")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return int(line)

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._line(0)
            if self.returncode is not None:
                self._conn.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            code = self._line(timeout)
            if code is None:
                raise subprocess.TimeoutExpired(f"warm process {self.pid}", timeout)
            self.returncode = code
            self._conn.close()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        # One that has just ended is gone before its status arrives: nothing to signal (as Popen).
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


# -- the zygote's side -----------------------------------------------------------------------------


def serve(listener_fd: int) -> None:
    listener = socket.socket(fileno=listener_fd)
    for name in PRELOAD:
        importlib.import_module(name)
    from pipelines import service_models

    service_models.preload(*SERVICES)
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready:  # the executor closed its end, or ended: so does the zygote
            return
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            _monitor(conn)
        conn.close()
        while True:  # reap the monitors that have answered
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def _monitor(conn: socket.socket) -> None:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 1)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:
            os._exit(1)
        data += more
    request = json.loads(data)
    watch_caller = request.pop("watch_caller", False)
    if fds:
        request["args"] = [a.replace("{fd}", str(fds[0])) for a in request["args"]]
    pid = os.fork()
    if pid == 0:
        conn.close()
        _become_container(**request)
    for fd in fds:
        os.close(fd)  # the container holds it now
    conn.sendall(f"{pid}\n".encode())
    ended = threading.Event()
    if watch_caller:
        threading.Thread(target=_stop_when_caller_goes, args=(conn, pid, ended), daemon=True).start()
    _, status = os.waitpid(pid, 0)
    ended.set()
    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    os._exit(0)


def _stop_when_caller_goes(conn: socket.socket, pid: int, ended: threading.Event) -> None:
    """SIGTERM the spawned process once its caller's end of the connection closes."""
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    if not ended.is_set():
        os.kill(pid, signal.SIGTERM)


def _become_container(module: str, args: list[str], env: dict[str, str], cwd: str, log: str) -> None:
    os.setsid()  # its own process group, as a container's processes are their own
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(null)
    # Line-buffered, as PYTHONUNBUFFERED makes the image's output: a killed step keeps its log.
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.argv = [module, *args]
    sys.path[0] = cwd  # `python -m` puts the working directory first
    code = 1
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        # os._exit skips what the interpreter runs at exit: run it in the interpreter's order,
        # as the container's process would. Threads first (threading's exit hooks, where
        # concurrent.futures' and loky's executors shut down: without them multiprocessing's
        # atexit waits for the training search's idle workers forever), then atexit (logging's
        # flush, MLflow's end of run).
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
