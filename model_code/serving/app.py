"""The model server's WSGI application: SageMaker's /ping and /invocations over the handlers.

    GET  /ping         200 {"status": "ok"}, answered without waiting for any prediction
    POST /invocations  the handler chain of model_code.serving.inference

Status codes: 400 a request breaking the data contract ({"error": ...} naming the field),
406 an Accept header asking for a type not served, 413 a body over SageMaker's 6 MB
real-time payload limit (declared with Content-Length or sent chunked), 415 an unsupported
Content-Type, 404 an unknown path, 405 a wrong method, 503 with ``Retry-After`` when this
worker's queue is full, 500 anything unexpected (logged with its traceback; the caller gets
a generic message). Every error body is JSON.

Each server worker process holds one ``InferenceApp``: predictions run one at a time (the
process has one core's worth of GIL), at most ``queue_depth`` more wait behind it, and a
request beyond that is answered at once with the 503 (``Admission``). Work whose client has
closed its connection while it waited is dropped before the model runs.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from model_code.serving import inference
from model_code.training.artifact import ModelBundle

log = logging.getLogger(__name__)

# SageMaker refuses real-time payloads above 6 MB; anything larger here is not from it.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# An oversized body is read and discarded up to this much so that the client, still
# sending, reads the 413 instead of a connection reset; beyond it the connection is closed.
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
RETRY_AFTER_SECONDS = 1

_ROUTES = {"/ping": ("GET",), "/invocations": ("POST",)}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    499: "Client Closed Request",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Overloaded(Exception):
    """This worker already holds as many requests as it may."""


class Admission:
    """A worker's bounded queue: one prediction at a time, at most ``depth`` waiting, first come first served.

    ``enter()`` raises ``Overloaded`` at once when ``1 + depth`` requests are already inside,
    so a full queue costs the caller no wait.
    """

    def __init__(self, depth: int):
        if depth < 0:
            raise ValueError(f"queue depth: expected 0 or more, got {depth}")
        self.depth = depth
        self._lock = threading.Lock()
        self._inside = 0
        self._busy = False
        # One event per waiting request; a plain lock would not serve them in arrival order.
        self._waiting: deque[threading.Event] = deque()

    @property
    def inside(self) -> int:
        return self._inside

    @contextmanager
    def enter(self) -> Iterator[None]:
        with self._lock:
            if self._inside > self.depth:
                raise Overloaded
            self._inside += 1
            turn = None
            if self._busy:
                turn = threading.Event()
                self._waiting.append(turn)
            else:
                self._busy = True
        if turn is not None:
            turn.wait()
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._waiting:
                    self._waiting.popleft().set()  # the slot passes on, still busy
                else:
                    self._busy = False


def client_gone(sock: socket.socket | None) -> bool:
    """Whether the peer has closed or reset the connection (False when it cannot be told)."""
    if sock is None:
        return False
    try:
        # A readable socket with nothing to read has seen the peer's FIN.
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


class _TooLarge(Exception):
    pass


class InferenceApp:
    """The WSGI application: routes, reads the body, admits, maps errors to status codes."""

    def __init__(self, model: ModelBundle, queue_depth: int = 32, lookup: inference.Lookup | None = None):
        self.model = model
        self.admission = Admission(queue_depth)
        # Fills the features a request leaves out from the online store (model_code.serving.lookup).
        self.lookup = lookup

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
            body = _read_body(environ)
        except _TooLarge:
            return _error(start_response, 413, f"request body: larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            with self.admission.enter():
                if client_gone(environ.get("gunicorn.socket")):
                    log.info("client closed its connection while queued; request dropped")
                    return _error(start_response, 499, "client closed the connection")
                return self._invoke(environ, start_response, body)
        except Overloaded:
            return _error(
                start_response,
                503,
                f"server busy: this worker is predicting one request with {self.admission.depth} "
                f"waiting, its limit; retry after {RETRY_AFTER_SECONDS} s",
                [("Retry-After", str(RETRY_AFTER_SECONDS))],
            )

    def _invoke(self, environ: dict[str, Any], start_response: Callable, body: bytes) -> list[bytes]:
        try:
            answer, content_type = inference.invoke(
                self.model, body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"), self.lookup
            )
        except inference.BadRequest as exc:
            return _error(start_response, 400, str(exc))
        except inference.UnsupportedContentType as exc:
            return _error(start_response, 406 if exc.header == "Accept" else 415, str(exc))
        except Exception:
            # The traceback goes to the logs (CloudWatch), never to the caller.
            log.exception("POST /invocations failed")
            return _error(start_response, 500, "internal error while predicting; see the endpoint's logs")
        return _respond(start_response, 200, answer, content_type)


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_PAYLOAD_BYTES:
        _discard(stream, declared)
        raise _TooLarge
    # Read one byte past the limit to tell "at the limit" from "over it" without a length.
    body = stream.read(MAX_PAYLOAD_BYTES + 1)
    if len(body) > MAX_PAYLOAD_BYTES:
        _discard(stream, DISCARD_LIMIT_BYTES)
        raise _TooLarge
    return body


def _discard(stream: Any, limit: int) -> None:
    left = min(limit, DISCARD_LIMIT_BYTES)
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            return
        left -= len(chunk)


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
