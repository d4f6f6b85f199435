"""``mlops cost --stack <env>``: the estimated monthly cost of a stack's always-on parts.

Computed from the stack's own config (``Pulumi.<stack>.yaml``, validated like `pulumi up`
validates it) and the dated price table ``mlops/prices.yaml``. "Always-on" means what is
billed whether or not anyone calls the model: endpoint instances, the MLflow server, alarms,
the dashboard, the key, storage, and the scheduled monitoring and retraining runs. Per-request
charges (serverless inference, feature store reads and writes) are not included.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra import config as config_mod
from infra.config import ConfigError, PlatformConfig

PRICES = Path(__file__).with_name("prices.yaml")
# Assumed volumes for storage lines, stated in the output.
ASSUMED_S3_GB = 10
ASSUMED_IMAGE_GB = 1.5
ASSUMED_ONLINE_STORE_GB = 1
# A monitoring run: three processing steps of about 4 minutes on one ml.m5.large each.
MONITORING_RUN_INSTANCE_HOURS = 3 * 4 / 60
# A retraining run: validation, preparation, training and evaluation, about 40 instance-minutes.
RETRAINING_RUN_INSTANCE_HOURS = 40 / 60
_PER_MONTH = {"minute": 730 * 60, "hour": 730, "day": 730 / 24}


@dataclass(frozen=True)
class Line:
    item: str
    detail: str
    monthly: float


def runs_per_month(expression: str) -> float:
    """Runs a month of ``rate(N unit)``; a cron expression is counted as daily (stated)."""
    if expression.startswith("rate("):
        amount, unit = expression[5:-1].split()
        return _PER_MONTH[unit.rstrip("s")] / int(amount)
    return 730 / 24


def alarm_metrics(config: PlatformConfig, n_features: int) -> int:
    """Metrics in the stack's alarms: the per-variant computational ones (two error-rate alarms
    of two metrics each, latency, CPU, memory), one drift alarm per feature and the prediction,
    live quality and data volume."""
    variants = 0
    if config.deploys_model:
        variants = 2 if config.deployment_strategy == "shadow" else 1
    per_variant = 2 * 2 + 1 + (0 if config.serverless else 2)
    drift = n_features + 1 if config.drift_monitoring else 0
    return variants * per_variant + drift + 2


def estimate(config: PlatformConfig, prices: dict[str, Any], n_features: int) -> list[Line]:
    hours = prices["hours_per_month"]
    lines = []
    if config.deploys_model and not config.serverless:
        rate = _price(prices["sagemaker_hosting_per_hour"], config.instance_type, "instanceType")
        count = config.min_capacity * (2 if config.deployment_strategy == "shadow" else 1)
        lines.append(
            Line("endpoint instances", f"{count} × {config.instance_type} at ${rate}/h", count * rate * hours)
        )
    elif config.deploys_model:
        lines.append(Line("serverless endpoint", "billed per request only", 0.0))
    else:
        lines.append(Line("endpoint", "none until modelPackageArn is set", 0.0))
    if config.mlflow_enabled:
        rate = prices["mlflow_tracking_server_per_hour"]["Small"]
        lines.append(Line("MLflow tracking server", f"Small at ${rate}/h", rate * hours))
    processing = _price(prices["sagemaker_processing_per_hour"], "ml.m5.large", "processing")
    if config.monitoring_schedule_enabled:
        runs = runs_per_month(config.monitoring_schedule)
        lines.append(
            Line(
                "scheduled monitoring",
                f"{runs:.0f} runs ({config.monitoring_schedule})",
                runs * MONITORING_RUN_INSTANCE_HOURS * processing,
            )
        )
    if config.retrain_schedule_enabled:
        runs = runs_per_month(config.retrain_schedule)
        lines.append(
            Line(
                "scheduled retraining",
                f"{runs:.1f} runs ({config.retrain_schedule})",
                runs * RETRAINING_RUN_INSTANCE_HOURS * processing,
            )
        )
    metrics = alarm_metrics(config, n_features)
    lines += [
        Line(
            "CloudWatch alarms", f"{metrics} alarm metrics", metrics * prices["cloudwatch_alarm_metric_month"]
        ),
        Line("CloudWatch dashboard", "1 dashboard", prices["cloudwatch_dashboard_month"]),
        Line("KMS key", "1 customer-managed key", prices["kms_key_month"]),
        Line("S3 artifacts", f"~{ASSUMED_S3_GB} GB", ASSUMED_S3_GB * prices["s3_gb_month"]),
        Line("ECR image", f"~{ASSUMED_IMAGE_GB} GB", ASSUMED_IMAGE_GB * prices["ecr_gb_month"]),
        Line(
            "feature store online",
            f"~{ASSUMED_ONLINE_STORE_GB} GB",
            ASSUMED_ONLINE_STORE_GB * prices["feature_store_online_gb_month"],
        ),
    ]
    return lines


def _price(table: dict[str, float], instance_type: str, key: str) -> float:
    if instance_type not in table:
        raise ConfigError(
            f"mlops-platform:{key}: {instance_type!r} has no price in {PRICES.name}; "
            f"known: {', '.join(sorted(table))}"
        )
    return table[instance_type]


def stack_estimate(
    stack: str, *, with_model: bool = False, root: Path = config_mod.ROOT
) -> tuple[PlatformConfig, dict, list[Line]]:
    """Validate ``Pulumi.<stack>.yaml`` and price it; ``with_model`` prices the endpoint as if
    a model package were approved (the steady state of a stack that has none yet)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise ConfigError(f"--stack: no Pulumi.{stack}.yaml; stacks: {', '.join(stacks)}")
    values, region = config_mod.stack_values(yaml.safe_load(path.read_text()))
    config = config_mod.parse(values, stack=stack, region=region, root=root)
    if with_model and not config.deploys_model:
        arn = f"arn:aws:sagemaker:{config.region}:000000000000:model-package/estimate/1"
        config = dataclasses.replace(config, model_package_arn=arn, shadow_model_package_arn=arn)
    from model_code.contract import schema

    n_features = len(schema.load(root / config.schema_path).features)
    prices = yaml.safe_load(PRICES.read_text())
    return config, prices, estimate(config, prices, n_features)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops cost", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--stack", required=True, help="dev, staging, prod or any Pulumi.<stack>.yaml")
    parser.add_argument(
        "--with-model",
        action="store_true",
        help="price the endpoint as if modelPackageArn were set (the steady state)",
    )
    args = parser.parse_args(argv)
    try:
        config, prices, lines = stack_estimate(args.stack, with_model=args.with_model)
    except ConfigError as exc:
        parser.exit(2, f"mlops cost: {exc}\n")
    from rich.console import Console
    from rich.table import Table

    total = sum(line.monthly for line in lines)
    table = Table(title=f"Stack {args.stack}: always-on monthly estimate ({config.region})")
    table.add_column("item")
    table.add_column("detail")
    table.add_column("USD / month", justify="right")
    for line in lines:
        table.add_row(line.item, line.detail, f"{line.monthly:,.2f}")
    table.add_row("total", f"${total / 30.4:,.2f} a day", f"{total:,.2f}", style="bold")
    console = Console()
    console.print(table)
    console.print(
        f"Prices: mlops/prices.yaml, {prices['region']}, dated {prices['date']} (list prices, approximate)."
    )
    return 0
