"""The model server (``mlops serve``) as a child process: what tests, benchmarks and the local cloud run.

``ServerProcess`` binds the listening socket itself (``port=0`` picks a free port, read back
as ``.port``) and hands it to the child, so there is no window in which another process can
take the port; ``start()`` returns once /ping answers 200; ``stop()`` sends SIGTERM, as
SageMaker and ``docker stop`` do, and returns the exit status. The child's log goes to a
temporary file (``.log()``, or ``.output(since)`` for what it wrote after a byte offset), so a
chatty server can never block on a full pipe.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Protocol


class Process(Protocol):
    """What ServerProcess needs of a started process (``subprocess.Popen`` has it)."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


# (mlops serve's arguments, the listening socket's fd, environment, log file) -> the process,
# which serves on that socket (``--fd``), in a process group of its own.
Launcher = Callable[[list[str], int, dict[str, str], str], Process]


def popen(args: list[str], fd: int, env: dict[str, str], log: str) -> subprocess.Popen:
    """``python -m model_code.serving.serve *args --fd fd``, a fresh interpreter."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "model_code.serving.serve", *args, "--fd", str(fd)],
            pass_fds=(fd,),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own process group, so a kill reaches the workers too.
            start_new_session=True,
        )


class ServerProcess:
    """``mlops serve`` on ``model_dir`` in a child process; a context manager that stops it."""

    def __init__(
        self,
        model_dir: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int | None = None,
        queue_depth: int | None = None,
        graceful_timeout: int | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        launch: Launcher | None = None,
    ):
        """``env`` is added to this process's environment, or is the whole of the server's
        when ``inherit_env`` is False (a container's environment is built from nothing).
        ``launch`` starts the process (default: a fresh ``python -m model_code.serving.serve``)."""
        self.model_dir, self.host, self.port = str(model_dir), host, port
        self.args = ["--model-dir", self.model_dir]
        for flag, value in (
            ("--workers", workers),
            ("--queue-depth", queue_depth),
            ("--graceful-timeout", graceful_timeout),
        ):
            if value is not None:
                self.args += [flag, str(value)]
        self.env = {**(os.environ if inherit_env else {}), **(env or {})}
        self.launch = launch or popen
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="mlops-serve-", suffix=".log")  # noqa: SIM115 (closed by close())
        self.started_at = self.ready_at = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until /ping answers 200 (raise with its log if it does not)."""
        family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((self.host, self.port), family=family, backlog=1024)
        try:
            self.port = listener.getsockname()[1]
            fd = listener.fileno()
            self.started_at = time.monotonic()
            self.process = self.launch(self.args, fd, self.env, self._log.name)
        finally:
            # The child holds the socket now; ours would keep the port open after it exits.
            listener.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlops serve exited with {self.process.returncode} before answering /ping:\n{self.log()}"
                )
            if self.ping(timeout=1.0) == 200:
                self.ready_at = time.monotonic()
                return self
            time.sleep(0.02)
        self.stop(timeout=5)
        raise TimeoutError(f"mlops serve did not answer /ping within {timeout} s:\n{self.log()}")

    def ping(self, timeout: float = 2.0) -> int | None:
        """The status of GET /ping, or None when nothing answers."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request("GET", "/ping")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def terminate(self) -> None:
        """Send SIGTERM (graceful shutdown) without waiting."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s (then SIGKILL); the exit status, None if never started."""
        if self.process is None:
            return None
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # The master did not finish in time: end it and its workers, whose group it leads.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        return self.process.returncode

    def output(self, since: int = 0) -> bytes:
        """What the server has written to its log from byte ``since`` on."""
        # pread leaves the file offset alone: the child writes at that shared offset.
        fd = self._log.fileno()
        return os.pread(fd, max(0, os.fstat(fd).st_size - since), since)

    def log(self) -> str:
        return self.output().decode(errors="replace")

    def close(self) -> None:
        self.stop()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
