"""The stack's configuration: read once, validated into one frozen object, before any resource.

Only this module reads ``pulumi.Config``. A bad value fails here with the key, the value and
what is allowed, e.g. ``mlops-platform:canarySizePercent: 150 is outside (0, 100)``, so a
typo in ``Pulumi.<stack>.yaml`` never half-deploys a stack. ``parse`` takes plain values (a
dict of key -> value, as in the stack file) so that ``mlops cost`` and the tests validate the
very same way without the Pulumi engine.

Every key, its default and what it does is listed in ``KEYS`` (the README's table is checked
against it by a test).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.base import PROJECT
from infra.promotion import Stage, parse_order
from infra.rollout import rollout_wait_seconds

STRATEGIES = ("all-at-once", "canary", "linear", "shadow")
TRAFFIC_SHIFTING = ("canary", "linear")
ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A stack configuration value that cannot be deployed; the message names the key."""


@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    help: str
    required: bool = False


# key -> default and meaning; None means "unset".
KEYS: tuple[Key, ...] = (
    Key("owner", None, "team or person responsible; tagged on every resource", required=True),
    Key("deploymentStrategy", None, "all-at-once | canary | linear | shadow", required=True),
    Key(
        "schemaPath",
        "model_code/schemas/customer-churn.yaml",
        "the data contract (one feature group per schema)",
    ),
    Key(
        "imageUri",
        None,
        "the project image every SageMaker step and model runs (CI sets it after pushing); "
        "default: the ECR repository at the content tag of the code",
    ),
    Key(
        "imageRepositoryExists",
        False,
        "true: use the ECR repository <schema>-<stack> infra/bootstrap created (so CI pushes the "
        "first image before the first deploy) instead of creating it",
    ),
    Key(
        "modelPackageArn",
        None,
        "the approved model package the endpoint serves; unset: no model, endpoint "
        "configuration or endpoint yet",
    ),
    Key(
        "shadowModelPackageArn",
        None,
        "the challenger served as the shadow variant (strategy shadow; unset: the model serves alone)",
    ),
    Key(
        "serverless",
        False,
        "serverless inference (no data capture, no canary/linear/shadow, no drift monitoring)",
    ),
    Key(
        "onlineFeatureLookup",
        False,
        "true: a request may carry only the record identifier; the endpoint reads the features it "
        "leaves out from the feature group's online store (BatchGetRecord); the model then runs "
        "without network isolation",
    ),
    Key("serverlessMemoryMb", 2048, "serverless memory size, 1024-6144 in steps of 1024"),
    Key("serverlessMaxConcurrency", 5, "serverless maximum concurrency, 1-200"),
    Key("instanceType", "ml.m5.large", "real-time instance type"),
    Key("instanceCount", 1, "initial instances of the production variant"),
    Key("minCapacity", None, "autoscaling minimum (default: instanceCount)"),
    Key("maxCapacity", None, "autoscaling maximum (default: instanceCount)"),
    Key("targetInvocationsPerInstance", 70, "autoscaling target: invocations per instance per minute"),
    Key(
        "canarySizePercent",
        10,
        "canary: percent of capacity that takes traffic first, 1-50 (AWS's range); needs instanceCount >= 2",
    ),
    Key("linearStepPercent", 20, "linear: percent of capacity shifted per step, 10-50 (AWS's range)"),
    Key(
        "waitIntervalSeconds",
        600,
        "blue/green: bake time between traffic shifts, 0-3600; a rollout's bakes under 60 minutes in all",
    ),
    Key("maxExecutionTimeoutSeconds", 3600, "blue/green: longest a rollout may take, 600-14400"),
    Key("shadowSamplingPercent", 50, "shadow: percent of requests copied to the challenger, 1-100"),
    Key("dataCapturePercent", 100, "percent of requests captured for monitoring, 1-100"),
    Key("driftMonitoring", True, "run the monitoring pipeline's drift checks on captured traffic"),
    Key("monitoringSchedule", "rate(1 hour)", "how often the monitoring pipeline runs"),
    Key(
        "monitoringScheduleEnabled",
        True,
        "false pauses the monitoring schedule (paused anyway while no model is deployed)",
    ),
    Key("retrainSchedule", "rate(7 days)", "the scheduled retraining trigger"),
    Key("retrainScheduleEnabled", True, "false pauses scheduled retraining"),
    Key("mlflowEnabled", False, "a SageMaker managed MLflow tracking server"),
    Key(
        "modelSearch",
        "grid",
        "how training picks the model type: grid (a small documented grid, cross-validated) | "
        "quick (one setting per type: the local cloud's stack, where a run must take seconds)",
    ),
    Key("minAuc", 0.7, "quality bar: registration gate and the live-quality alarm"),
    Key("latencyP99Ms", 500, "alarm: model latency p99 in milliseconds"),
    Key("newRecordsThreshold", 10000, "data-volume trigger: new feature-store records since training"),
    Key("alarmEmail", None, "email subscribed to the alarm topic"),
    Key("runbookUrl", None, "the README's runbook as your fork publishes it, linked from the dashboard"),
    Key("gitlabTriggerUrl", None, "GitLab pipeline trigger URL started when a model package is approved"),
    Key("gitlabTriggerToken", None, "the trigger's token (set with --secret)"),
    Key("logRetentionDays", 30, "retention of the platform's log groups"),
    Key(
        "promotionOrder",
        None,
        "the stacks a model is promoted through, in order, each a name or {stack, account} "
        "(e.g. [dev, staging, {stack: prod, account: '222222222222'}]); an approval here deploys "
        "this stack and those after it, which this stack grants its model artifacts to; "
        "unset: this stack promotes nowhere",
    ),
)
_BY_NAME = {k.name: k for k in KEYS}
_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
# model_code.training.selection.SEARCHES (not imported: it loads scikit-learn).
MODEL_SEARCHES = ("grid", "quick")
_RATE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$")
_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+$")


