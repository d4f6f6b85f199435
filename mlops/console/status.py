"""``mlops status --stack <env>``: the state of a deployed stack, read through boto3.

Whatever boto3 reaches answers: AWS with the usual credentials, or the local cloud with
``AWS_ENDPOINT_URL``. Every name is derived from the schema and the stack as the Pulumi
program derives it (``infra.rollout``, ``infra.alarms``, ``infra.ml_pipelines``), so nothing
needs configuring. Shown: the endpoint (status, variants and weights, the last deployment and
whether it rolled back), the alarms and their states, the latest pipeline executions (trigger
reason, duration, failure reason), the model versions (approval status, AUC), the most
drifted features now, the shadow comparison where a shadow runs, and the stack's MLOps
maturity level from its config (``mlops.console.maturity``). ``--json`` prints the same
facts for scripts; ``--watch`` refreshes the view in place.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from model_code import metrics
from model_code.contract import schema as schema_mod
from model_code.monitoring.shadow import METRIC_NAMES as SHADOW_METRICS

KINDS = ("ingestion", "training", "monitoring")  # infra.ml_pipelines.KINDS
PRODUCTION_VARIANT = "champion"  # infra.rollout.CHAMPION
EXECUTIONS_SHOWN = 5  # per pipeline
TERMINAL = ("Succeeded", "Failed", "Stopped")
DRIFTED_SHOWN = 5
LOOKBACK = timedelta(days=14)


def _names(schema_name: str, stack: str) -> dict[str, Any]:
    from infra.ml_pipelines import pipeline_name
    from infra.rollout import endpoint_name

    return {
        "endpoint": endpoint_name(schema_name, stack),
        "group": f"{schema_name}-{stack}",
        "pipelines": {kind: pipeline_name(schema_name, stack, kind) for kind in KINDS},
    }


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ValidationException", "ResourceNotFound", "ResourceNotFoundException")


def endpoint_facts(sagemaker: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        described = sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if _missing(exc):
            return None
        raise
    failure = described.get("FailureReason") or ""
    variants = [
        {
            "name": v["VariantName"],
            "weight": v.get("CurrentWeight"),
            "instances": v.get("CurrentInstanceCount"),
            "shadow": False,
        }
        for v in described.get("ProductionVariants", [])
    ]
    variants += [
        {
            "name": v["VariantName"],
            "weight": v.get("CurrentWeight"),
            "instances": v.get("CurrentInstanceCount"),
            "shadow": True,
        }
        for v in described.get("ShadowProductionVariants", [])
    ]
    deployment = described.get("LastDeploymentConfig") or {}
    routing = deployment.get("BlueGreenUpdatePolicy", {}).get("TrafficRoutingConfiguration", {})
    rolled_back = "roll" in failure.lower() or described["EndpointStatus"] == "UpdateRollbackFailed"
    return {
        "name": name,
        "status": described["EndpointStatus"],
        "config": described.get("EndpointConfigName"),
        "variants": variants,
        "last_deployment": routing.get("Type") or ("none" if not deployment else "unknown"),
        "rolled_back": rolled_back,
        "failure_reason": failure or None,
        "created": _iso(described.get("CreationTime")),
        "updated": _iso(described.get("LastModifiedTime")),
        "rollout": rollout_outcome(described, rolled_back),
    }


def rollout_outcome(described: dict[str, Any], rolled_back: bool) -> dict[str, Any]:
    """What the endpoint's last roll-out did, as ``DescribeEndpoint`` tells it.

    SageMaker keeps an update that failed before traffic moved (the new fleet's health check)
    as a ``FailureReason`` on an endpoint still ``InService`` on its old configuration; one its
    alarms stopped says it was rolled back; ``PendingDeploymentSummary`` is a roll-out going on.
    """
    status, failure = described["EndpointStatus"], described.get("FailureReason") or ""
    pending = described.get("PendingDeploymentSummary") or {}
    deployment = described.get("LastDeploymentConfig") or {}
    routing = deployment.get("BlueGreenUpdatePolicy", {}).get("TrafficRoutingConfiguration", {})
    if pending or status == "Updating":
        outcome = "in progress"
    elif rolled_back:
        outcome = "rolled back"
    elif failure:
        outcome = "failed"
    elif deployment:
        outcome = "completed"
    else:
        outcome = "none since the endpoint was created"
    return {
        "outcome": outcome,
        "strategy": routing.get("Type") or ("blue/green" if deployment else None),
        "reason": failure or None,
        "to_config": pending.get("EndpointConfigName"),
        "started": _iso(pending.get("StartTime")),
        "ended": None
        if outcome in ("in progress", "none since the endpoint was created")
        else _iso(described.get("LastModifiedTime")),
    }


def alarm_facts(cloudwatch: Any, prefix: str) -> list[dict[str, Any]]:
    alarms = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix):
        for alarm in page.get("MetricAlarms", []):
            alarms.append(
                {
                    "name": alarm["AlarmName"],
                    "state": alarm["StateValue"],
                    "since": _iso(alarm.get("StateUpdatedTimestamp")),
                    "reason": alarm.get("StateReason"),
                }
            )
    return sorted(alarms, key=lambda a: (a["state"] != "ALARM", a["name"]))


def execution_facts(sagemaker: Any, pipeline: str, limit: int = EXECUTIONS_SHOWN) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    try:
        summaries = sagemaker.list_pipeline_executions(
            PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=limit
        )["PipelineExecutionSummaries"]
    except ClientError as exc:
        if _missing(exc):
            return []
        raise
    executions = []
    for summary in summaries:
        arn = summary["PipelineExecutionArn"]
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        parameters = {
            p["Name"]: p["Value"]
            for p in sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn).get(
                "PipelineParameters", []
            )
        }
        start, end = described.get("CreationTime"), described.get("LastModifiedTime")
        status = described["PipelineExecutionStatus"]
        executions.append(
            {
                "pipeline": pipeline,
                "arn": arn,
                "status": status,
                "trigger_reason": parameters.get("TriggerReason"),
                "started": _iso(start),
                "seconds": _seconds(sagemaker, arn, start, end if status in TERMINAL else None),
                "failure_reason": described.get("FailureReason"),
            }
        )
    return executions


def _seconds(sagemaker: Any, arn: str, start: Any, end: Any) -> float | None:
    """How long an execution ran: from its first step's start to its last step's end (the steps'
    own times; an execution's may not move while its jobs run, as on the local cloud's
    virtual clock), else from its creation to its end; None while it runs."""
    from botocore.exceptions import ClientError

    try:
        steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    except ClientError:
        steps = []
    starts = [s["StartTime"] for s in steps if s.get("StartTime")]
    ends = [s["EndTime"] for s in steps if s.get("EndTime")]
    if starts and ends and end is not None:
        return round((max(ends) - min(starts)).total_seconds(), 1)
    return round((end - start).total_seconds(), 1) if start and end else None


def last_retraining(executions: list[dict[str, Any]], training: str) -> dict[str, Any] | None:
    """The newest training run a trigger started (not by hand) that was not stopped as a duplicate."""
    runs = [
        e for e in executions if e["pipeline"] == training and e["trigger_reason"] not in (None, "manual")
    ]
    ran = [e for e in runs if e["status"] != "Stopped"] or runs
    return max(ran, key=lambda e: e["started"] or "") if ran else None


def model_facts(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    from model_code import register_info

    try:
        pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
        summaries = [s for page in pages for s in page.get("ModelPackageSummaryList", [])]
    except ClientError as exc:
        if _missing(exc):
            return []
        raise
    models = []
    for summary in sorted(summaries, key=lambda s: s.get("ModelPackageVersion") or 0):
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        auc = None
        uri = register_info.evaluation_uri(package)
        if uri:
            try:
                report = register_info.read_json(uri)
                auc = report.get("binary_classification_metrics", {}).get("auc", {}).get("value")
            except register_info.RegistryError:
                auc = None  # an unreadable report shows as no figure, not a failed status
        models.append(
            {
                "version": summary.get("ModelPackageVersion"),
                "arn": summary["ModelPackageArn"],
                "approval_status": summary.get("ModelApprovalStatus"),
                "auc": auc,
                "created": _iso(summary.get("CreationTime")),
            }
        )
    return models


def latest_values(
    cloudwatch: Any,
    queries: dict[str, tuple[str, dict[str, str]]],
    now: datetime,
    since: datetime | None = None,
) -> dict:
    """The latest value of each (metric name, dimensions) in namespace MLOps, by key; absent if none
    (looking back ``LOOKBACK`` from ``now``, or to ``since`` when later)."""
    if not queries:
        return {}
    keys = list(queries)
    data = []
    for first in range(0, len(keys), 500):  # GetMetricData takes at most 500 queries
        batch = keys[first : first + 500]
        data += cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": f"q{n}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": metrics.NAMESPACE,
                            "MetricName": queries[key][0],
                            "Dimensions": [{"Name": k, "Value": v} for k, v in queries[key][1].items()],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                }
                for n, key in enumerate(batch)
            ],
            StartTime=max(now - LOOKBACK, since or now - LOOKBACK),
            EndTime=now + timedelta(minutes=5),
            ScanBy="TimestampDescending",
        )["MetricDataResults"]
    values = {}
    for n, result in enumerate(data):
        if result.get("Values"):
            values[keys[n]] = result["Values"][0]
    return values


def published_shadows(cloudwatch: Any, model: str, stack: str) -> list[str]:
    """Variants whose shadow comparison the monitoring pipeline has published for this stack
    (also found where DescribeEndpoint does not list the shadow, as moto drops it)."""
    variants = set()
    pages = cloudwatch.get_paginator("list_metrics").paginate(
        Namespace=metrics.NAMESPACE,
        MetricName=SHADOW_METRICS["agreement_rate"],
        Dimensions=[{"Name": "Model", "Value": model}, {"Name": "Stack", "Value": stack}],
    )
    for page in pages:
        for metric in page.get("Metrics", []):
            variants |= {d["Value"] for d in metric["Dimensions"] if d["Name"] == "Variant"}
    return sorted(variants)


def collect(
    session: Any, schema: schema_mod.Schema, stack: str, config: Any = None, has_ci: bool = False
) -> dict:
    """Every fact the status shows, as plain data (what ``--json`` prints)."""
    from mlops.console import clock, maturity

    names = _names(schema.name, stack)
    sagemaker, cloudwatch = session.client("sagemaker"), session.client("cloudwatch")
    cloud = clock.read(session)  # the local cloud's virtual clock, or the wall clock on AWS
    now = cloud.now
    endpoint = endpoint_facts(sagemaker, names["endpoint"])
    alarms = alarm_facts(cloudwatch, names["endpoint"])
    executions = [e for kind in KINDS for e in execution_facts(sagemaker, names["pipelines"][kind])]
    # Latest first across the pipelines, in time order.
    executions.sort(key=lambda e: e["started"] or "", reverse=True)
    production = {"Model": schema.name, "Stack": stack, "Variant": PRODUCTION_VARIANT}
    queries = {f: ("FeaturePSI", {**production, "Feature": f}) for f in [*schema.feature_names, "prediction"]}
    shadows = [v["name"] for v in (endpoint or {}).get("variants", []) if v["shadow"]]
    shadows += [v for v in published_shadows(cloudwatch, schema.name, stack) if v not in shadows]
    for variant in shadows:
        dims = {"Model": schema.name, "Stack": stack, "Variant": variant}
        queries |= {(variant, key): (name, dims) for key, name in SHADOW_METRICS.items()}
    values = latest_values(cloudwatch, queries, now, cloud.started)
    drift = sorted(
        ({"feature": f, "psi": values[f]} for f in queries if isinstance(f, str) and f in values),
        key=lambda d: -d["psi"],
    )
    shadow = {variant: {key: values.get((variant, key)) for key in SHADOW_METRICS} for variant in shadows}
    return {
        "stack": stack,
        "model": schema.name,
        "region": session.region_name,
        "endpoint_name": names["endpoint"],
        "endpoint": endpoint,
        "alarms": alarms,
        "alarms_in_alarm": [a["name"] for a in alarms if a["state"] == "ALARM"],
        "executions": executions,
        "trigger_reasons": sorted({e["trigger_reason"] for e in executions if e["trigger_reason"]}),
        "last_retraining": last_retraining(executions, names["pipelines"]["training"]),
        "models": model_facts(sagemaker, names["group"]),
        "drifted_features": drift[:DRIFTED_SHOWN],
        "shadow": shadow,
        "maturity": maturity.judge(config, has_ci).to_dict() if config is not None else None,
        "read_at": now.isoformat(),
        "clock": cloud.source,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def stack_names(root: Path) -> list[str]:
    """The project's stacks: one ``Pulumi.<stack>.yaml`` each."""
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in root.glob("Pulumi.*.yaml"))


