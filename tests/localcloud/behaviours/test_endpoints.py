"""Endpoints serve their variants' models, through boto3: routing, model errors, shadows, capture, metrics."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from model_code.monitoring.capture import parse_capture_line
from tests.localcloud.behaviours.endpoint_setup import (
    BUCKET,
    IMAGE,
    ROLE,
    artifact_with_model_file,
    invoke,
    make_config,
    pack,
    upload_model,
    variant,
)
from tests.localcloud.behaviours.support import START


@pytest.fixture(scope="module")
def artifact(model_dir) -> bytes:
    return pack(model_dir)


@pytest.fixture
def row(churn_frame, churn_schema) -> dict:
    first = churn_frame.iloc[0]
    return {
        name: (
            None
            if first[name] != first[name]
            else first[name].item()
            if hasattr(first[name], "item")
            else first[name]
        )
        for name in churn_schema.feature_names
    }


def invocations_by_variant(cw, endpoint: str, variants: list[str]) -> dict[str, float]:
    """Invocations per variant as CloudWatch reports them (what a user would read)."""
    totals = {}
    for name in variants:
        points = cw.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": name}],
            StartTime=START - timedelta(minutes=1),
            EndTime=START + timedelta(minutes=5),
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        totals[name] = sum(p["Sum"] for p in points)
    return totals


def test_weights_90_10_route_about_a_tenth_of_2000_requests_to_the_second_variant(
    emulator, client, artifact, row
):
    for model in ("champion-model", "challenger-model"):
        upload_model(client, model, artifact)
    make_config(
        client,
        "split",
        [variant("champion", "champion-model", 0.9), variant("challenger", "challenger-model", 0.1)],
        capture=False,
    )
    client("sagemaker").create_endpoint(EndpointName="churn", EndpointConfigName="split")
    runtime = client("sagemaker-runtime")
    # Routing happens before the model answers; a body the contract refuses keeps 2,000 requests
    # fast (no prediction), and each is still counted against the variant that served it.
    for _ in range(2000):
        with pytest.raises(ClientError):
            runtime.invoke_endpoint(EndpointName="churn", ContentType="application/json", Body=b"[]")
    served = invocations_by_variant(client("cloudwatch"), "churn", ["champion", "challenger"])
    assert served["champion"] + served["challenger"] == 2000
    assert 160 <= served["challenger"] <= 240  # 10% of 2,000 is 200; a binomial sd is ~13
    answered = [invoke(runtime, "churn", row)["InvokedProductionVariant"] for _ in range(3)]
    assert set(answered) <= {"champion", "challenger"}
    pinned = {
        invoke(runtime, "churn", row, TargetVariant="challenger")["InvokedProductionVariant"]
        for _ in range(3)
    }
    assert pinned == {"challenger"}


def test_a_models_4xx_reaches_the_caller_as_model_error(emulator, client, artifact, row):
    upload_model(client, "m", artifact)
    make_config(client, "one", [variant("champion", "m", 1.0)], capture=False)
    sm = client("sagemaker")
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="one")
    runtime = client("sagemaker-runtime")
    with pytest.raises(ClientError) as raised:
        invoke(runtime, "churn", {**row, "tenure_months": "long"})
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "tenure_months" in error["OriginalMessage"]
    with pytest.raises(ClientError) as missing:
        invoke(runtime, "nowhere", row)
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as no_variant:
        invoke(runtime, "churn", row, TargetVariant="nope")
    assert "Variant nope not found" in no_variant.value.response["Error"]["Message"]


def test_a_shadow_is_captured_under_its_own_prefix_and_never_answers(
    emulator, client, artifact, row, churn_schema
):
    upload_model(client, "m", artifact)
    make_config(client, "shadowed", [variant("champion", "m", 1.0)], shadows=[variant("shadow", "m", 1.0)])
    client("sagemaker").create_endpoint(EndpointName="churn", EndpointConfigName="shadowed")
    runtime = client("sagemaker-runtime")
    answered = {invoke(runtime, "churn", row)["InvokedProductionVariant"] for _ in range(20)}
    assert answered == {"champion"}
    emulator.advance(60)
    s3 = client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="data-capture/")["Contents"]]
    hour = START.strftime("%Y/%m/%d/%H")
    pattern = rf"data-capture/churn/(champion|shadow)/{hour}/\d\d-\d\d-\d{{3}}-[0-9a-f-]{{36}}\.jsonl"
    assert all(re.fullmatch(pattern, k) for k in keys), keys
    by_variant = Counter()
    for key in keys:
        lines = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
        for line in lines:
            (_record,) = parse_capture_line(line, churn_schema)  # the monitoring pipeline reads it
            by_variant[key.split("/")[2]] += 1
    assert by_variant == {"champion": 20, "shadow": 20}


def test_each_variant_publishes_sagemakers_metrics(emulator, client, artifact, row):
    upload_model(client, "m", artifact)
    make_config(client, "one", [variant("champion", "m", 1.0)], capture=False)
    client("sagemaker").create_endpoint(EndpointName="churn", EndpointConfigName="one")
    runtime = client("sagemaker-runtime")
    for _ in range(7):
        invoke(runtime, "churn", row)
    with pytest.raises(ClientError):
        invoke(runtime, "churn", {**row, "tenure_months": "long"})
    emulator.advance(120)
    cw = client("cloudwatch")
    dims = [{"Name": "EndpointName", "Value": "churn"}, {"Name": "VariantName", "Value": "champion"}]

    def total(metric: str, namespace="AWS/SageMaker", stat="Sum") -> float:
        points = cw.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=dims,
            StartTime=START - timedelta(minutes=1),
            EndTime=START + timedelta(minutes=3),
            Period=60,
            Statistics=[stat],
        )["Datapoints"]
        return sum(p[stat] for p in points)

    assert total("Invocations") == 8
    assert total("Invocation4XXErrors") == 1
    assert total("Invocation5XXErrors") == 0
    assert total("ModelLatency", stat="Maximum") > 0
    # The variant's own server: its processes' CPU and memory, not the emulator's.
    assert total("CPUUtilization", "/aws/sagemaker/Endpoints", "Maximum") > 0
    assert 0 < total("MemoryUtilization", "/aws/sagemaker/Endpoints", "Maximum") < 100


def _log_messages(client, endpoint: str) -> dict[str, list[str]]:
    """The endpoint's container logs in CloudWatch Logs, by stream."""
    logs = client("logs")
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    return {
        stream["logStreamName"]: [
            e["message"]
            for e in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
        ]
        for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]
    }


