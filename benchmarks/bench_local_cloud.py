"""What the local cloud's behaviours cost (run by hand, never in tests).

1. ``InvokeEndpoint`` overhead: one JSON record through boto3 → the emulator (moto's threaded
   server on 127.0.0.1, the endpoint behaviour: routing, capture, metrics) → the model, against
   the same record through the handler chain called directly (``inference.invoke``). Interleaved
   medians, so load changes on a shared machine slow both alike; the difference is the
   per-request overhead of going through the emulator (HTTP, botocore, routing, capture).
2. A canary rollout with a 10-minute bake (and a 1-minute termination wait) on the virtual
   clock, from ``UpdateEndpoint`` to ``InService`` on the new configuration: wall seconds
   (target: under 1 s).

    .venv/bin/python benchmarks/bench_local_cloud.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

import boto3
from moto.server import ThreadedMotoServer
from threadpoolctl import threadpool_limits

from localcloud.behaviours import Clock, install
from model_code.contract import schema, synthetic, table
from model_code.serving import inference
from model_code.training import artifact
from model_code.training.train import fit_model

REGION, ACCOUNT = "eu-west-1", "123456789012"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops:latest"


def _client(url: str, service: str):
    return boto3.client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )


def _deploy(url: str, model_dir: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    s3, sm = _client(url, "s3"), _client(url, "sagemaker")
    s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="models", Key="m/model.tar.gz", Body=buffer.getvalue())
    for name in ("v1", "v2"):
        sm.create_model(
            ModelName=name,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://models/m/model.tar.gz"},
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/x",
        )
        sm.create_endpoint_config(
            EndpointConfigName=f"config-{name}",
            ProductionVariants=[
                {
                    "VariantName": "champion",
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 1.0,
                }
            ],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": "s3://models/capture",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        )
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="config-v1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    churn = schema.load(schema.EXAMPLE_SCHEMA)
    work = Path(tempfile.mkdtemp(prefix="bench-local-cloud-"))
    synthetic.generate(4000, seed=7).to_csv(work / "churn.csv", index=False)
    frame = table.read_csv(work / "churn.csv", churn)
    bundle = fit_model(frame, churn, random_state=0)
    model_dir = artifact.save(work / "model", bundle)
    model = inference.model_fn(str(model_dir))
    first = frame.iloc[0]
    body = json.dumps(
        {n: (first[n].item() if hasattr(first[n], "item") else first[n]) for n in churn.feature_names}
    )

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    behaviours = install(Clock(datetime(2026, 1, 5, 12, tzinfo=UTC)), endpoint_url=url)
    try:
        _deploy(url, model_dir)
        runtime = _client(url, "sagemaker-runtime")
        direct, through = [], []
        with threadpool_limits(1):
            inference.invoke(model, body, "application/json", None)  # warm both paths
            runtime.invoke_endpoint(EndpointName="churn", ContentType="application/json", Body=body)
            for _ in range(args.repeats):
                start = time.perf_counter()
                inference.invoke(model, body, "application/json", None)
                direct.append(time.perf_counter() - start)
                start = time.perf_counter()
                runtime.invoke_endpoint(EndpointName="churn", ContentType="application/json", Body=body)
                through.append(time.perf_counter() - start)
        d, t = statistics.median(direct) * 1000, statistics.median(through) * 1000
        print(f"InvokeEndpoint through the emulator: {t:.2f} ms median; handler chain direct: {d:.2f} ms")
        print(f"per-request overhead of the emulator: {t - d:.2f} ms ({args.repeats} interleaved repeats)")

        sm = _client(url, "sagemaker")
        deployment = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    "WaitIntervalInSeconds": 600,
                },
                "TerminationWaitInSeconds": 60,
            },
        }
        start = time.perf_counter()
        sm.update_endpoint(EndpointName="churn", EndpointConfigName="config-v2", DeploymentConfig=deployment)
        behaviours.advance(660)
        status = sm.describe_endpoint(EndpointName="churn")
        seconds = time.perf_counter() - start
        assert (status["EndpointStatus"], status["EndpointConfigName"]) == ("InService", "config-v2"), status
        print(
            f"canary with a 10-minute bake and 1-minute termination wait: {seconds:.3f} s wall (target < 1 s)"
        )
    finally:
        behaviours.uninstall()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
