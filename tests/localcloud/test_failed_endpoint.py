"""A deploy whose model cannot serve: the endpoint fails its health check and the deploy says so.

terraform-provider-aws waits for a new endpoint to be InService, fails the update with the
endpoint's FailureReason, and records the endpoint only once it is InService: the Failed one
stays in SageMaker, out of the state, and the next deploy's CreateEndpoint meets it ("Cannot
create already existing endpoint"). Once the user deletes it, a model that serves deploys.
"""

from __future__ import annotations

import pytest

from localcloud.engine import Engine
from localcloud.state import State
from localcloud.translations.base import DeployError
from tests.localcloud.behaviours.endpoint_setup import artifact_with_model_file, pack
from tests.localcloud.conftest import register_approved

STACK = "dev"
PACKAGE = "mlops-platform:modelPackageArn"


def test_a_model_that_cannot_load_fails_the_deploy_naming_the_health_check_then_a_good_one_deploys(
    fresh, tmp_path, model_dir
):
    def deploy(package: str):
        return Engine(STACK, fresh.endpoint_url, state_dir=tmp_path, overrides={PACKAGE: package}).up()

    outputs = Engine(STACK, fresh.endpoint_url, state_dir=tmp_path).up().outputs
    group, bucket = outputs["modelPackageGroup"], outputs["bucket"]
    bad = register_approved(fresh, group, bucket, artifact_with_model_file(model_dir, b"not a pickle"))
    with pytest.raises(DeployError) as failed:
        deploy(bad)
    message = str(failed.value)
    assert "unexpected state 'Failed', wanted target 'InService'" in message
    assert "did not pass the ping health check" in message
    sagemaker = fresh.client("sagemaker")
    (left,) = sagemaker.list_endpoints()["Endpoints"]
    name = left["EndpointName"]
    assert left["EndpointStatus"] == "Failed"
    assert f"delete-endpoint --endpoint-name {name}" in message
    recorded = State.load(tmp_path / f"{STACK}.json", STACK).resources.values()
    assert "aws:sagemaker/endpoint:Endpoint" not in {r.type for r in recorded}
    # The server's own words are where the reason points: the endpoint's log group.
    logs = fresh.client("logs")
    (found,) = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/Endpoints/")["logGroups"]
    events = [
        event["message"]
        for stream in logs.describe_log_streams(logGroupName=found["logGroupName"])["logStreams"]
        for event in logs.get_log_events(
            logGroupName=found["logGroupName"], logStreamName=stream["logStreamName"]
        )["events"]
    ]
    assert any("cannot serve the model" in e for e in events), events

    good = register_approved(fresh, group, bucket, pack(model_dir))
    with pytest.raises(DeployError, match="Cannot create already existing endpoint"):
        deploy(good)
    sagemaker.delete_endpoint(EndpointName=name)
    result = deploy(good)
    endpoint = sagemaker.describe_endpoint(EndpointName=result.outputs["endpointName"])
    assert endpoint["EndpointStatus"] == "InService"
