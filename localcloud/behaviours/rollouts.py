"""Endpoint rollouts: ``UpdateEndpoint`` (moto lacks it) with SageMaker's blue/green traffic shifting.

Without a deployment configuration the endpoint switches to the new configuration at once. With
``DeploymentConfig.BlueGreenUpdatePolicy`` the endpoint is ``Updating`` while traffic moves to the
new fleet on the virtual clock:

* ``ALL_AT_ONCE``: all traffic to the new fleet, baked ``WaitIntervalInSeconds``;
* ``CANARY``: ``CanarySize`` (capacity percent, or instances of the new fleet) baked
  ``WaitIntervalInSeconds``, then the rest;
* ``LINEAR``: ``LinearStepSize`` more every ``WaitIntervalInSeconds`` until all;

then ``TerminationWaitInSeconds`` with all traffic on the new fleet before the old one goes. Through
every step the ``AutoRollbackConfiguration`` alarms are watched (as the emulator evaluates them,
:mod:`.alarms`); one in ALARM sends all traffic back to the old fleet: the endpoint is
``InService`` on its old configuration with a ``FailureReason`` naming the alarm, and the new
configuration never served alone. ``DescribeEndpoint`` shows ``PendingDeploymentSummary`` during a
rollout and ``LastDeploymentConfig`` after one. ``RetainAllVariantProperties`` keeps the current
weights and instance counts of variants the new configuration also has.

The new fleet's containers are started (:mod:`.fleets`) before any traffic moves; one that fails
its health check fails the update: the endpoint stays ``InService`` on its old configuration with
the container's ``FailureReason``, as SageMaker leaves it. The fleet that stops serving, old after
a switch or new after a rollback, is retired.

Not emulated: ``MaximumExecutionTimeoutInSeconds``, ``RollingUpdatePolicy``,
``ExcludeRetainedVariantProperties``, ``RetainDeploymentConfig``, instance provisioning time (the
new fleet's servers start during the ``UpdateEndpoint`` call), rollback failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import ValidationError

from localcloud.behaviours.clock import Clock
from localcloud.behaviours.fleets import DeploymentFailed, Fleets
from localcloud.behaviours.patching import Patcher
from localcloud.emulator.sagemaker import set_shadow_variants


@dataclass
class Rollout:
    """One blue/green update: the new fleet's share per phase, each with how long it bakes."""

    endpoint: Any
    region: str
    old_config: str
    new_config: str
    deployment: dict[str, Any]
    variants: list[dict[str, Any]]
    shadows: list[dict[str, Any]]  # the new configuration's shadow variants, as they will serve
    phases: list[tuple[float, float]]
    alarms: list[str]
    phase: int = 0
    phase_end: datetime | None = None
    started: datetime | None = None
    log: list[str] = field(default_factory=list)


