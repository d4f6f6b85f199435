"""The AWS behaviours moto lacks, on one virtual clock, activated in-process by :func:`install`.

::

    Clock ─each minute─► alarms (alarms.py) ─► state, history, SNS, event ──────────────┐
      │                  rollouts (rollouts.py): bake steps, auto-rollback on alarms     │
      │                  scheduler (scheduler.py): rate / cron / at ─► targets           │
      │                  offline store and data capture files written; instance metrics │
      ▲                                                                                  ▼
    POST /_mlops/clock   S3 "Object Created" (s3_events.py) ─► events.py: rules ─► targets.py:
    (control.py)         PutEvents, SageMaker status and      SageMaker pipeline ─► pipelines.py
                         model-package events (registry.py)   Lambda ─► lambdas.py (in-process)
                                                               SNS; API destination (recorded)
    /endpoints/<name>/invocations ─► endpoints.py ─► a variant's mlops serve (fleets.py) ─► capture, metrics
    CreateEndpoint, UpdateEndpoint ─► fleets.py: a server per variant, health-checked; logs, CPU
    /FeatureGroup/<name>, /BatchGetRecord ─► featurestore.py
    CreateMlflowTrackingServer ─► mlflow_tracking.py (a local mlflow server)

Each behaviour patches or extends moto's backends and response classes in this process (the
threaded moto server serves from the same module globals), reads its configuration back from the
emulator's state and is undone by :meth:`Behaviours.uninstall`. Usage::

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0); server.start()
    behaviours = install(Clock(), endpoint_url=f"http://127.0.0.1:{server.get_host_and_port()[1]}")
    ...                      # create resources with boto3, as a deploy does
    behaviours.advance(600)  # ten minutes of alarms, schedules and bakes
    behaviours.uninstall(); server.stop()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from localcloud.behaviours import control, events, registry, s3_events, targets
from localcloud.behaviours.alarms import AlarmBehaviour
from localcloud.behaviours.clock import Clock
from localcloud.behaviours.endpoints import EndpointBehaviour
from localcloud.behaviours.featurestore import OFFLINE_DELAY_SECONDS, FeatureStoreBehaviour
from localcloud.behaviours.fleets import Fleets
from localcloud.behaviours.lambdas import LambdaRunner
from localcloud.behaviours.mlflow_tracking import MlflowBehaviour
from localcloud.behaviours.patching import Patcher
from localcloud.behaviours.pipelines import PipelineBehaviour
from localcloud.behaviours.rollouts import RolloutBehaviour
from localcloud.behaviours.scheduler import SchedulerBehaviour
from localcloud.emulator.extensions import install_extensions

__all__ = ["Behaviours", "Clock", "install"]

_active: Behaviours | None = None


@dataclass
class Behaviours:
    """Handle on the installed behaviours: move the clock, or take everything out again."""

    clock: Clock
    _patcher: Patcher = field(repr=False)
    _pipelines: PipelineBehaviour = field(repr=False)

    def advance(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    def tick(self) -> None:
        self.clock.tick()

    def wait_for_executions(self, timeout: float = 60) -> None:
        """Block until every pipeline execution started so far has ended."""
        self._pipelines.wait(timeout)

    def uninstall(self) -> None:
        global _active
        try:
            self.clock.stop_following()
            self._patcher.restore()
        finally:
            _active = None  # whatever failed, moto is as it was: another installation may follow


def install(
    clock: Clock | None = None,
    *,
    endpoint_url: str | None = None,
    offline_store_delay: float = OFFLINE_DELAY_SECONDS,
) -> Behaviours:
    """Activate every behaviour on moto's backends of this process; one installation at a time.

    ``endpoint_url`` is the emulator's address, where code the emulator runs (Lambda handlers,
    pipeline steps, the MLflow server) sends its own AWS calls; ``offline_store_delay`` how many
    seconds after PutRecord a record is written to the offline store (AWS: up to 15 minutes).
    """
    global _active
    if _active is not None:
        raise RuntimeError("behaviours: already installed in this process; uninstall() the first")
    # The deploy-time extensions (shadow variants kept, feature group configs, ...) are the
    # base these build on: one implementation per API, whoever started the server.
    install_extensions()
    clock = clock or Clock()
    patcher = Patcher()
    events.install(patcher, clock.naive_now)
    patcher.on_restore(events.reset)
    runner = LambdaRunner(endpoint_url)
    patcher.on_restore(runner.close)
    targets.install(runner)
    patcher.on_restore(targets.reset)
    s3_events.install(patcher)
    registry.install(clock, patcher)
    pipelines = PipelineBehaviour(clock, patcher, endpoint_url)
    AlarmBehaviour(clock, patcher)
    fleets = Fleets(clock, patcher, endpoint_url)
    # After the alarms: a bake step sees the alarm states of the same minute.
    RolloutBehaviour(clock, patcher, fleets)
    SchedulerBehaviour(clock, patcher)
    MlflowBehaviour(clock, patcher, endpoint_url)
    features = FeatureStoreBehaviour(clock, patcher, offline_store_delay)
    endpoints = EndpointBehaviour(clock, patcher, fleets)
    control.install(
        patcher, clock, [(features.matches, features.handle), (endpoints.matches, endpoints.handle)]
    )
    _active = Behaviours(clock, patcher, pipelines)
    return _active