def unknown_stack(stack: str, root: Path) -> str | None:
    """Why ``stack`` cannot be read (naming the stacks there are), or None when it is one."""
    names = stack_names(root)
    if stack in names:
        return None
    return f"--stack: {stack!r} is not a stack of this project (no Pulumi.{stack}.yaml); expected one of: {', '.join(names)}"


def local_cloud_hint(stack: str, session: Any) -> str:
    """What to do when the local stack is asked of AWS: it lives in the local cloud."""
    from mlops.console import clock

    if stack != "local" or not clock.is_aws(clock.endpoint_url(session)):
        return ""
    return (
        "; the local stack lives in the local cloud: run `mlops local --serve` and export the "
        "AWS_ENDPOINT_URL it prints (with AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing)"
    )


def _stack_config(stack: str, root: Path) -> Any:
    """The stack's validated config from ``Pulumi.<stack>.yaml``; None when the file is absent."""
    import yaml

    from infra import config as config_mod

    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return None
    values, region = config_mod.stack_values(yaml.safe_load(path.read_text()) or {})
    return config_mod.parse(values, stack=stack, region=region, root=root)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # --watch ends with Ctrl-C, whenever it comes
        return 0


def _main(argv: list[str] | None) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from rich.live import Live

    from infra.config import ROOT
    from mlops.console.render_status import render

    parser = argparse.ArgumentParser(
        prog="mlops status",
        description="The state of a deployed stack: endpoint and last roll-out, alarms, pipeline runs, "
        "model versions, drift, on the clock of the cloud it reads (the local cloud's own clock there).",
    )
    parser.add_argument("--stack", required=True, help="the stack (dev, staging, prod, local...)")
    parser.add_argument("--schema", type=Path, default=None, help="schema YAML (default: the stack's)")
    parser.add_argument("--region", default=None, help="default: the stack's, else boto3's")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.add_argument("--watch", action="store_true", help="refresh in place until interrupted")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between --watch refreshes")
    args = parser.parse_args(argv)
    if refused := unknown_stack(args.stack, ROOT):
        parser.error(refused)
    try:
        config = _stack_config(args.stack, ROOT)
    except ValueError as exc:
        parser.error(f"Pulumi.{args.stack}.yaml: {exc}")
    schema_path = args.schema or (ROOT / config.schema_path if config else schema_mod.EXAMPLE_SCHEMA)
    schema = schema_mod.load(schema_path)
    region = args.region or (config.region if config else None)
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if session.region_name is None:
        session = boto3.Session(region_name="us-east-1")
    has_ci = (ROOT / ".gitlab-ci.yml").exists()
    try:
        facts = collect(session, schema, args.stack, config, has_ci)
        if args.json:
            print(json.dumps(facts, indent=2, default=str))
            return 0
        console = _console()
        if not args.watch:
            console.print(render(facts))
            return 0
        with Live(render(facts), console=console, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(render(collect(session, schema, args.stack, config, has_ci)), refresh=True)
    except (BotoCoreError, ClientError) as exc:
        hint = local_cloud_hint(args.stack, session)
        print(f"mlops status: could not read the stack {args.stack!r}: {exc}{hint}", file=sys.stderr)
        return 1


def _console() -> Any:
    """The terminal's width on a terminal; piped, lines as long as their content (a pipe has no
    width: wrapping at 80 columns cut names and numbers in two)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=1000, no_color=True)


if __name__ == "__main__":
    sys.exit(main())
