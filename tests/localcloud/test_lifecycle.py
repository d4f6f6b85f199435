"""Redeploys of one stack: no change, a new model package, an alarm threshold, a preview,
the command line, and a destroy that leaves nothing behind.

One module-scoped history of the dev stack in one emulator, each step its own deploy; the
tests read what each deploy did and what the emulator holds afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError

from localcloud import cli
from localcloud.engine import Engine, Result
from tests.localcloud.behaviours.endpoint_setup import pack
from tests.localcloud.conftest import register_approved

STACK = "dev"
PACKAGE = "mlops-platform:modelPackageArn"
INSTANCE_TYPE = "mlops-platform:instanceType"


@dataclass
class History:
    emulator: object
    state_dir: object
    first: Result
    again: Result
    preview: Result
    new_package: Result
    threshold: Result
    resize_plan: Result
    resized: Result
    packages: list[str]

    def engine(self, **overrides) -> Engine:
        return Engine(STACK, self.emulator.endpoint_url, state_dir=self.state_dir, overrides=overrides)


@pytest.fixture(scope="module")
def history(emulator, tmp_path_factory, model_dir) -> History:
    emulator.reset()
    state_dir = tmp_path_factory.mktemp("state")

    def deploy(preview=False, **overrides):
        return Engine(STACK, emulator.endpoint_url, state_dir=state_dir, overrides=overrides).up(
            preview=preview
        )

    fresh = deploy()
    group = fresh.outputs["modelPackageGroup"]
    v1, v2 = (
        register_approved(emulator, group, fresh.outputs["bucket"], pack(model_dir)),
        register_approved(emulator, group, fresh.outputs["bucket"], pack(model_dir)),
    )
    first = deploy(**{PACKAGE: v1})
    again = deploy(**{PACKAGE: v1})
    preview = deploy(preview=True, **{PACKAGE: v2})
    new_package = deploy(**{PACKAGE: v2})
    threshold = deploy(**{PACKAGE: v2, "mlops-platform:latencyP99Ms": "900"})
    # Autoscaled (max above min), then a new instance type for the autoscaled variant.
    scaled = {PACKAGE: v2, "mlops-platform:latencyP99Ms": "900", "mlops-platform:maxCapacity": "2"}
    deploy(**scaled)
    resize_plan = deploy(preview=True, **scaled, **{INSTANCE_TYPE: "ml.m5.large"})
    resized = deploy(**scaled, **{INSTANCE_TYPE: "ml.m5.large"})
    return History(
        emulator, state_dir, first, again, preview, new_package, threshold, resize_plan, resized, [v1, v2]
    )


def _ops(result: Result, type_: str) -> list[str]:
    return [o.op for o in result.operations if o.type == type_]


def test_a_redeploy_with_no_change_makes_no_write_call(history):
    assert history.again.writes == 0
    assert {o.op for o in history.again.operations} == {"same"}
    assert len(history.again.operations) == len(history.first.operations)


def test_a_new_model_package_replaces_model_and_configuration_and_updates_the_endpoint(history):
    result = history.new_package
    assert _ops(result, "aws:sagemaker/model:Model") == ["replace"]
    assert _ops(result, "aws:sagemaker/endpointConfiguration:EndpointConfiguration") == ["replace"]
    assert _ops(result, "aws:sagemaker/endpoint:Endpoint") == ["update"]
    calls = {op: n for (_, op), n in result.calls.items()}
    assert calls.get("UpdateEndpoint") == 1 and "CreateEndpoint" not in calls
    # Retained (the program's retain_on_delete), as `pulumi up` leaves them: a rollback returns there.
    assert "DeleteEndpointConfig" not in calls and "DeleteModel" not in calls
    sagemaker = history.emulator.client("sagemaker")
    (endpoint,) = sagemaker.list_endpoints()["Endpoints"]
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint["EndpointName"])[
            "EndpointConfigName"
        ]
    )
    (model,) = [v["ModelName"] for v in config["ProductionVariants"]]
    assert (
        sagemaker.describe_model(ModelName=model)["PrimaryContainer"]["ModelPackageName"]
        == history.packages[1]
    )
    # The old configuration and model remain beside the new ones, no longer the stack's (the
    # history's later resize made a third configuration).
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 3
    assert len(sagemaker.list_models()["Models"]) == 2
    assert not any("EndpointConfiguration" in o.type and o.op == "delete" for o in result.operations)


def test_a_preview_shows_the_same_plan_and_writes_nothing(history):
    assert history.preview.writes == 0
    planned = {(o.name, o.op) for o in history.preview.operations if o.op != "same"}
    done = {(o.name, o.op) for o in history.new_package.operations if o.op != "same"}
    assert planned == done
    endpoint = next(o for o in history.preview.operations if o.type == "aws:sagemaker/endpoint:Endpoint")
    assert "endpointConfigName" in endpoint.changed


def test_an_alarm_threshold_change_updates_the_alarm_in_place(history):
    result = history.threshold
    (latency,) = [o for o in result.operations if o.name.endswith("latency-p99")]
    assert latency.op == "update" and "threshold" in latency.changed
    assert not [o for o in result.operations if o.op in ("create", "replace", "delete")]
    alarm = history.emulator.client("cloudwatch").describe_alarms(AlarmNames=[latency.physical])[
        "MetricAlarms"
    ][0]
    # latencyP99Ms is in milliseconds; SageMaker's ModelLatency, and so the alarm, in microseconds.
    assert alarm["Threshold"] == 900_000


def test_a_new_instance_type_replaces_the_scaling_target_and_policy_around_the_endpoint_update(history):
    """The configuration is deleted before it is replaced (the program's option), so Pulumi
    deletes the scaling target and policy that read its name first and creates them after the
    endpoint update: AWS refuses to change the instance type of a variant registered for
    autoscaling (README "Updates and rollbacks")."""
    plan = {
        (o.type.rsplit(":", 1)[-1], o.op, o.delete_first)
        for o in history.resize_plan.operations
        if o.op != "same"
    }
    assert plan == {
        ("EndpointConfiguration", "replace", True),
        ("Target", "replace", True),
        ("Policy", "replace", True),
        ("Endpoint", "update", False),
    }
    done = {(o.type.rsplit(":", 1)[-1], o.op) for o in history.resized.operations if o.op != "same"}
    assert done == {(kind, op) for kind, op, _ in plan}
    sagemaker = history.emulator.client("sagemaker")
    (endpoint,) = sagemaker.list_endpoints()["Endpoints"]
    serving = sagemaker.describe_endpoint(EndpointName=endpoint["EndpointName"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=serving["EndpointConfigName"])
    assert [v["InstanceType"] for v in config["ProductionVariants"]] == ["ml.m5.large"]
    (target,) = history.emulator.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )["ScalableTargets"]
    assert target["ResourceId"] == f"endpoint/{endpoint['EndpointName']}/variant/champion"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)


def test_the_command_line_previews_a_change_with_its_inputs(history, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", history.emulator.endpoint_url)
    argv = ["--stack", STACK, "--preview", "--state-dir", str(history.state_dir)]
    argv += ["--set", f"modelPackageArn={history.packages[1]}", "--set", "latencyP99Ms=1200"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "update" in out and "threshold" in out and "0 write calls" in out
    assert "latency-p99" in out


def test_destroy_leaves_nothing_behind(history):
    sagemaker = history.emulator.client("sagemaker")
    # Model packages are the registry's, not the program's: AWS keeps a group holding them.
    for arn in history.packages:
        sagemaker.delete_model_package(ModelPackageName=arn)
    # So are their artifacts, every version of them: the bucket keeps data unless it is empty.
    s3, bucket = history.emulator.client("s3"), history.first.outputs["bucket"]
    listing = s3.list_object_versions(Bucket=bucket)
    for version in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    result = history.engine().destroy()
    assert {o.op for o in result.operations} == {"delete"}
    client = history.emulator.client
    assert client("s3").list_buckets()["Buckets"] == []
    assert client("iam").list_roles()["Roles"] == []
    assert client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert client("cloudwatch").list_dashboards()["DashboardEntries"] == []
    assert client("events").list_rules()["Rules"] == []
    assert client("scheduler").list_schedules()["Schedules"] == []
    assert client("lambda").list_functions()["Functions"] == []
    assert client("ecr").describe_repositories()["repositories"] == []
    assert client("glue").get_databases()["DatabaseList"] == []
    assert client("logs").describe_log_groups()["logGroups"] == []
    assert client("sns").list_topics()["Topics"] == []
    assert (
        client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")[
            "ScalableTargets"
        ]
        == []
    )
    # Endpoint configurations and models are retained (retain_on_delete): the README's
    # "Updates and rollbacks" says how to remove them once no rollback needs them.
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 3  # v1, v2, v2 resized
    assert len(sagemaker.list_models()["Models"]) == 2
    for listing, key in [
        ("list_endpoints", "Endpoints"),
        ("list_pipelines", "PipelineSummaries"),
        ("list_feature_groups", "FeatureGroupSummaries"),
        ("list_model_package_groups", "ModelPackageGroupSummaryList"),
    ]:
        assert getattr(sagemaker, listing)()[key] == [], listing
    # A KMS key cannot be deleted at once: it waits out its deletion window, as on AWS.
    kms = client("kms")
    states = {kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] for k in kms.list_keys()["Keys"]}
    assert states == {"PendingDeletion"}
    assert [a for a in kms.list_aliases()["Aliases"] if not a["AliasName"].startswith("alias/aws/")] == []
    with pytest.raises(ClientError):
        sagemaker.describe_endpoint(EndpointName="customer-churn-dev")