def test_each_variant_is_its_own_mlops_serve_whose_log_reaches_cloudwatch(emulator, client, artifact, row):
    upload_model(client, "m", artifact)
    make_config(
        client, "two", [variant("champion", "m", 1.0), variant("challenger", "m", 1.0)], capture=False
    )
    client("sagemaker").create_endpoint(EndpointName="churn", EndpointConfigName="two")
    runtime = client("sagemaker-runtime")
    for name in ("champion", "challenger"):
        assert invoke(runtime, "churn", row, TargetVariant=name)["InvokedProductionVariant"] == name
    emulator.advance(60)
    streams = _log_messages(client, "churn")
    assert sorted(s.split("/")[0] for s in streams) == ["challenger", "champion"]
    for stream, messages in streams.items():
        assert re.fullmatch(r"(champion|challenger)/i-[0-9a-f]{17}", stream)
        # gunicorn's server, one worker per variant unless the model's environment says otherwise
        assert any("1 workers, queue depth 32" in m for m in messages), messages


def test_an_endpoint_whose_model_cannot_load_fails_and_its_log_says_why(emulator, client, model_dir):
    upload_model(client, "broken", artifact_with_model_file(model_dir, b"not a pickle"))
    make_config(client, "one", [variant("champion", "broken", 1.0)], capture=False)
    sm = client("sagemaker")
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="one")
    described = sm.describe_endpoint(EndpointName="churn")
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"] == (
        "The primary container for production variant champion did not pass the ping health check. "
        "Please check CloudWatch logs for this endpoint."
    )
    ((stream, messages),) = _log_messages(client, "churn").items()
    assert stream.startswith("champion/")
    assert any("cannot serve the model" in m for m in messages), messages
    with pytest.raises(ClientError) as raised:
        invoke(client("sagemaker-runtime"), "churn", {})
    assert "in status Failed" in raised.value.response["Error"]["Message"]


