"""How a model reaches traffic, as plain data: names, variants, traffic routing, rollback alarms.

SageMaker runs every endpoint update as a blue/green deployment; the strategy shapes it:
``all-at-once`` (and ``shadow``) shift all traffic at once, ``canary`` a small share first,
``linear`` in equal steps, each shift followed by a bake of ``wait_seconds`` watched by the
rollback alarms. Names are derived here once, so the endpoint (``infra.endpoint``) and the
alarms it rolls back on (``infra.alarms``) cannot disagree about them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.base import fit_name

STRATEGIES = ("all-at-once", "canary", "linear", "shadow")
# Strategies AWS can run on a serverless endpoint: it has a single variant and no capture.
SERVERLESS_STRATEGIES = ("all-at-once",)
# Blue/green deployments need the same variant names in the old and the new configuration,
# so these never change.
CHAMPION = "champion"
CHALLENGER = "challenger"
# SageMaker's limit for endpoint, endpoint configuration and model names.
SAGEMAKER_NAME_LIMIT = 63
# AWS's ranges (TrafficRoutingConfig, BlueGreenUpdatePolicy).
MAX_CANARY_PERCENT = 50
LINEAR_STEP_RANGE = (10, 50)
MAX_WAIT_SECONDS = 3600
EXECUTION_TIMEOUT_RANGE = (600, 28800)


# -- names ------------------------------------------------------------------------------
def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8]


def endpoint_name(schema_name: str, stack: str) -> str:
    """The endpoint's name: one model (schema) per stack, e.g. ``customer-churn-prod``.

    Also the prefix of this stack's other names for the model (alarms, dashboard), so they
    sort together in the console.
    """
    clean = re.sub(r"[^A-Za-z0-9]+", "-", f"{schema_name}-{stack}").strip("-")
    if not clean:
        raise ValueError(f"endpoint_name: no usable characters in schema {schema_name!r} and stack {stack!r}")
    return fit_name(clean, SAGEMAKER_NAME_LIMIT)


def variant_names(shadow: bool) -> list[str]:
    """Production variant first, then the shadow variant when there is one."""
    return [CHAMPION, CHALLENGER] if shadow else [CHAMPION]


def _canonical(value: Any) -> Any:
    """A resource's arguments in one spelling, whatever wrote them: keys without case or
    underscores (``initial_variant_weight`` = ``initialVariantWeight``), unset values dropped,
    whole floats as integers (the engine sends every number as a float)."""
    if isinstance(value, Mapping):
        return {re.sub(r"_", "", str(k)).lower(): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """A short digest of a resource's complete arguments (see :func:`_canonical`)."""
    return _digest(json.dumps(_canonical(arguments), sort_keys=True, default=str))


def model_name(endpoint: str, variant: str, arguments: Mapping[str, Any]) -> str:
    """A SageMaker model name unique to the model's complete arguments (all but name and tags).

    A model is immutable: any change of its arguments (package version, role, network
    isolation, ...) replaces it, and the replacement must not collide with the model it
    replaces while that one still serves traffic.
    """
    suffix = f"-{variant}-{arguments_digest(arguments)}"
    return f"{endpoint[: SAGEMAKER_NAME_LIMIT - len(suffix)].rstrip('-')}{suffix}"


def endpoint_config_name(endpoint: str, arguments: Mapping[str, Any]) -> str:
    """An endpoint configuration name carrying a digest of its complete arguments (all but
    name and tags).

    Every argument of a configuration forces its replacement; a new name per content lets
    the replacement exist beside the configuration the endpoint still serves, so the endpoint
    can switch to it (a blue/green deployment). A digest that left an argument out would give
    the replacement the old name: "already exists".
    """
    suffix = f"-{arguments_digest(arguments)}"
    return f"{endpoint[: SAGEMAKER_NAME_LIMIT - len(suffix)].rstrip('-')}{suffix}"


def endpoint_alarm_name(endpoint: str, variant: str, kind: str) -> str:
    """``<endpoint>-<variant>-<kind>``, e.g. ``customer-churn-prod-champion-5xx-rate``."""
    return f"{endpoint}-{variant}-{kind}"


def rollback_alarm_names(endpoint: str, variants: Sequence[str]) -> list[str]:
    """The alarms that roll a deployment back: 5XX error rate and p99 latency per production variant.

    The shadow variant is left out: its responses never reach callers, so a struggling
    challenger must not roll back the champion. Monitoring creates alarms with exactly
    these names; the endpoint's auto-rollback configuration refers to them by name.
    """
    production = [v for v in variants if v != CHALLENGER]
    return [
        endpoint_alarm_name(endpoint, v, kind) for v in production for kind in ("5xx-rate", "latency-p99")
    ]


# -- rollout ----------------------------------------------------------------------------
def traffic_routing(
    strategy: str, canary_size_percent: int = 10, linear_step_percent: int = 20, wait_seconds: int = 600
) -> dict[str, Any]:
    """The blue/green traffic routing configuration for a strategy (pulumi-aws input shape).

    ``shadow`` shifts all at once: the challenger is not part of the rollout, it only
    mirrors traffic, so an update replaces champion (and challenger) in one step.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    routing: dict[str, Any] = {"wait_interval_in_seconds": wait_seconds}
    if strategy == "canary":
        routing |= {
            "type": "CANARY",
            "canary_size": {"type": "CAPACITY_PERCENT", "value": canary_size_percent},
        }
    elif strategy == "linear":
        routing |= {
            "type": "LINEAR",
            "linear_step_size": {"type": "CAPACITY_PERCENT", "value": linear_step_percent},
        }
    else:
        routing["type"] = "ALL_AT_ONCE"
    return routing


def rollout_wait_seconds(
    strategy: str, linear_step_percent: int, wait_seconds: int, termination_seconds: int
) -> int:
    """The longest a rollout spends waiting: a bake after every traffic shift, then termination.

    All-at-once (and shadow) shift once, canary twice, linear once per step. The deployment's
    maximum execution timeout must exceed this, or a healthy rollout would time out.
    """
    shifts = {"canary": 2, "linear": math.ceil(100 / linear_step_percent)}.get(strategy, 1)
    return shifts * wait_seconds + termination_seconds


def deployment_config(
    routing: Mapping[str, Any],
    max_execution_timeout_seconds: int,
    termination_wait_seconds: int,
    alarms: Sequence[str],
) -> dict[str, Any]:
    """The endpoint's deployment config; auto-rollback only when there are alarms (AWS wants 1 to 10)."""
    config: dict[str, Any] = {
        "blue_green_update_policy": {
            "traffic_routing_configuration": dict(routing),
            "maximum_execution_timeout_in_seconds": max_execution_timeout_seconds,
            "termination_wait_in_seconds": termination_wait_seconds,
        }
    }
    if alarms:
        config["auto_rollback_configuration"] = {"alarms": [{"alarm_name": a} for a in alarms]}
    return config