@dataclass(frozen=True)
class PlatformConfig:
    """Everything a stack deploys, validated. Field names follow the config keys."""

    stack: str
    region: str
    owner: str
    deployment_strategy: str
    schema_path: Path
    image_uri: str | None
    image_repository_exists: bool
    model_package_arn: str | None
    shadow_model_package_arn: str | None
    serverless: bool
    online_feature_lookup: bool
    serverless_memory_mb: int
    serverless_max_concurrency: int
    instance_type: str
    instance_count: int
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: int
    canary_size_percent: int
    linear_step_percent: int
    wait_interval_seconds: int
    max_execution_timeout_seconds: int
    shadow_sampling_percent: int
    data_capture_percent: int
    drift_monitoring: bool
    monitoring_schedule: str
    monitoring_schedule_enabled: bool
    retrain_schedule: str
    retrain_schedule_enabled: bool
    mlflow_enabled: bool
    model_search: str
    min_auc: float
    latency_p99_ms: float
    new_records_threshold: int
    alarm_email: str | None
    runbook_url: str | None
    gitlab_trigger_url: str | None
    gitlab_trigger_token: Any
    log_retention_days: int
    promotion_order: tuple[Stage, ...] = ()

    @property
    def deploys_model(self) -> bool:
        return self.model_package_arn is not None


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


