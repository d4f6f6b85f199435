"""The emulator's control route: read and move the virtual clock over HTTP.

A long-running emulator (``mlops local --serve``) is driven from other processes, which cannot
call :class:`~localcloud.behaviours.clock.Clock` directly::

    GET  /_mlops/clock                         -> {"now": "...", "started": "...", "following": false}
    POST /_mlops/clock {"advance": 600}        -> moves the clock 10 minutes (listeners run)
    POST /_mlops/clock {"tick": true}          -> runs the listeners without moving time
    POST /_mlops/clock {"follow": 60}          -> follows wall time, 60 virtual seconds a second
    POST /_mlops/clock {"follow": 0}           -> stops following
    GET  /_mlops/deliveries                    -> what EventBridge delivered, what failed, the
                                                  API-destination calls, Lambda invocations and
                                                  schedule invocations
    POST /_mlops/api-destinations {"endpoint": url, "status": 400, "body": "..."}
                                               -> what that API destination answers from now on
                                                  (GitLab refusing a trigger's variables, say)
    GET  /_mlops/instance                      -> {"instance": "..."}: this emulator's identity,
                                                  new at every start and every reset, which a
                                                  deploy's state records (localcloud/engine.py)

The route sits in front of moto's dispatcher, so it answers on the emulator's own address.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server import werkzeug_app
from moto.sts.models import sts_backends
from werkzeug.wrappers import Request, Response

from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher

ROUTE = "/_mlops/clock"
DELIVERIES = "/_mlops/deliveries"
API_DESTINATIONS = "/_mlops/api-destinations"
INSTANCE = "/_mlops/instance"
IAM = "/_mlops/iam"
ASSUME_ROLE = "/_mlops/assume-role"
_ACCOUNT = "123456789012"  # moto's default account, the emulator's


def instance() -> str:
    """This emulator's identity: kept on a moto backend, so a reset (new backends) makes a new one."""
    backend = sts_backends[_ACCOUNT]["global"]
    return backend.__dict__.setdefault("mlops_instance", uuid.uuid4().hex)


def deliveries() -> dict[str, Any]:
    """The delivery journal, JSON-ready (events are already plain dicts)."""
    from localcloud.behaviours import events, lambdas, scheduler, targets

    return {
        "delivered": list(events.DELIVERED),
        "failed": list(events.FAILED_DELIVERIES),
        "api_destinations": list(targets.API_DESTINATION_CALLS),
        "lambda_invocations": list(lambdas.INVOCATIONS),
        "schedule_invocations": list(scheduler.INVOCATIONS),
    }


def set_api_destination_answer(request: Request) -> Response:
    """``POST {"endpoint": url, "status": code, "body": text}``: the answer of that destination."""
    from localcloud.behaviours import targets

    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        body = None
    status = body.get("status") if isinstance(body, dict) else None
    if (
        request.method != "POST"
        or not isinstance(body.get("endpoint"), str)
        or isinstance(status, bool)
        or not isinstance(status, int)
        or not 100 <= status <= 599
    ):
        message = 'expected POST {"endpoint": "<invocation endpoint>", "status": <100-599>, "body": "..."}'
        return Response(json.dumps({"message": message}), status=400, mimetype="application/json")
    targets.API_DESTINATION_ANSWERS[body["endpoint"]] = (status, str(body.get("body", "")))
    return Response(json.dumps({"endpoint": body["endpoint"], "status": status}), mimetype="application/json")


def assume_role_as_service(request: Request) -> Response:
    """``POST {"RoleArn": arn, "Service": "sagemaker.amazonaws.com"}``: the role's temporary
    credentials as that service obtains them (its trust policy evaluated for the service, with
    aws:SourceAccount), for a person or test to act as a role only a service may assume."""
    from localcloud.emulator import authorisation

    def answer(body: dict[str, Any], status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")

    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        body = None
    if (
        request.method != "POST"
        or not isinstance(body, dict)
        or not all(isinstance(body.get(k), str) for k in ("RoleArn", "Service"))
    ):
        return answer(
            {"message": 'expected POST {"RoleArn": "<role arn>", "Service": "<service principal>"}'}, 400
        )
    try:
        credentials = authorisation.service_credentials(
            body["RoleArn"], body["Service"], body.get("SourceArn")
        )
    except authorisation.AccessDenied as denial:
        return answer({"message": str(denial)}, 403)
    return answer(
        {
            "Credentials": {
                "AccessKeyId": credentials["aws_access_key_id"],
                "SecretAccessKey": credentials["aws_secret_access_key"],
                "SessionToken": credentials["aws_session_token"],
            }
        }
    )


def _state(clock: Clock) -> dict[str, Any]:
    return {
        "now": clock.now().isoformat(),
        "started": clock.started.isoformat(),
        "following": clock.following,
    }


def handle(clock: Clock, request: Request) -> Response:
    def answer(body: dict[str, Any], status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")

    if request.method == "GET":
        return answer(_state(clock))
    if request.method != "POST":
        return answer({"message": f"{request.method} is not allowed on {ROUTE}; use GET or POST"}, 405)
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        return answer({"message": "body: expected a JSON object"}, 400)
    if not isinstance(body, dict) or not body.keys() <= {"advance", "tick", "follow"} or not body:
        return answer(
            {"message": 'body: expected one of {"advance": seconds}, {"tick": true}, {"follow": speed}'}, 400
        )
    for key in ("advance", "follow"):
        if key in body and (
            isinstance(body[key], bool) or not isinstance(body[key], int | float) or body[key] < 0
        ):
            return answer(
                {"message": f"{key}: expected a number of seconds at or above 0, got {body[key]!r}"}, 400
            )
    if "follow" in body:
        clock.follow(body["follow"]) if body["follow"] > 0 else clock.stop_following()
    if body.get("advance"):
        clock.advance(body["advance"])
    if body.get("tick"):
        clock.tick()
    return answer(_state(clock))


Route = tuple[Callable[[str], bool], Callable[[dict[str, Any]], Response]]


def install(patcher: Patcher, clock: Clock, routes: list[Route] = ()) -> None:
    """Answer the control paths, and ``routes`` (path predicate, WSGI environ → response) before moto."""
    dispatcher = werkzeug_app.DomainDispatcherApplication
    original: Callable[..., Iterable[bytes]] = dispatcher.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        for matches, answer in routes:
            if matches(environ.get("PATH_INFO", "")):
                return answer(environ)(environ, start_response)
        path = environ.get("PATH_INFO", "").rstrip("/")
        if path == ROUTE:
            return handle(clock, Request(environ))(environ, start_response)
        if path == API_DESTINATIONS:
            return set_api_destination_answer(Request(environ))(environ, start_response)
        if path == INSTANCE:
            body = json.dumps({"instance": instance()})
            return Response(body, mimetype="application/json")(environ, start_response)
        if path == ASSUME_ROLE:
            return assume_role_as_service(Request(environ))(environ, start_response)
        if path == IAM:
            from localcloud.emulator.authorisation import LEDGER

            body = json.dumps(LEDGER.report())
            return Response(body, mimetype="application/json")(environ, start_response)
        if path == DELIVERIES:
            body = json.dumps(deliveries(), default=str)
            return Response(body, mimetype="application/json")(environ, start_response)
        return original(self, environ, start_response)

    patcher.set(dispatcher, "__call__", call)
