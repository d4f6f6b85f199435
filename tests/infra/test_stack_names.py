"""Every name a deployed pipeline uses at run time is one of its own stack's resources.

A definition built with a default (the schema name) instead of the stack's name deploys
without complaint and fails only at run time on AWS ("has no Approved model", a count that
stays 0), so this reads the definitions the program actually deploys, per committed stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.harness import committed_stack

STACKS = ("dev", "staging", "prod")
# Container arguments that name a stack resource, and the resource they must name.
ARGUMENT_NAMES = {"--feature-group": "feature_group", "--model-package-group": "model_package_group"}
PARAMETER_NAMES = {"FeatureGroupName": "feature_group"}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def names_used(definition: dict) -> dict[str, set[str]]:
    """The stack names a definition uses, by kind of resource."""
    used: dict[str, set[str]] = {
        k: set() for k in ("feature_group", "model_package_group", "bucket", "endpoint")
    }
    for step in definition["Steps"]:
        arguments = step["Arguments"]
        args = arguments.get("AppSpecification", {}).get("ContainerArguments", [])
        for i, arg in enumerate(args[:-1]):
            if isinstance(arg, str) and arg in ARGUMENT_NAMES and isinstance(args[i + 1], str):
                used[ARGUMENT_NAMES[arg]].add(args[i + 1])
        if "ModelPackageGroupName" in json.dumps(arguments):
            text = json.dumps(arguments)
            used["model_package_group"] |= set(re.findall(r'"ModelPackageGroupName": "([^"]+)"', text))
    for parameter in definition["Parameters"]:
        if parameter["Name"] in PARAMETER_NAMES:
            used[PARAMETER_NAMES[parameter["Name"]]].add(parameter["DefaultValue"])
        if parameter["Name"] == "CaptureUri":
            used["endpoint"].add(parameter["DefaultValue"].rstrip("/").rsplit("/", 1)[-1])
    used["bucket"] = {m for s in _strings(definition) for m in re.findall(r"^s3://([^/]+)/", s)}
    return used


def stack_names(stack: str) -> dict[str, str]:
    rec = committed_stack(stack, True)
    return {
        "feature_group": rec.one("aws:sagemaker/featureGroup:FeatureGroup").inputs["featureGroupName"],
        "model_package_group": rec.one("aws:sagemaker/modelPackageGroup:ModelPackageGroup").inputs[
            "modelPackageGroupName"
        ],
        "bucket": rec.one("aws:s3/bucket:Bucket").inputs["bucket"],
        "endpoint": rec.one("aws:sagemaker/endpoint:Endpoint").inputs["name"],
    }


def deployed_definitions(stack: str) -> dict[str, dict]:
    return {
        p.inputs["pipelineName"].rsplit("-", 1)[1]: json.loads(p.inputs["pipelineDefinition"])
        for p in committed_stack(stack, True).of_type("aws:sagemaker/pipeline:Pipeline")
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_name_a_pipeline_uses_is_the_stacks_own(stack):
    names = stack_names(stack)
    seen: dict[str, set[str]] = {k: set() for k in names}
    for kind, definition in deployed_definitions(stack).items():
        for resource, used in names_used(definition).items():
            assert used <= {names[resource]}, (
                f"{stack} {kind}: {resource} {sorted(used)} != {names[resource]}"
            )
            seen[resource] |= used
    # Each kind of name is really used somewhere, so the comparison above compared something.
    assert all(seen.values()), seen


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitoring_pipeline_reads_the_groups_ingestion_writes_and_training_registers(stack):
    definitions = deployed_definitions(stack)
    names = stack_names(stack)
    assert names_used(definitions["monitoring"])["feature_group"] == {names["feature_group"]}
    assert names_used(definitions["monitoring"])["model_package_group"] == {names["model_package_group"]}
    assert names_used(definitions["ingestion"])["feature_group"] == {names["feature_group"]}
    assert names_used(definitions["training"])["model_package_group"] == {names["model_package_group"]}


@pytest.mark.parametrize("stack", STACKS)
def test_every_job_publishes_its_metrics_under_its_stack(stack):
    for kind in ("ingestion", "monitoring"):
        for step in deployed_definitions(stack)[kind]["Steps"]:
            assert step["Arguments"]["Environment"]["MLOPS_STACK"] == stack, (kind, step["Name"])


@pytest.mark.parametrize("stack", STACKS)
def test_alarms_watch_the_metrics_of_their_own_stack(stack):
    for alarm in committed_stack(stack, True).of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        if alarm.inputs.get("namespace") == "MLOps":
            assert alarm.inputs["dimensions"]["Stack"] == stack, alarm.inputs["name"]


@pytest.mark.parametrize("stack", ("staging", "prod"))
def test_monitoring_is_scheduled_only_once_a_model_is_deployed(stack):
    fresh = committed_stack(stack).of_type("aws:scheduler/schedule:Schedule")
    assert [s.inputs["state"] for s in fresh] == ["DISABLED"]
    deployed = committed_stack(stack, True).of_type("aws:scheduler/schedule:Schedule")
    assert deployed and {s.inputs["state"] for s in deployed} == {"ENABLED"}


def test_the_monitoring_runs_defaults_and_schedules_agree_on_variant_names():
    from infra.monitoring import VARIANT_PARAMETER
    from infra.rollout import CHAMPION

    monitoring = deployed_definitions("staging")["monitoring"]
    defaults = {p["Name"]: p.get("DefaultValue") for p in monitoring["Parameters"]}
    assert defaults[VARIANT_PARAMETER] == CHAMPION