class _Reader:
    """Typed access to raw values; each error names the namespaced key and the value."""

    def __init__(self, values: Mapping[str, Any]):
        self.values = values

    def raw(self, name: str) -> Any:
        value = self.values.get(name, _BY_NAME[name].default)
        if value is None and _BY_NAME[name].required:
            raise ConfigError(f"{_key(name)}: missing; expected {_BY_NAME[name].help}")
        return value

    def string(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{_key(name)}: {value!r} is not a non-empty string")
        return value.strip()

    def boolean(self, name: str) -> bool:
        value = self.raw(name)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{_key(name)}: {value!r} is not true or false")
        return value

    def number(
        self,
        name: str,
        *,
        integer: bool = False,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> Any:
        value = self.raw(name)
        value = _decode(value)  # "10" written quoted in a stack file is still ten
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (integer and value != int(value))
        ):
            raise ConfigError(f"{_key(name)}: {value!r} is not {'a whole number' if integer else 'a number'}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open else "]")
            raise ConfigError(f"{_key(name)}: {value:g} is outside {lo}, {hi}")
        return int(value) if integer else float(value)

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value not in allowed:
            raise ConfigError(f"{_key(name)}: {value!r} is not one of {' | '.join(allowed)}")
        return value


def parse(values: Mapping[str, Any], *, stack: str, region: str | None, root: Path = ROOT) -> PlatformConfig:
    """Validate raw values (keys without the project prefix) into a ``PlatformConfig``."""
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"{_key(unknown[0])}: unknown key; expected one of {', '.join(sorted(_BY_NAME))}")
    if not region:
        raise ConfigError("aws:region: missing; every stack sets the AWS region it deploys to")
    r = _Reader(values)
    strategy = r.choice("deploymentStrategy", STRATEGIES)
    instance_count = r.number("instanceCount", integer=True, low=1, high=100)
    min_capacity = (
        instance_count if r.raw("minCapacity") is None else r.number("minCapacity", integer=True, low=1)
    )
    max_capacity = (
        instance_count if r.raw("maxCapacity") is None else r.number("maxCapacity", integer=True, low=1)
    )
    if min_capacity > max_capacity:
        raise ConfigError(
            f"{_key('minCapacity')}: {min_capacity} is above {_key('maxCapacity')} {max_capacity}; "
            "expected minCapacity <= maxCapacity"
        )
    if not min_capacity <= instance_count <= max_capacity:
        raise ConfigError(
            f"{_key('instanceCount')}: {instance_count} is outside the autoscaling range "
            f"[{min_capacity}, {max_capacity}]"
        )
    schema_path = Path(r.string("schemaPath"))
    if not (root / schema_path).is_file():
        raise ConfigError(f"{_key('schemaPath')}: {str(schema_path)!r} is not a file in the repository")
    for name in ("modelPackageArn", "shadowModelPackageArn"):
        arn = r.string(name)
        if arn is not None and not _ARN.match(arn):
            raise ConfigError(
                f"{_key(name)}: {arn!r} is not a SageMaker model package ARN "
                "(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)"
            )
    for name in ("monitoringSchedule", "retrainSchedule"):
        if not _RATE.match(r.string(name)):
            raise ConfigError(
                f"{_key(name)}: {r.raw(name)!r} is not a schedule expression "
                "such as rate(1 hour) or cron(0 3 * * ? *)"
            )
    serverless = r.boolean("serverless")
    drift = r.boolean("driftMonitoring")
    if serverless and strategy != "all-at-once":
        raise ConfigError(
            f"{_key('serverless')}: true cannot be combined with {_key('deploymentStrategy')} {strategy!r}: "
            "AWS supports neither several production variants nor shadow variants on serverless endpoints; "
            "use all-at-once or a real-time endpoint"
        )
    if serverless and drift:
        raise ConfigError(
            f"{_key('serverless')}: true cannot be combined with {_key('driftMonitoring')} true: serverless "
            "endpoints do not support data capture; set driftMonitoring: false or use a real-time endpoint"
        )
    if strategy == "canary":
        _check_canary(
            instance_count, r.number("canarySizePercent", integer=True, low=0, high=50, low_open=True)
        )
    _check_rollout_fits_the_providers_wait(
        strategy,
        r.number("linearStepPercent", integer=True, low=10, high=50),
        r.number("waitIntervalSeconds", integer=True, low=0, high=3600),
    )
    retention = r.number("logRetentionDays", integer=True)
    if retention not in _RETENTION_DAYS:
        raise ConfigError(
            f"{_key('logRetentionDays')}: {retention} is not one of CloudWatch Logs' retention "
            f"periods ({', '.join(map(str, _RETENTION_DAYS))})"
        )
    url, token = r.string("gitlabTriggerUrl"), r.string("gitlabTriggerToken")
    if url and not url.startswith("https://"):
        raise ConfigError(f"{_key('gitlabTriggerUrl')}: {url!r} is not an https:// URL")
    if url and not token:
        raise ConfigError(
            f"{_key('gitlabTriggerToken')}: missing; gitlabTriggerUrl needs the trigger token "
            "(pulumi config set --secret gitlabTriggerToken ...)"
        )
    memory = r.number("serverlessMemoryMb", integer=True, low=1024, high=6144)
    if memory % 1024:
        raise ConfigError(f"{_key('serverlessMemoryMb')}: {memory} is not a multiple of 1024 in [1024, 6144]")
    return PlatformConfig(
        stack=stack,
        region=region,
        owner=r.string("owner"),
        deployment_strategy=strategy,
        schema_path=schema_path,
        image_uri=r.string("imageUri"),
        image_repository_exists=r.boolean("imageRepositoryExists"),
        model_package_arn=r.string("modelPackageArn"),
        shadow_model_package_arn=r.string("shadowModelPackageArn"),
        serverless=serverless,
        online_feature_lookup=r.boolean("onlineFeatureLookup"),
        serverless_memory_mb=memory,
        serverless_max_concurrency=r.number("serverlessMaxConcurrency", integer=True, low=1, high=200),
        instance_type=r.string("instanceType"),
        instance_count=instance_count,
        min_capacity=min_capacity,
        max_capacity=max_capacity,
        target_invocations_per_instance=r.number("targetInvocationsPerInstance", integer=True, low=1),
        canary_size_percent=r.number("canarySizePercent", integer=True, low=0, high=50, low_open=True),
        linear_step_percent=r.number("linearStepPercent", integer=True, low=10, high=50),
        wait_interval_seconds=r.number("waitIntervalSeconds", integer=True, low=0, high=3600),
        max_execution_timeout_seconds=r.number(
            "maxExecutionTimeoutSeconds", integer=True, low=600, high=14400
        ),
        shadow_sampling_percent=r.number("shadowSamplingPercent", integer=True, low=1, high=100),
        data_capture_percent=r.number("dataCapturePercent", integer=True, low=1, high=100),
        drift_monitoring=drift,
        monitoring_schedule=r.string("monitoringSchedule"),
        monitoring_schedule_enabled=r.boolean("monitoringScheduleEnabled"),
        retrain_schedule=r.string("retrainSchedule"),
        retrain_schedule_enabled=r.boolean("retrainScheduleEnabled"),
        mlflow_enabled=r.boolean("mlflowEnabled"),
        model_search=r.choice("modelSearch", MODEL_SEARCHES),
        min_auc=r.number("minAuc", low=0, high=1),
        latency_p99_ms=r.number("latencyP99Ms", low=0, low_open=True),
        new_records_threshold=r.number("newRecordsThreshold", integer=True, low=1),
        alarm_email=r.string("alarmEmail"),
        runbook_url=r.string("runbookUrl"),
        gitlab_trigger_url=url,
        gitlab_trigger_token=token,
        log_retention_days=retention,
        promotion_order=_promotion_order(r.raw("promotionOrder"), stack),
    )


