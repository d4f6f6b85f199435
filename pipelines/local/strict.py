"""Requests checked against AWS's service models as strictly as AWS checks them.

botocore's own validator checks required members and Python types only. AWS also refuses a
request whose values break the model's constraints, and the emulator (moto) checks almost
none of them, so a request that would fail on AWS passes locally. :func:`check_request`
checks the rest, everything the model states about each member:

    enum       a value outside the documented set   (InstanceType 'ml.bogus.huge')
    pattern    a string that does not match         (Environment key '1BAD-KEY')
    min / max  string and blob lengths, list and map sizes, numeric ranges
               (a TrainingJobName of 80 characters; InstanceCount 0)

Patterns are matched whole, as AWS's (Java) validation does; ``\\p{..}`` classes come from the
``regex`` module. Anything that makes AWS calls against the emulator (the pipelines' local
executor, the local cloud's deployment) uses one of two doors:

* :func:`strict_client` (or :func:`install` on an existing client): every call is checked
  before it is sent, and a refused call raises :class:`RequestRefused`;
* :func:`check_request`: the list of problems for one operation's parameters, for code that
  wants to report them itself.

Each problem names the operation and the member path (``ProcessingResources.ClusterConfig.
InstanceType``), shows the value and says what the model expects.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.session
import regex
from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

_NUMBERS = ("integer", "long", "float", "double")
_SHOWN = 60  # characters of a value shown in a message


class RequestRefused(ParamValidationError):
    """A request AWS would refuse, with every problem named (a botocore ParamValidationError)."""

    def __init__(self, operation: str, problems: list[str]):
        self.operation = operation
        self.problems = problems
        super().__init__(report=f"{operation} would be refused by AWS:\n  " + "\n  ".join(problems))


@functools.cache
def _service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


# Java writes a code point above U+FFFF as a UTF-16 surrogate pair (\uD800\uDC00); Python's
# patterns name the code point itself.
_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-Fa-f]{2})\\u(D[C-Fa-f][0-9A-Fa-f]{2})")


def _code_point(match: regex.Match) -> str:
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"


@functools.cache
def _compiled(pattern: str) -> regex.Pattern:
    return regex.compile(_SURROGATE_PAIR.sub(_code_point, pattern))


def operation_model(service: str, operation: str) -> OperationModel:
    """The model of ``operation`` (``CreateTrainingJob``) of ``service`` (``sagemaker``)."""
    return _service_model(service).operation_model(operation)


def check_request(service: str | OperationModel, operation: str | None = None, params=None) -> list[str]:
    """Every way ``params`` breaks the operation's input model; empty when AWS would accept it.

    Call as ``check_request("sagemaker", "CreateModel", params)`` or with an operation model.
    """
    model = service if isinstance(service, OperationModel) else operation_model(service, operation)
    params = {} if params is None else params
    if model.input_shape is None:
        return [] if not params else [f"{model.name} takes no parameters, got {sorted(params)}"]
    # Types and required members first, as botocore reports them, then the constraints.
    report = ParamValidator().validate(params, model.input_shape)
    # botocore's report also has minimums ("valid min value"); those come from _check below.
    lines = report.generate_report().splitlines() if report.has_errors() else []
    problems = [line.strip() for line in lines if "valid min" not in line]
    _check(model.input_shape, params, "", problems)
    return problems


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...'"


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    where = path or "(request)"
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure" and isinstance(value, Mapping):
        for name, member_value in value.items():
            if name in shape.members and member_value is not None:
                _check(shape.members[name], member_value, f"{path}.{name}" if path else name, problems)
        return
    if kind == "list" and isinstance(value, list | tuple):
        _check_size(len(value), meta, where, "items", problems)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", problems)
        return
    if kind == "map" and isinstance(value, Mapping):
        _check_size(len(value), meta, where, "entries", problems)
        for key, item in value.items():
            _check(shape.key, key, f"{path} key {key!r}", problems)
            _check(shape.value, item, f"{path}[{key!r}]", problems)
        return
    if kind == "string" and isinstance(value, str):
        enum = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            shown = (
                ", ".join(enum) if len(enum) <= 12 else ", ".join(enum[:12]) + f", ... ({len(enum)} values)"
            )
            problems.append(f"{where}: {_show(value)} is not one of {shown}")
            return
        pattern = meta.get("pattern")
        sized = _check_size(len(value), meta, where, "characters", problems)
        if sized and pattern and not _compiled(pattern).fullmatch(value):
            problems.append(f"{where}: {_show(value)} does not match the pattern {pattern}")
        return
    if kind == "blob" and isinstance(value, bytes | bytearray | str):
        _check_size(len(value), meta, where, "bytes", problems)
        return
    if kind in _NUMBERS and isinstance(value, int | float) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            problems.append(f"{where}: {value} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{where}: {value} is above the maximum {meta['max']}")
        return
    if kind == "timestamp" and isinstance(value, dt.datetime | dt.date | str | int | float):
        return


def _check_size(size: int, meta: dict, where: str, unit: str, problems: list[str]) -> bool:
    """Append a problem when ``size`` is outside the model's bounds; True when it is inside."""
    if "min" in meta and size < meta["min"]:
        problems.append(f"{where}: has {size} {unit}, fewer than the minimum {meta['min']}")
        return False
    if "max" in meta and size > meta["max"]:
        problems.append(f"{where}: has {size} {unit}, more than the maximum {meta['max']}")
        return False
    return True


def _refuse_invalid(params: dict, model: OperationModel, **_: Any) -> None:
    problems = check_request(model, params=params)
    if problems:
        raise RequestRefused(model.name, problems)


def install(client):
    """Check every request ``client`` sends from now on; returns the client."""
    client.meta.events.register("before-parameter-build", _refuse_invalid, unique_id="mlops-strict-requests")
    return client


def strict_client(service: str, session: boto3.Session | None = None, **kwargs):
    """A boto3 client for ``service`` whose requests are checked before they are sent."""
    return install((session or boto3).client(service, **kwargs))
