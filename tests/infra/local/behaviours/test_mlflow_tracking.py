"""SageMaker managed MLflow answered by a local MLflow server, through boto3 and the MLflow client."""

from __future__ import annotations

import time

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

    sm.delete_mlflow_tracking_server(TrackingServerName="tracking")
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_mlflow_tracking_server(TrackingServerName="tracking")