def test_the_models_environment_sets_the_servers_workers(emulator, client, artifact, row):
    client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    client("s3").put_object(Bucket=BUCKET, Key="m/model.tar.gz", Body=artifact)
    client("sagemaker").create_model(
        ModelName="m",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz",
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
        },
        ExecutionRoleArn=ROLE,
    )
    make_config(client, "one", [variant("champion", "m", 1.0)], capture=False)
    client("sagemaker").create_endpoint(EndpointName="churn", EndpointConfigName="one")
    invoke(client("sagemaker-runtime"), "churn", row)
    emulator.advance(60)
    ((_, messages),) = _log_messages(client, "churn").items()
    assert any("2 workers, queue depth 32" in m for m in messages), messages


def test_latency_is_in_microseconds_and_its_p99_is_answered_by_get_metric_data(
    emulator, client, artifact, row
):
    upload_model(client, "m", artifact)
    make_config(client, "one", [variant("champion", "m", 1.0)], capture=False)
    sm = client("sagemaker")
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="one")
    runtime = client("sagemaker-runtime")
    for _ in range(20):
        invoke(runtime, "churn", row)
    cw = client("cloudwatch")
    dims = [{"Name": "EndpointName", "Value": "churn"}, {"Name": "VariantName", "Value": "champion"}]

    def query(stat: str, metric: str = "ModelLatency") -> dict:
        return {"Id": f"q{stat.lower().replace('.', '')}", "MetricStat": {"Metric": {"Namespace": "AWS/SageMaker",
                "MetricName": metric, "Dimensions": dims}, "Period": 60, "Stat": stat}}  # fmt: skip

    answer = cw.get_metric_data(
        MetricDataQueries=[query("p99"), query("Maximum"), query("p50")],
        StartTime=START - timedelta(minutes=1),
        EndTime=START + timedelta(minutes=2),
    )["MetricDataResults"]
    values = {r["Id"]: r["Values"] for r in answer}
    # Twenty requests in one minute: the nearest-rank p99 of 20 values is the largest.
    assert values["qp99"] == values["qmaximum"] and len(values["qp99"]) == 1
    assert 0 < values["qp50"][0] <= values["qp99"][0]
    # SageMaker's developer guide: ModelLatency and OverheadLatency in Microseconds.
    for metric in ("ModelLatency", "OverheadLatency"):
        (point,) = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName=metric, Dimensions=dims, StartTime=START - timedelta(minutes=1),
            EndTime=START + timedelta(minutes=2), Period=60, Statistics=["SampleCount"],
        )["Datapoints"]  # fmt: skip
        assert (point["SampleCount"], point["Unit"]) == (20, "Microseconds")


def test_an_endpoint_and_its_configuration_are_created_at_the_virtual_clocks_time(emulator, client, artifact):
    upload_model(client, "m", artifact)
    emulator.advance(600)
    make_config(client, "one", [variant("champion", "m", 1.0)], capture=False)
    sm = client("sagemaker")
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="one")
    described = sm.describe_endpoint(EndpointName="churn")
    config = sm.describe_endpoint_config(EndpointConfigName="one")
    expected = START + timedelta(seconds=600)
    assert described["CreationTime"] == described["LastModifiedTime"] == expected
    assert config["CreationTime"] == expected
