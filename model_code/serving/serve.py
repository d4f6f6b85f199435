"""``mlops serve``: the model server of SageMaker's bring-your-own-container contract, on gunicorn.

It answers GET /ping and POST /invocations on port 8080 (model_code.serving.app says how),
with the model loaded once before the port opens and shared by every worker:

* one worker process per core (``--workers``, default ``$SAGEMAKER_MODEL_SERVER_WORKERS``,
  else the core count), each predicting one request at a time with its math libraries held
  to one thread (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` are
  set to 1 unless already set, before any of them loads);
* a bounded queue: at most ``--queue-depth`` requests wait per worker; beyond that the
  answer is an immediate 503 with ``Retry-After``; /ping never waits behind predictions;
* SIGTERM (``docker stop``, SageMaker retiring an instance): stop accepting, answer every
  request already accepted, including those still in the listen backlog, within
  ``--graceful-timeout`` seconds (30), then exit 0.

Why gunicorn, with its threaded worker under one process per core, rather than one threaded
waitress process: the GIL serialises predictions inside a process, so only processes use
every core (measured in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_QUEUE_DEPTH = 32
DEFAULT_GRACEFUL_TIMEOUT = 30
# Pool threads per worker beyond those a full queue holds: they answer /ping and the 503.
SPARE_THREADS = 4
# The math libraries whose thread count mlops serve holds to one.
MATH_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_VARIABLE = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
# Set (to anything) by a parent that runs servers as its children, e.g. the local cloud's
# endpoints: the server shuts down gracefully once that parent has gone, even if it was killed.
EXIT_WITH_PARENT_VARIABLE = "MLOPS_SERVE_EXIT_WITH_PARENT"


def hold_math_libraries_to_one_thread() -> None:
    # Libraries read these when they load, so this must run before numpy/scikit-learn import.
    for name in MATH_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


class _Application(BaseApplication):
    """gunicorn embedded: its settings come from this module, never from gunicorn's own argv."""

    def __init__(self, wsgi: Any, options: dict[str, Any]):
        self._wsgi, self._options = wsgi, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._wsgi


def exit_now(code: object) -> None:
    """End this process with ``code`` (as ``sys.exit`` takes it) without interpreter teardown.

    Tearing down pandas and scikit-learn takes seconds on a busy machine, which a container
    being stopped, or a test starting and stopping servers, should not wait for.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def _worker_exit(server: Any, worker: Any) -> None:
    # gunicorn calls this hook in the worker, after its cleanup, while its SystemExit is in flight.
    if os.getpid() == worker.pid:
        exc = sys.exc_info()[1]
        exit_now(exc.code if isinstance(exc, SystemExit) else 1 if exc is not None else 0)


def gunicorn_options(
    bind: str, workers: int, queue_depth: int, graceful_timeout: int, timeout: int
) -> dict[str, Any]:
    """The gunicorn settings of the model server."""
    return {
        "bind": [bind],
        "workers": workers,
        "worker_class": "model_code.serving.workers.ModelWorker",
        # One predicting, queue_depth waiting, and spares that are never stuck behind them.
        "threads": 1 + queue_depth + SPARE_THREADS,
        "graceful_timeout": graceful_timeout,
        # A worker that stops heart-beating this long is restarted (SageMaker's variable).
        "timeout": timeout,
        "keepalive": 5,
        # The model is loaded once, in the master, and shared copy-on-write by the workers.
        "preload_app": True,
        # No control socket file in $HOME: the container is managed by signals only.
        "control_socket_disable": True,
        "proc_name": "mlops-serve",
        "errorlog": "-",
        "loglevel": "info",
        "worker_exit": _worker_exit,
    }


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return value


def _from_environment(parser: argparse.ArgumentParser, name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"${name}: {exc}")
        raise  # parser.error exits; this keeps type checkers honest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mlops serve", description="Serve a model over HTTP: GET /ping and POST /invocations."
    )
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR),
        help="model folder or model.tar.gz (default $SM_MODEL_DIR or /opt/ml/model)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8080, SageMaker's)")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument(
        "--fd", type=_non_negative_int, help="serve on this inherited listening socket instead of binding"
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=_from_environment(parser, WORKERS_VARIABLE, os.cpu_count() or 1),
        help=f"worker processes (default ${WORKERS_VARIABLE}, else one per core)",
    )
    parser.add_argument(
        "--queue-depth",
        type=_non_negative_int,
        default=DEFAULT_QUEUE_DEPTH,
        help=f"requests that may wait per worker before the server answers 503 (default {DEFAULT_QUEUE_DEPTH})",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=_positive_int,
        default=DEFAULT_GRACEFUL_TIMEOUT,
        help="whole seconds to finish accepted requests after SIGTERM (default 30)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_int,
        default=_from_environment(parser, TIMEOUT_VARIABLE, 60),
        help=f"seconds before a silent worker is restarted (default ${TIMEOUT_VARIABLE}, else 60)",
    )
    return parser.parse_args(argv)


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """SIGTERM this process (a graceful shutdown) once its parent has exited."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        log.info("the parent process %d has exited: shutting down", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hold_math_libraries_to_one_thread()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Imported only now: scikit-learn's OpenMP reads OMP_NUM_THREADS when it loads.
    from model_code.serving import inference
    from model_code.serving.app import InferenceApp
    from model_code.serving.lookup import OnlineLookup

    try:
        model = inference.model_fn(args.model_dir)
    except Exception as exc:
        # Without a model there is nothing to serve: fail loudly so the endpoint shows it.
        log.error("cannot serve the model in %s: %s", args.model_dir, exc)
        return 1
    if args.fd is not None:
        bind = f"fd://{args.fd}"
    else:
        host = f"[{args.host}]" if ":" in args.host else args.host
        bind = f"{host}:{args.port}"
    log.info(
        "serving %s on %s: %d workers, queue depth %d per worker",
        args.model_dir,
        bind,
        args.workers,
        args.queue_depth,
    )
    options = gunicorn_options(bind, args.workers, args.queue_depth, args.graceful_timeout, args.timeout)
    if os.environ.get(EXIT_WITH_PARENT_VARIABLE):
        exit_with_parent()  # in the master only: gunicorn's workers are forked without threads
    try:
        # MLOPS_ONLINE_FEATURE_GROUP (the stack's onlineFeatureLookup) turns the lookup on.
        lookup = OnlineLookup.from_environment(model.schema.feature_names)
        if lookup is not None:
            log.info("features a request leaves out are looked up in %s's online store", lookup.feature_group)
        _Application(InferenceApp(model, args.queue_depth, lookup), options).run()
    except SystemExit as exc:
        # gunicorn's arbiter ends by sys.exit (0 after a graceful SIGTERM).
        exit_now(exc.code)
    return 0


def create_server(model_dir: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Any:
    """The production server for ``model_dir`` in a child process, not yet started (see process.py)."""
    from model_code.serving.process import ServerProcess

    return ServerProcess(model_dir, host=host, port=port, **options)


if __name__ == "__main__":
    sys.exit(main())