def phases(policy: dict[str, Any], new_variants: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(share of traffic on the new fleet, seconds it bakes) for each step of the policy."""
    routing = policy.get("TrafficRoutingConfiguration") or {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    wait = float(routing.get("WaitIntervalInSeconds", 0))
    kind = routing["Type"]
    instances = sum(int(v.get("InitialInstanceCount", 1)) for v in new_variants) or 1

    def share(size: dict[str, Any], key: str) -> float:
        if size["Type"] == "CAPACITY_PERCENT":
            return min(1.0, float(size["Value"]) / 100)
        if size["Type"] == "INSTANCE_COUNT":
            return min(1.0, float(size["Value"]) / instances)
        raise ValidationError(f"{key}.Type: {size['Type']!r} is not CAPACITY_PERCENT or INSTANCE_COUNT")

    if kind == "ALL_AT_ONCE":
        steps = [(1.0, wait)]
    elif kind == "CANARY":
        steps = [(share(routing["CanarySize"], "CanarySize"), wait), (1.0, 0.0)]
    elif kind == "LINEAR":
        step = share(routing["LinearStepSize"], "LinearStepSize")
        count = int(-(-1 // step))  # ceil(1 / step)
        steps = [(min(1.0, step * (i + 1)), wait) for i in range(count)]
    else:
        raise ValidationError(
            f"TrafficRoutingConfiguration.Type: {kind!r} is not ALL_AT_ONCE, CANARY or LINEAR"
        )
    return [*steps, (1.0, float(policy.get("TerminationWaitInSeconds", 0)))]


def _variants(config: Any, current: list[dict[str, Any]], retain: bool) -> list[dict[str, Any]]:
    """The endpoint's production variants (DescribeEndpoint's shape) once ``config`` serves."""
    kept = {v["VariantName"]: v for v in current} if retain else {}
    variants = []
    for variant in config.production_variants:
        count = int(variant.get("InitialInstanceCount", 1))
        weight = float(variant.get("InitialVariantWeight", 1.0))
        old = kept.get(variant["VariantName"], {})
        count, weight = old.get("CurrentInstanceCount", count), old.get("CurrentWeight", weight)
        variants.append(
            {
                "VariantName": variant["VariantName"],
                "CurrentWeight": weight,
                "DesiredWeight": weight,
                "CurrentInstanceCount": count,
                "DesiredInstanceCount": count,
            }
        )
    return variants


class RolloutBehaviour:
    def __init__(self, clock: Clock, patcher: Patcher, fleets: Fleets) -> None:
        self.clock = clock
        self.fleets = fleets
        self.rollouts: dict[str, Rollout] = {}
        patcher.set(sm_responses.SageMakerResponse, "update_endpoint", self._update_action())
        clock.subscribe(self.on_step)
        patcher.on_restore(lambda: clock.unsubscribe(self.on_step))

    def _update_action(self) -> Any:
        behaviour = self

        def update_endpoint(response: Any) -> Any:
            arn = behaviour.update(
                response.sagemaker_backend,
                response._get_param("EndpointName"),
                response._get_param("EndpointConfigName"),
                response._get_param("DeploymentConfig") or {},
                bool(response._get_param("RetainAllVariantProperties")),
            )
            return sm_responses.ActionResult({"EndpointArn": arn})

        return update_endpoint

    def update(
        self, backend: Any, name: str, config_name: str, deployment: dict[str, Any], retain: bool
    ) -> str:
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(f'Could not find endpoint "{name}".')
        config = backend.endpoint_configs.get(config_name)
        if config is None:
            raise ValidationError(f'Could not find endpoint configuration "{config_name}".')
        if endpoint.endpoint_status != "InService":
            raise ValidationError(f'Cannot update in-progress endpoint "{endpoint.arn}".')
        now = self.clock.naive_now()
        endpoint.last_modified_time = now
        endpoint.failure_reason = None
        try:
            self.fleets.provision(backend, name, config_name)
        except DeploymentFailed as failure:
            endpoint.failure_reason = str(failure)
            return endpoint.arn
        variants = _variants(config, endpoint.production_variants, retain)
        policy = deployment.get("BlueGreenUpdatePolicy")
        shadows = list(getattr(config, "shadow_production_variants", None) or [])
        if not policy:
            self._switch(endpoint, config_name, variants, shadows)
            return endpoint.arn
        rollout = Rollout(
            endpoint=endpoint,
            region=backend.region_name,
            old_config=endpoint.endpoint_config_name,
            new_config=config_name,
            deployment=deployment,
            variants=variants,
            shadows=shadows,
            phases=phases(policy, config.production_variants),
            alarms=[
                a["AlarmName"] for a in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", [])
            ],
            started=self.clock.now(),
        )
        endpoint.endpoint_status = "Updating"
        endpoint.pending_deployment_summary = {
            "EndpointConfigName": config_name,
            "ProductionVariants": [
                {**v, "VariantStatus": [{"Status": "Baking", "StartTime": now}]} for v in variants
            ],
            "StartTime": now,
        }
        self.rollouts[endpoint.arn] = rollout
        self._enter(rollout, 0)
        return endpoint.arn

    def _switch(
        self, endpoint: Any, config_name: str, variants: list[dict[str, Any]], shadows: list[dict[str, Any]]
    ) -> None:
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = variants
        set_shadow_variants(endpoint, shadows)
        endpoint.endpoint_status = "InService"
        endpoint.mlops_fleets = None
        endpoint.pending_deployment_summary = None
        self.fleets.retire(endpoint.endpoint_name, keep=config_name)

    def _enter(self, rollout: Rollout, phase: int) -> None:
        share, bake = rollout.phases[phase]
        rollout.phase = phase
        rollout.phase_end = self.clock.now() + timedelta(seconds=bake)
        rollout.endpoint.mlops_fleets = [(rollout.new_config, share), (rollout.old_config, 1.0 - share)]
        rollout.log.append(
            f"{self.clock.now().isoformat()} {share:.0%} on {rollout.new_config}, baking {bake:g} s"
        )

    def on_step(self, now: datetime) -> None:
        for arn, rollout in list(self.rollouts.items()):
            firing = [a for a in rollout.alarms if self._in_alarm(rollout.region, a)]
            if firing:
                self._roll_back(rollout, firing)
                del self.rollouts[arn]
                continue
            while rollout.phase_end is not None and now >= rollout.phase_end:
                if rollout.phase + 1 < len(rollout.phases):
                    self._enter(rollout, rollout.phase + 1)  # a step that bakes 0 s passes at once
                else:
                    self._switch(rollout.endpoint, rollout.new_config, rollout.variants, rollout.shadows)
                    rollout.endpoint.last_deployment_config = rollout.deployment
                    rollout.endpoint.last_modified_time = now.replace(tzinfo=None)
                    del self.rollouts[arn]
                    break

    @staticmethod
    def _in_alarm(region: str, name: str) -> bool:
        alarm = cloudwatch_backends[DEFAULT_ACCOUNT_ID][region].alarms.get(name)
        return alarm is not None and alarm.state_value == "ALARM"

    def _roll_back(self, rollout: Rollout, firing: list[str]) -> None:
        endpoint = rollout.endpoint
        endpoint.mlops_fleets = None  # every request back on the old fleet
        self.fleets.retire(endpoint.endpoint_name, keep=rollout.old_config)
        endpoint.endpoint_status = "InService"
        endpoint.pending_deployment_summary = None
        endpoint.last_deployment_config = rollout.deployment
        endpoint.last_modified_time = self.clock.naive_now()
        endpoint.failure_reason = (
            f"Update of endpoint {endpoint.endpoint_name} to {rollout.new_config} was rolled back to "
            f"{rollout.old_config}: alarm(s) {', '.join(firing)} in ALARM during the deployment."
        )
