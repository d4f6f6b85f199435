"""``mlops verify --stack <env>``: does the live account match what the stack declared?

Run after every ``pulumi up`` (CI does): a provider reports success for an endpoint update
SageMaker rolled back (terraform-provider-aws #39099, #48997), so success of the deploy
alone proves little. What the stack declared comes from its outputs (``pulumi stack output
--json``, or ``--outputs FILE`` in the same shape, e.g. saved by the local deploy); what is
live is read through boto3, so ``AWS_ENDPOINT_URL`` points it at the local cloud. Checks:

* the endpoint is InService on the declared endpoint configuration, and the last deployment
  was not rolled back;
* its variants (production and shadow) are the declared ones, with the declared weights, and
  each serves the declared model package;
* every declared alarm exists and none is in ALARM;
* each pipeline exists and its definition is the one the stack deployed (by digest);
* the feature group is Created.

It prints each check, declared against live; ``--json`` for scripts. Exit status 1 on any
difference, 2 when the outputs cannot be read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.ml_pipelines import definition_digest


@dataclass(frozen=True)
class Check:
    name: str
    declared: str
    live: str
    ok: bool


def load_outputs(stack: str, path: str | None) -> dict[str, Any]:
    """The stack's outputs from ``path``, or from ``pulumi stack output --json --stack <stack>``."""
    if path is not None:
        return json.loads(Path(path).read_text())
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--stack", stack], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"pulumi stack output --stack {stack} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _alarm_names(alarms: Any) -> list[str]:
    """The ``alarms`` output (lists and single names, nested by kind) as one sorted list."""
    if isinstance(alarms, str):
        return [alarms]
    if isinstance(alarms, dict):
        return sorted({n for v in alarms.values() for n in _alarm_names(v)})
    if isinstance(alarms, list):
        return sorted({n for v in alarms for n in _alarm_names(v)})
    return []


def _weights(variants: list[dict], key: str) -> str:
    return ", ".join(f"{v['VariantName']}={float(v.get(key, 0.0)):g}" for v in variants) or "none"


def _model_package(sm: Any, model_name: str) -> str:
    try:
        model = sm.describe_model(ModelName=model_name)
    except ClientError:
        return f"model {model_name} missing"
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    return container.get("ModelPackageName") or container.get("Image") or "no model package"


def check_endpoint(sm: Any, outputs: dict[str, Any]) -> list[Check]:
    endpoint, declared_config = outputs.get("endpointName"), outputs.get("endpointConfigName")
    if not endpoint:
        return [Check("endpoint", "none (no model approved yet)", "not checked", True)]
    try:
        live = sm.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        return [
            Check("endpoint", f"{endpoint} InService", f"missing ({error.response['Error']['Code']})", False)
        ]
    reason = live.get("FailureReason") or ""
    checks = [
        Check("endpoint status", "InService", live["EndpointStatus"], live["EndpointStatus"] == "InService"),
        Check(
            "endpoint configuration",
            declared_config,
            live["EndpointConfigName"],
            live["EndpointConfigName"] == declared_config,
        ),
        # SageMaker leaves the reason of a rolled-back update on the endpoint, in service on
        # the old configuration (the provider reported success and deleted it: #48997).
        Check(
            "last deployment",
            "not rolled back",
            f"rolled back: {reason}" if "roll" in reason.lower() else (reason or "not rolled back"),
            not reason,
        ),
    ]
    try:
        config = sm.describe_endpoint_config(EndpointConfigName=declared_config)
    except ClientError:
        return [*checks, Check("declared configuration", declared_config, "missing", False)]
    declared_variants = config["ProductionVariants"]
    declared_shadow = config.get("ShadowProductionVariants", [])
    checks += [
        Check(
            "variants and weights",
            _weights(declared_variants, "InitialVariantWeight"),
            _weights(live.get("ProductionVariants", []), "CurrentWeight"),
            _weights(declared_variants, "InitialVariantWeight")
            == _weights(live.get("ProductionVariants", []), "CurrentWeight"),
        ),
        Check(
            "shadow variant",
            _weights(declared_shadow, "InitialVariantWeight"),
            _weights(live.get("ShadowProductionVariants", []), "CurrentWeight"),
            _weights(declared_shadow, "InitialVariantWeight")
            == _weights(live.get("ShadowProductionVariants", []), "CurrentWeight"),
        ),
    ]
    packages = {
        "champion": outputs.get("modelPackageArn"),
        "challenger": outputs.get("shadowModelPackageArn"),
    }
    for variant in [*declared_variants, *declared_shadow]:
        expected = packages.get(variant["VariantName"])
        if expected:
            actual = _model_package(sm, variant["ModelName"])
            checks.append(Check(f"model of {variant['VariantName']}", expected, actual, actual == expected))
    return checks


