"""The definition's graph, checked before anything runs.

Every step (condition branches included) with what it depends on: the steps its arguments
``Get`` from, its ``DependsOn``, and the condition whose outcome runs it. The steps run in
dependency order, earlier-defined first among those ready together. A start request's
parameters are checked against the types the definition declares.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pipelines.local.errors import DefinitionError, ParameterError

STEP_TYPES = ("Processing", "Training", "Condition", "Fail", "RegisterModel", "Model")
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
_STEP_REF = re.compile(r"Steps\.([A-Za-z0-9_-]+)(.*)")
_STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class _Node:
    spec: dict[str, Any]
    index: int  # position in the definition: ties in the order go to the earlier step
    depends: set[str]
    guard: tuple[str, bool] | None  # (condition step, outcome that runs this step)


def _flatten(
    steps: list[dict[str, Any]], guard: tuple[str, bool] | None = None, nodes: dict | None = None
) -> dict[str, _Node]:
    """Every step, condition branches included, with what it depends on."""
    nodes = {} if nodes is None else nodes
    for spec in steps:
        name, kind = spec.get("Name"), spec.get("Type")
        if not name or name in nodes:
            raise DefinitionError(f"step {name!r}: every step needs a unique Name")
        if not _STEP_NAME.fullmatch(name):
            # CreatePipeline refuses such a definition (the definition schema's StepName).
            raise DefinitionError(f"step {name!r}: a Name is 1 to 64 of A-Z a-z 0-9 - _")
        if kind not in STEP_TYPES:
            raise DefinitionError(
                f"step {name}: type {kind} does not run locally; these do: {', '.join(STEP_TYPES)}"
            )
        args = spec.get("Arguments") or {}
        scanned = {"Conditions": args.get("Conditions")} if kind == "Condition" else args
        depends = set(spec.get("DependsOn") or [])
        for ref in _gets(scanned):
            if ref.startswith("Steps."):
                match = _STEP_REF.fullmatch(ref)
                if match is None:
                    raise DefinitionError(f"step {name}: {ref} does not name a step")
                depends.add(match.group(1))
        if guard:
            depends.add(guard[0])
        nodes[name] = _Node(spec, len(nodes), depends, guard)
        if kind == "Condition":
            _flatten(args.get("IfSteps") or [], (name, True), nodes)
            _flatten(args.get("ElseSteps") or [], (name, False), nodes)
    return nodes


def _order(nodes: dict[str, _Node], parameters: set[str]) -> list[str]:
    """The steps in dependency order, earlier-defined first among those ready together."""
    for name, node in nodes.items():
        for ref in _gets(node.spec.get("Arguments") or {}):
            if ref.startswith("Parameters.") and ref.split(".", 1)[1] not in parameters:
                raise DefinitionError(f"step {name}: refers to {ref}, which the definition does not declare")
        for dep in node.depends:
            if dep not in nodes or dep == name:
                raise DefinitionError(f"step {name}: depends on {dep}, which is not another step")
    order: list[str] = []
    pending = dict(nodes)
    while pending:
        ready = [n for n in pending.values() if not (n.depends & pending.keys())]
        if not ready:
            raise DefinitionError(f"steps depend on each other in a cycle: {', '.join(pending)}")
        first = min(ready, key=lambda n: n.index)
        order.append(first.spec["Name"])
        del pending[first.spec["Name"]]
    return order


def _gets(value: Any) -> list[str]:
    """Every {"Get": path} in a value, at any depth."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            return [value["Get"]]
        return [ref for v in value.values() for ref in _gets(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _gets(v)]
    return []


# -- parameters ----------------------------------------------------------------------------


def _coerce(name: str, kind: str, value: Any) -> Any:
    """A parameter's value as its declared type; StartPipelineExecution passes strings too."""
    text = value.strip() if isinstance(value, str) else None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "String" and isinstance(value, str):
        return value
    if kind == "Integer":
        if number and isinstance(value, int):
            return value
        if text is not None and re.fullmatch(r"[+-]?\d+", text):
            return int(text)
    if kind == "Float":
        if number and math.isfinite(value):
            return float(value)
        if text is not None and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            return float(text)
    if kind == "Boolean":
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
    if kind not in PARAMETER_TYPES:
        raise DefinitionError(f"parameter {name}: type {kind} is not one of {', '.join(PARAMETER_TYPES)}")
    article = "an" if kind[0] in "AEIOU" else "a"
    raise ParameterError(f"parameter {name}: expected {article} {kind}, got {value!r}")
