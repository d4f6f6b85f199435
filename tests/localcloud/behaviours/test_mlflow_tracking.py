"""SageMaker managed MLflow answered by a local MLflow server, through boto3 and the MLflow client."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError


def test_a_tracking_server_really_tracks_runs_with_artifacts_in_the_emulators_s3(emulator, client, tmp_path):
    from mlflow.tracking import MlflowClient

    s3, sm = client("s3"), client("sagemaker")
    s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    sm.create_mlflow_tracking_server(
        TrackingServerName="tracking",
        ArtifactStoreUri="s3://artifacts/mlflow",
        RoleArn="arn:aws:iam::123456789012:role/mlflow",
    )
    deadline = time.monotonic() + 90
    while (described := sm.describe_mlflow_tracking_server(TrackingServerName="tracking"))[
        "TrackingServerStatus"
    ] == "Creating" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (described["TrackingServerStatus"], described["IsActive"]) == ("Created", "Active")

    tracking = MlflowClient(tracking_uri=described["TrackingServerUrl"])
    experiment = tracking.create_experiment("customer-churn")
    run = tracking.create_run(experiment)
    tracking.log_metric(run.info.run_id, "auc", 0.83)
    (tmp_path / "report.txt").write_text("evaluation report")
    tracking.log_artifact(run.info.run_id, str(tmp_path / "report.txt"))
    assert tracking.get_run(run.info.run_id).data.metrics == {"auc": 0.83}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="artifacts", Prefix="mlflow/")["Contents"]]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/report.txt") for k in keys)

    # The server runs without MLflow's job runner (seven huey processes), and deleting it
    # stops every process it started.
    group = _group_of(f"--port {described['TrackingServerUrl'].rsplit(':', 1)[1]}")
    assert group and not any("huey" in args for args in group.values())
    sm.delete_mlflow_tracking_server(TrackingServerName="tracking")
    assert not any(Path(f"/proc/{pid}").exists() for pid in group)
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_mlflow_tracking_server(TrackingServerName="tracking")


def _group_of(marker: str) -> dict[int, str]:
    """pid -> command line of every process in the process group of the one whose command has ``marker``."""
    processes = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pgid = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            args = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        processes[int(stat.parent.name)] = (pgid, args)
    leaders = {pgid for pgid, args in processes.values() if marker in args}
    return {pid: args for pid, (pgid, args) in processes.items() if pgid in leaders}
