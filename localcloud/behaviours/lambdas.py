"""Lambda functions run in-process from their deployed code, as an EventBridge target invokes them.

The function's zip (as ``CreateFunction``/``UpdateFunctionCode`` stored it in the emulator) is
unpacked once per code hash, its handler module loaded from there, and called with the event and
a context object. While the handler runs, the process environment holds what the Lambda runtime
would set (the function's variables, region, function name) plus ``AWS_ENDPOINT_URL`` pointing
at the emulator and dummy credentials, so the handler's boto3 calls reach the emulator.

Not emulated: runtimes other than Python (refused, naming the runtime), layers, timeouts and
memory limits, concurrency (invocations run one at a time: the environment is process-wide, so
a function whose AWS call makes the emulator invoke another function from another thread fails
that inner invocation after 30 s instead of waiting forever),
CloudWatch Logs output, retries of a failed asynchronous invocation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import tempfile
import threading
import uuid
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto.awslambda.models import lambda_backends
from moto.utilities.arns import parse_arn

from localcloud.emulator import authorisation

# One invocation at a time: the handler sees the function's environment in os.environ.
# Re-entrant: a handler's call may emit an event that invokes another function in this thread.
_ENV_LOCK = threading.RLock()
_MODULES: dict[tuple[str, str], ModuleType] = {}
INVOCATIONS: list[dict[str, Any]] = []
LOCK_TIMEOUT_SECONDS = 30


class _Context:
    """The attributes of the Lambda context object that handlers commonly read."""

    def __init__(self, function: Any) -> None:
        self.function_name = function.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.function_arn
        self.memory_limit_in_mb = function.memory_size
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _load(function: Any, workdir: Path) -> Any:
    code = bytes(function.code_bytes)
    digest = hashlib.sha256(code).hexdigest()
    module_name, _, attribute = (function.handler or "").rpartition(".")
    if not module_name:
        raise ValueError(f"Handler: {function.handler!r} is not <module>.<function>")
    key = (digest, module_name)
    if key not in _MODULES:
        target = workdir / digest
        if not target.exists():
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(target)
        path = target / (module_name.replace(".", "/") + ".py")
        if not path.exists():
            raise ValueError(
                f"Handler: {function.handler!r} names {path.name}, which the deployed code lacks"
            )
        spec = importlib.util.spec_from_file_location(f"_lambda_{digest[:12]}_{module_name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[key] = module
    handler = getattr(_MODULES[key], attribute, None)
    if handler is None:
        raise ValueError(f"Handler: the deployed module {module_name} has no function {attribute!r}")
    return handler


class LambdaRunner:
    """Invokes deployed functions in-process; ``endpoint_url`` is where their boto3 calls go."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        self._workdir = tempfile.TemporaryDirectory(prefix="mlops-lambda-")

    def close(self) -> None:
        self._workdir.cleanup()
        _MODULES.clear()
        INVOCATIONS.clear()

    def invoke(self, function_arn: str, event: Any) -> Any:
        arn = parse_arn(function_arn)
        function = lambda_backends[arn.account][arn.region].get_function(function_arn)
        if not str(function.run_time or "").startswith("python"):
            raise ValueError(f"Runtime: {function.run_time!r} is not emulated (Python runtimes only)")
        if self.endpoint_url is None:
            raise ValueError("endpoint_url: install(endpoint_url=...) is needed to run Lambda handlers")
        handler = _load(function, Path(self._workdir.name))
        environment = {
            **{k: str(v) for k, v in (function.environment_vars or {}).items()},
            "AWS_REGION": arn.region,
            "AWS_DEFAULT_REGION": arn.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            # The function runs with its execution role, assumed by Lambda for this function.
            **{
                name.upper(): value
                for name, value in authorisation.service_credentials(
                    function.role, "lambda.amazonaws.com", function.function_arn
                ).items()
            },
        }
        record: dict[str, Any] = {"function": function.function_arn, "event": event}
        # A function whose call makes the emulator invoke another one from a second thread would
        # wait forever for this lock: give up after a while, failing that inner delivery instead.
        if not _ENV_LOCK.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            raise RuntimeError(
                f"{function.function_name}: another function is running and waits on this one; "
                "chained Lambda invocations through the emulator are not emulated"
            )
        try:
            saved = {k: os.environ.get(k) for k in environment}
            os.environ.update(environment)
            # boto3's default session keeps the credentials it first read from the environment:
            # a handler's boto3.client() would sign with an earlier function's (or an earlier
            # emulator's) credentials. Each function runs in an environment of its own on AWS.
            saved_session, boto3.DEFAULT_SESSION = boto3.DEFAULT_SESSION, None
            try:
                record["result"] = handler(event, _Context(function))
            except Exception as error:
                record["error"] = f"{type(error).__name__}: {error}"
                raise
            finally:
                boto3.DEFAULT_SESSION = saved_session
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
                INVOCATIONS.append(record)
        finally:
            _ENV_LOCK.release()
        return record["result"]


__all__ = ["INVOCATIONS", "LambdaRunner"]
