"""What online feature lookup adds to a request's latency (run by hand, never in tests).

Trains a model on seeded synthetic churn data, puts the customers into a feature group of the
local cloud's feature store runtime (moto's threaded server on 127.0.0.1 with the behaviours),
and serves the model with ``mlops serve`` (one worker) with ``MLOPS_ONLINE_FEATURE_GROUP`` set.
From one keep-alive connection it then sends, one request at a time and interleaved, the same
records two ways:

* **full**: every feature in the request (no lookup is made);
* **lookup**: only the record identifier, the features read with ``BatchGetRecord``.

For ``--records`` per request (default 1 and 10) it prints the median and p95 latency of each
way, the difference and the ratio, and checks that both ways scored alike. The lookup's round
trip here is to a server on the same machine (and on the same two cores); on AWS it is a call
to the feature store runtime's regional endpoint, single-digit milliseconds by AWS's account.

    .venv/bin/python benchmarks/bench_online_lookup.py [--requests 300] [--records 1 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REGION = "eu-west-1"
GROUP = "bench-online"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind per size")
    parser.add_argument("--records", type=int, nargs="+", default=[1, 10], help="records per request")
    parser.add_argument("--customers", type=int, default=2000, help="records in the feature group")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request

    import boto3
    from moto.server import ThreadedMotoServer

    from localcloud.behaviours import Clock, install
    from model_code.contract import schema as schema_mod
    from model_code.contract import synthetic, table
    from model_code.ingestion.ingest import feature_definitions, put_records, to_records
    from model_code.serving.lookup import FEATURE_GROUP_VARIABLE
    from model_code.serving.process import ServerProcess
    from model_code.training import artifact
    from model_code.training.train import fit_model

    schema = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    work = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    synthetic.generate(args.customers, seed=5).to_csv(work / "data.csv", index=False)
    frame = table.read_csv(work / "data.csv", schema)
    model_dir = str(artifact.save(work / "model", fit_model(frame, schema, random_state=0)))

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = "http://{}:{}".format(*server.get_host_and_port())
    behaviours = install(Clock(datetime(2026, 1, 5, 12, tzinfo=UTC)), endpoint_url=url)
    try:
        boto3.client("s3", endpoint_url=url, region_name=REGION, **KEYS).create_bucket(
            Bucket="bench", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        boto3.client("sagemaker", endpoint_url=url, region_name=REGION, **KEYS).create_feature_group(
            FeatureGroupName=GROUP,
            RecordIdentifierFeatureName=schema.entity_id,
            EventTimeFeatureName=schema.event_time,
            FeatureDefinitions=feature_definitions(schema),
            OnlineStoreConfig={"EnableOnlineStore": True},
            OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://bench/offline"}},
            RoleArn="arn:aws:iam::123456789012:role/bench",
        )
        runtime = boto3.client("sagemaker-featurestore-runtime", endpoint_url=url, region_name=REGION, **KEYS)
        put = put_records(to_records(frame, schema), GROUP, runtime)
        print(f"{put.put} records in the online store of {GROUP}; model trained on {len(frame)} rows")
        full = json.loads(frame[[schema.entity_id, *schema.feature_names]].to_json(orient="records"))
        env = {
            FEATURE_GROUP_VARIABLE: GROUP,
            "AWS_ENDPOINT_URL": url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "OMP_NUM_THREADS": "1",
        }
        with ServerProcess(model_dir, host="127.0.0.1", port=0, workers=1, env=env) as serving:
            serving.start(timeout=120)
            host, port = serving.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=60)

            def call(instances: list[dict]) -> tuple[float, bytes]:
                body = json.dumps({"instances": instances}).encode()
                started = time.perf_counter()
                connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    raise SystemExit(f"{response.status}: {answer[:200]!r}")
                return elapsed, answer

            print(f"{'records':>7} {'way':>6} {'p50 ms':>8} {'p95 ms':>8}")
            for size in args.records:
                times: dict[str, list[float]] = {"full": [], "lookup": []}
                for i in range(10):  # warm-up: imports, connections, caches
                    chunk = full[i * size : (i + 1) * size]
                    call(chunk), call([{schema.entity_id: r[schema.entity_id]} for r in chunk])
                for i in range(args.requests):
                    first = (i * size) % (len(full) - size)
                    chunk = full[first : first + size]
                    ids = [{schema.entity_id: r[schema.entity_id]} for r in chunk]
                    # Interleaved, so both ways see the same machine load.
                    t_full, a_full = call(chunk)
                    t_lookup, a_lookup = call(ids)
                    if a_full != a_lookup:
                        raise SystemExit(f"request {i}: the lookup scored differently from the full request")
                    times["full"].append(t_full * 1000)
                    times["lookup"].append(t_lookup * 1000)
                for way in ("full", "lookup"):
                    print(
                        f"{size:>7} {way:>6} {statistics.median(times[way]):8.2f} "
                        f"{percentile(times[way], 0.95):8.2f}"
                    )
                p50_full, p50_lookup = statistics.median(times["full"]), statistics.median(times["lookup"])
                print(
                    f"{size:>7} lookup adds {p50_lookup - p50_full:.2f} ms at the median "
                    f"(ratio lookup/full {p50_lookup / p50_full:.2f}x); identical scores on {args.requests} requests"
                )
            connection.close()
    finally:
        behaviours.uninstall()
        server.stop()
    print(f"machine: {os.cpu_count()} cores (shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