def check_alarms(cw: Any, outputs: dict[str, Any]) -> list[Check]:
    names = _alarm_names(outputs.get("alarms"))
    found: dict[str, str] = {}
    for start in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
        for page in cw.get_paginator("describe_alarms").paginate(
            AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        ):
            for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                found[alarm["AlarmName"]] = alarm["StateValue"]
    checks = []
    for name in names:
        state = found.get(name, "missing")
        checks.append(Check(f"alarm {name}", "exists, not ALARM", state, state not in ("missing", "ALARM")))
    return checks


def check_pipelines(sm: Any, outputs: dict[str, Any]) -> list[Check]:
    digests = outputs.get("pipelineDefinitionDigests") or {}
    checks = []
    for kind, arn in sorted((outputs.get("pipelines") or {}).items()):
        name = arn.rsplit("/", 1)[-1]
        declared = digests.get(kind)
        try:
            live = definition_digest(sm.describe_pipeline(PipelineName=name)["PipelineDefinition"])
        except ClientError:
            checks.append(Check(f"pipeline {name}", declared or "exists", "missing", False))
            continue
        checks.append(
            Check(
                f"pipeline {name}",
                declared or "exists",
                live if declared else "exists",
                declared in (None, live),
            )
        )
    return checks


def check_feature_group(sm: Any, outputs: dict[str, Any]) -> list[Check]:
    name = outputs.get("featureGroup")
    if not name:
        return []
    try:
        status = sm.describe_feature_group(FeatureGroupName=name)["FeatureGroupStatus"]
    except ClientError:
        status = "missing"
    return [Check(f"feature group {name}", "Created", status, status == "Created")]


def verify(outputs: dict[str, Any], session: Any = None) -> list[Check]:
    """Every check of the stack ``outputs`` against the account ``session`` reaches."""
    session = session or boto3.session.Session()
    sm, cw = session.client("sagemaker"), session.client("cloudwatch")
    return [
        *check_endpoint(sm, outputs),
        *check_alarms(cw, outputs),
        *check_pipelines(sm, outputs),
        *check_feature_group(sm, outputs),
    ]


def render(stack: str, checks: list[Check]) -> str:
    rows = [("check", "declared", "live", "")] + [
        (c.name, c.declared, c.live, "ok" if c.ok else "DIFFERS") for c in checks
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = [f"mlops verify --stack {stack}"]
    lines += [
        "  ".join(str(v).ljust(w) for v, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows
    ]
    failed = [c for c in checks if not c.ok]
    lines.append(
        f"{len(checks) - len(failed)}/{len(checks)} checks pass"
        + (
            ""
            if not failed
            else "; differs: " + "; ".join(f"{c.name}: declared {c.declared}, live {c.live}" for c in failed)
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops verify", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument("--stack", required=True, help="the stack to check: dev, staging, prod or local")
    parser.add_argument(
        "--outputs", help="the stack's outputs as JSON (default: pulumi stack output --json --stack <stack>)"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    try:
        outputs = load_outputs(args.stack, args.outputs)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"mlops verify: cannot read the outputs of stack {args.stack}: {error}", file=sys.stderr)
        return 2
    checks = verify(outputs)
    ok = all(c.ok for c in checks)
    if args.json:
        print(json.dumps({"stack": args.stack, "ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render(args.stack, checks))
    return 0 if ok else 1
