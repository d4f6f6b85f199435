"""``mlops verify --stack <env>``: does the live account match what the stack declared?

Run after every ``pulumi up`` (CI does): a provider reports success for an endpoint update
SageMaker rolled back (terraform-provider-aws #39099, #48997), so success of the deploy
alone proves little. What the stack declared comes from its outputs: ``--outputs FILE``;
for ``--stack local`` (or with ``--state-dir``) the local engine's state file
``.state/<stack>.json``, where ``mlops local`` and ``mlops local deploy`` keep them; otherwise
``pulumi stack output --json``. What is live is read through boto3, so ``AWS_ENDPOINT_URL``
points it at the local cloud. Checks:

* the endpoint is InService on the declared endpoint configuration, and the last deployment
  was not rolled back;
* its variants (production and shadow) are the declared ones, with the declared weights, and
  each serves the declared model package;
* every declared alarm exists and none is in ALARM;
* each pipeline exists and its definition is the one the stack deployed (by digest);
* the feature group is Created.

It prints each check, declared against live; ``--json`` for scripts. A deploy fails on the
deployment's health: exit status 1 on any difference but one, an alarm about the *data*
(drift, model quality, new-data volume) in ALARM. Those are reported (``reported`` in the
table) and are what monitoring and retraining act on; ``--fail-on-drift`` makes them fail too.
Exit status 2 when the outputs cannot be read.
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

# Kinds of the ``alarms`` output whose ALARM state says something about the data, not about
# the deployment: they start retraining, they do not fail a deploy.
DATA_ALARM_KINDS = ("drift", "driftEpisode", "quality", "dataVolume")
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Check:
    """One comparison; ``health`` False marks a data alarm, which fails only with --fail-on-drift."""

    name: str
    declared: str
    live: str
    ok: bool
    health: bool = True


def load_outputs(stack: str, path: str | None, state_dir: Path | None = None) -> dict[str, Any]:
    """The stack's outputs from ``path``; from the local engine's state file in ``state_dir``
    (default ``.state`` for the ``local`` stack); else ``pulumi stack output --json``."""
    if path is not None:
        return json.loads(Path(path).read_text())
    if state_dir is not None or stack == "local":
        state_file = (state_dir or ROOT / ".state") / f"{stack}.json"
        if not state_file.exists():
            raise RuntimeError(
                f"{state_file} does not exist: deploy the stack to the local cloud first "
                f"(`mlops local` or `mlops local deploy --stack {stack}`)"
            )
        return json.loads(state_file.read_text()).get("outputs", {})
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


def _data_alarm_names(alarms: Any) -> set[str]:
    """The alarms only the data kinds list: an alarm another kind lists too may roll back a rollout."""
    if not isinstance(alarms, dict):
        return set()
    data = set(_alarm_names([v for k, v in alarms.items() if k in DATA_ALARM_KINDS]))
    return data - set(_alarm_names([v for k, v in alarms.items() if k not in DATA_ALARM_KINDS]))


def check_alarms(cw: Any, outputs: dict[str, Any]) -> list[Check]:
    names = _alarm_names(outputs.get("alarms"))
    data = _data_alarm_names(outputs.get("alarms"))
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
        ok = state not in ("missing", "ALARM")
        # A missing alarm is a deployment unlike its declaration, whatever the alarm watches.
        health = name not in data or state == "missing"
        checks.append(Check(f"alarm {name}", "exists, not ALARM", state, ok, health=health))
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


def failures(checks: list[Check], *, fail_on_drift: bool = False) -> list[Check]:
    """The checks that fail the deploy: health differences, and data alarms only if asked."""
    return [c for c in checks if not c.ok and (c.health or fail_on_drift)]


def _mark(check: Check, fail_on_drift: bool) -> str:
    if check.ok:
        return "ok"
    return "DIFFERS" if check.health or fail_on_drift else "reported"


def render(stack: str, checks: list[Check], *, fail_on_drift: bool = False) -> str:
    rows = [("check", "declared", "live", "")] + [
        (c.name, c.declared, c.live, _mark(c, fail_on_drift)) for c in checks
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = [f"mlops verify --stack {stack}"]
    lines += [
        "  ".join(str(v).ljust(w) for v, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows
    ]
    failed = failures(checks, fail_on_drift=fail_on_drift)
    reported = [c for c in checks if not c.ok and c not in failed]
    lines.append(
        f"{sum(c.ok for c in checks)}/{len(checks)} checks pass"
        + (
            ""
            if not failed
            else "; differs: " + "; ".join(f"{c.name}: declared {c.declared}, live {c.live}" for c in failed)
        )
        + (
            ""
            if not reported
            else f"; {len(reported)} data alarm(s) in ALARM, reported for monitoring and retraining "
            "(--fail-on-drift fails on them): " + ", ".join(c.name.removeprefix("alarm ") for c in reported)
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
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="read the outputs from the local engine's state file here (default for --stack local: .state)",
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument(
        "--fail-on-drift",
        action="store_true",
        help="also fail when a drift, model-quality or data-volume alarm is in ALARM (reported otherwise)",
    )
    args = parser.parse_args(argv)
    try:
        outputs = load_outputs(args.stack, args.outputs, args.state_dir)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"mlops verify: cannot read the outputs of stack {args.stack}: {error}", file=sys.stderr)
        return 2
    checks = verify(outputs)
    ok = not failures(checks, fail_on_drift=args.fail_on_drift)
    if args.json:
        print(json.dumps({"stack": args.stack, "ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render(args.stack, checks, fail_on_drift=args.fail_on_drift))
    return 0 if ok else 1
