"""Resolving a step's Arguments in one execution, and deciding its conditions.

``{"Get": ...}`` of parameters, execution variables and the properties of steps that ran,
``Std:Join``, ``Std:JsonGet`` of property files (read from S3 once per execution), and the
condition types Equals, In, Not, Or and the four comparisons. A :class:`Resolver` reads the
run's state (``context.RunContext``) and the step specs; it knows nothing of the step loop.
"""

from __future__ import annotations

import json
import operator
import re
import threading
from dataclasses import dataclass
from typing import Any

from pipelines.local.context import RunContext
from pipelines.local.errors import StepFailure
from pipelines.local.graph import _STEP_REF
from pipelines.local.records import _iso, _now, _text
from pipelines.local.staging import split_s3

_PROPERTY_TOKEN = re.compile(r"\.(\w+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_COMPARISONS = {
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}


@dataclass(frozen=True)
class _PropertyFileRef:
    step: str
    name: str


class Resolver:
    """The expressions of one run: its values, the steps' properties and property files."""

    def __init__(self, context: RunContext, specs: dict[str, dict[str, Any]]):
        self.context = context
        self.execution = context.execution
        self.properties = context.properties
        self.specs = specs  # every step's spec by name, condition branches included
        self._json_cache: dict[str, Any] = {}
        self._json_lock = threading.Lock()

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Get":
                    return self.get(arg)
                if key == "Std:Join":
                    return _text(arg.get("On", "")).join(
                        _text(v) for v in self.resolve(arg.get("Values", []))
                    )
                if key == "Std:JsonGet":
                    return self.json_get(arg)
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def get(self, path: str) -> Any:
        kind, _, name = path.partition(".")
        if kind == "Parameters":
            return self.execution.parameters[name]
        if kind == "Execution":
            variables = {
                "PipelineExecutionId": self.execution.execution_id,
                "PipelineExecutionArn": self.execution.arn,
                "PipelineName": self.execution.pipeline_name,
                "PipelineArn": self.execution.arn.rsplit("/execution/", 1)[0],
                "StartDateTime": _iso(self.execution.start),
                "CurrentDateTime": _iso(_now()),
            }
            if name not in variables:
                raise StepFailure(f"{{'Get': '{path}'}}: unknown execution variable")
            return variables[name]
        if kind == "PipelineExperimentConfig":
            return {"ExperimentName": self.execution.pipeline_name, "TrialName": self.execution.execution_id}[
                name
            ]
        match = _STEP_REF.fullmatch(path) if kind == "Steps" else None
        if match is None:
            raise StepFailure(f"{{'Get': '{path}'}}: not a parameter, execution variable or step property")
        step, rest = match.groups()
        if rest.startswith(".PropertyFiles."):
            return _PropertyFileRef(step, rest[len(".PropertyFiles.") :])
        if step not in self.properties:
            raise StepFailure(f"{{'Get': '{path}'}}: step {step} has no properties")
        value: Any = self.properties[step]
        for token in _property_tokens(path, rest):
            value = _descend(value, token)
            if value is None:
                raise StepFailure(f"{{'Get': '{path}'}}: step {step} has no such property")
        return value

    def json_get(self, arg: dict[str, Any]) -> Any:
        if "PropertyFile" in arg:
            ref = self.resolve(arg["PropertyFile"])
            if not isinstance(ref, _PropertyFileRef):
                raise StepFailure(f"Std:JsonGet: {arg['PropertyFile']} is not a property file")
            uri = self.property_file_uri(ref)
        else:
            uri = _text(self.resolve(arg["S3Uri"]))
        with self._json_lock:
            if uri not in self._json_cache:
                bucket, key = split_s3(uri)
                try:
                    body = self.context.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
                    self._json_cache[uri] = json.loads(body)
                except Exception as exc:
                    raise StepFailure(f"Std:JsonGet: cannot read {uri}: {exc}") from exc
            value = self._json_cache[uri]
        for token in re.findall(r"\[(\d+)\]|\['([^']*)'\]|([^.\[\]]+)", arg["Path"].removeprefix("$.")):
            index, quoted, plain = token
            value = _descend(value, int(index) if index else quoted or plain)
            if value is None:
                raise StepFailure(f"Std:JsonGet: {uri} has no value at {arg['Path']}")
        return value

    def property_file_uri(self, ref: _PropertyFileRef) -> str:
        spec = self.specs[ref.step]
        for pf in spec.get("PropertyFiles") or []:
            if pf["PropertyFileName"] == ref.name:
                outputs = self.properties[ref.step]["ProcessingOutputConfig"]["Outputs"]
                output = next(o for o in outputs if o["OutputName"] == pf["OutputName"])
                return f"{output['S3Output']['S3Uri'].rstrip('/')}/{pf['FilePath']}"
        raise StepFailure(f"step {ref.step} declares no property file {ref.name}")

    def holds(self, condition: dict[str, Any]) -> bool:
        kind = condition["Type"]
        if kind == "Not":
            return not self.holds(condition.get("Condition") or condition["Expression"])
        if kind == "Or":
            return any(self.holds(c) for c in condition["Conditions"])
        if kind == "In":
            query = self.resolve(condition["QueryValue"])
            return any(_equal(query, self.resolve(v)) for v in condition["Values"])
        left, right = self.resolve(condition["LeftValue"]), self.resolve(condition["RightValue"])
        if kind == "Equals":
            return _equal(left, right)
        if kind not in _COMPARISONS:
            raise StepFailure(
                f"condition type {kind} is not one of Equals, In, Not, Or, {', '.join(_COMPARISONS)}"
            )
        try:
            return _COMPARISONS[kind](*_comparable(left, right))
        except TypeError as exc:
            raise StepFailure(f"{kind}: cannot compare {left!r} with {right!r}") from exc


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    # A JsonGet may return "0.81" where the other side is a Float parameter: compare as numbers.
    def is_number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    for a, b in ((left, right), (right, left)):
        if is_number(a) and isinstance(b, str):
            try:
                converted = float(b)
            except ValueError:
                break
            return (left, converted) if b is right else (converted, right)
    return left, right


def _equal(left: Any, right: Any) -> bool:
    return operator.eq(*_comparable(left, right))


def _property_tokens(path: str, rest: str) -> list[str | int]:
    tokens: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _PROPERTY_TOKEN.match(rest, position)
        if not match:
            raise StepFailure(f"{{'Get': '{path}'}}: cannot read the property path at {rest[position:]!r}")
        name, index, single, double = match.groups()
        tokens.append(int(index) if index else name or single or double)
        position = match.end()
    return tokens


def _descend(value: Any, token: str | int) -> Any:
    """value[token]; a list is also indexed by an element's name (Outputs['train'])."""
    if isinstance(value, dict):
        return value.get(token) if isinstance(token, str) else None
    if isinstance(value, list):
        if isinstance(token, int):
            return value[token] if -len(value) <= token < len(value) else None
        for item in value:
            if isinstance(item, dict) and any(k.endswith("Name") and v == token for k, v in item.items()):
                return item
    return None