def _promotion_order(value: Any, stack: str) -> tuple[Stage, ...]:
    try:
        return parse_order(_decode(value), key=_key("promotionOrder"), stack=stack)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_canary(instance_count: int, canary_size_percent: int) -> None:
    # AWS: a canary is at most 50% of the variant's instances, and it takes at least one; on a
    # single instance the canary is the whole fleet, and AWS refuses the update only when it
    # runs, after the stack half-changed.
    if instance_count < 2:
        raise ConfigError(
            f"{_key('deploymentStrategy')}: 'canary' with {_key('instanceCount')} {instance_count} "
            f"puts the canary ({_key('canarySizePercent')} {canary_size_percent}, at least one instance) "
            "on the whole fleet; AWS allows at most 50% of the variant's instances: set instanceCount "
            "to at least 2 (or use all-at-once)"
        )


# terraform-provider-aws waits at most 60 minutes for an endpoint to be InService after
# UpdateEndpoint; a blue/green rollout that bakes longer fails `pulumi up` while SageMaker
# carries on, leaving the stack's state behind the endpoint.
PROVIDER_ENDPOINT_WAIT_SECONDS = 60 * 60


def _check_rollout_fits_the_providers_wait(
    strategy: str, linear_step_percent: int, wait_seconds: int
) -> None:
    waiting = rollout_wait_seconds(strategy, linear_step_percent, wait_seconds, 0)
    if waiting < PROVIDER_ENDPOINT_WAIT_SECONDS:
        return
    keys = [_key("deploymentStrategy"), _key("waitIntervalSeconds")]
    if strategy == "linear":
        keys.insert(1, _key("linearStepPercent"))
    shifts = waiting // wait_seconds
    raise ConfigError(
        f"{', '.join(keys)}: a {strategy!r} rollout bakes {wait_seconds} s after each of its {shifts} "
        f"traffic shifts, {waiting} s in all, and the provider waits at most "
        f"{PROVIDER_ENDPOINT_WAIT_SECONDS} s (60 minutes) for the endpoint to be InService: `pulumi up` "
        "would fail while the rollout goes on; shorten waitIntervalSeconds"
        + (" or take larger linearStepPercent steps" if strategy == "linear" else "")
    )


def stack_values(stack_file: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Split a ``Pulumi.<stack>.yaml`` config block into this project's values and the region."""
    config = dict(stack_file.get("config") or {})
    region = config.pop("aws:region", None)
    prefix = f"{PROJECT}:"
    ours = {
        k[len(prefix) :]: (v.get("secure") if isinstance(v, dict) and "secure" in v else v)
        for k, v in config.items()
        if k.startswith(prefix)
    }
    return ours, region


def load() -> PlatformConfig:
    """Read the running stack's config; the only place the program reads ``pulumi.Config``."""
    import dataclasses

    import pulumi
    from pulumi.runtime.config import CONFIG

    prefix = f"{PROJECT}:"
    # Every key of this project the stack sets, known or not: a typo must fail, not pass.
    values = {k[len(prefix) :]: _decode(v) for k, v in CONFIG.get().items() if k.startswith(prefix)}
    token = pulumi.Config().get_secret("gitlabTriggerToken")
    config = parse(values, stack=pulumi.get_stack(), region=pulumi.Config("aws").get("region"))
    # The token stays a secret Output from here on: it never appears in plain state or logs.
    return dataclasses.replace(config, gitlab_trigger_token=token) if token is not None else config


def _decode(value: Any) -> Any:
    # The engine passes every value as a string; structured and scalar YAML values as JSON.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
