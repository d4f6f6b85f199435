"""The model server of SageMaker's bring-your-own-container contract, on waitress.

``mlops serve`` (what the image's ``serve`` runs) answers on port 8080:

    GET  /ping         200 once the model is loaded (it is loaded before the port opens)
    POST /invocations  the handler chain of model_code.serving.inference

Status codes: 400 a request breaking the data contract ({"error": ...} naming the field),
406 an Accept header asking for a type not served, 413 a body over SageMaker's 6 MB
real-time payload limit, 415 an unsupported Content-Type, 404 an unknown path, 405 a wrong
method, 500 anything unexpected (logged with its traceback; the caller gets a generic
message and the server keeps running). Error bodies are JSON, except that waitress itself
refuses a declared Content-Length over the limit before the app runs, with a plain-text 413.

A plain WSGI app rather than a web framework: two routes do not need one, and waitress is a
production server whose worker threads serve several requests at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import waitress
from waitress import wasyncore

from model_code.serving import inference
from model_code.training.artifact import ModelBundle

log = logging.getLogger(__name__)

# SageMaker refuses real-time payloads above 6 MB; anything larger here is not from it.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
DEFAULT_PORT = 8080
DEFAULT_MODEL_DIR = "/opt/ml/model"

_ROUTES = {"/ping": ("GET",), "/invocations": ("POST",)}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def default_threads() -> int:
    # Requests spend much of their time in numpy/sklearn code that releases the GIL.
    return (os.cpu_count() or 1) * 2


class _TooLarge(Exception):
    pass


class InferenceApp:
    """The WSGI application: routes, reads the body, maps errors to status codes."""

    def __init__(self, model: ModelBundle):
        self.model = model

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        allowed = _ROUTES.get(path)
        if allowed is None:
            return _error(
                start_response, 404, f"{path}: not found; this server answers /ping and /invocations"
            )
        if method not in allowed:
            return _error(
                start_response,
                405,
                f"{method} {path}: method not allowed; use {' or '.join(allowed)}",
                [("Allow", ", ".join(allowed))],
            )
        if path == "/ping":
            return _respond(start_response, 200, b'{"status": "ok"}', inference.JSON)
        try:
            body, content_type = inference.invoke(
                self.model, _read_body(environ), environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT")
            )
        except inference.BadRequest as exc:
            return _error(start_response, 400, str(exc))
        except inference.UnsupportedContentType as exc:
            return _error(start_response, 406 if exc.header == "Accept" else 415, str(exc))
        except _TooLarge:
            return _error(start_response, 413, f"request body: larger than {MAX_PAYLOAD_BYTES} bytes")
        except Exception:
            # The traceback goes to the logs (CloudWatch), never to the caller.
            log.exception("POST /invocations failed")
            return _error(start_response, 500, "internal error while predicting; see the endpoint's logs")
        return _respond(start_response, 200, body, content_type)


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_PAYLOAD_BYTES:
        raise _TooLarge
    # Read one byte past the limit to tell "at the limit" from "over it" without a length.
    body = environ["wsgi.input"].read(MAX_PAYLOAD_BYTES + 1)
    if len(body) > MAX_PAYLOAD_BYTES:
        raise _TooLarge
    return body


def _respond(
    start_response: Callable, status: int, body: bytes, content_type: str, headers: list | None = None
) -> list[bytes]:
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


def _error(start_response: Callable, status: int, message: str, headers: list | None = None) -> list[bytes]:
    return _respond(start_response, status, json.dumps({"error": message}).encode(), inference.JSON, headers)


class ModelServer:
    """waitress serving one model: ``run()`` blocks; ``start()`` runs it in a thread; ``close()`` stops it.

    The listening socket is bound here, so ``port=0`` picks a free port, read back as ``.port``.
    """

    def __init__(
        self, model: ModelBundle, host: str = "127.0.0.1", port: int = 0, threads: int | None = None
    ):
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        self._socket = socket.create_server((host, port), family=family)
        self.host, self.port = host, self._socket.getsockname()[1]
        self.threads = threads or default_threads()
        # Our own socket map, so close() can end exactly this server's connections.
        self._map: dict[int, Any] = {}
        try:
            self._server = waitress.create_server(
                InferenceApp(model),
                map=self._map,
                sockets=[self._socket],
                threads=self.threads,
                max_request_body_size=MAX_PAYLOAD_BYTES,
                ident="mlops-model-server",
            )
        except BaseException:
            self._socket.close()
            raise
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(self) -> None:
        self._server.run()

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self.run, name=f"model-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, and wait for the worker threads."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            # The socket map belongs to the loop thread: close it there, via waitress's trigger.
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            self._thread.join(timeout)
        else:
            wasyncore.close_all(self._map)
        self._server.task_dispatcher.shutdown(timeout=timeout)

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_server(
    model_dir: str, host: str = "127.0.0.1", port: int = 0, threads: int | None = None
) -> ModelServer:
    """Load the model in ``model_dir`` and bind a server for it (not yet running)."""
    return ModelServer(inference.model_fn(model_dir), host, port, threads)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
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
        "--threads",
        type=_positive_int,
        default=default_threads(),
        help="requests served at once (default: 2 per CPU)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = create_server(args.model_dir, args.host, args.port, args.threads)
    except Exception as exc:
        # Without a model there is nothing to serve: fail loudly so the endpoint shows it.
        log.error("cannot serve the model in %s: %s", args.model_dir, exc)
        return 1
    # docker stop / SageMaker send SIGTERM: leave waitress's loop so workers shut down cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("serving %s on %s:%d with %d threads", args.model_dir, server.host, server.port, server.threads)
    try:
        server.run()
    finally:
        server.close()
    return 0
