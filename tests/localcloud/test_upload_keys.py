"""Uploads whose object key holds a space or a ``+`` are ingested, end to end on the local stack.

What S3 puts in the event is AWS's documented shape: for EventBridge, ``detail.object.key`` is
the object's key as it is (the EventBridge message structure, "ev-events" in the S3 user guide,
says nothing of encoding it), unlike the notification messages S3 sends to SNS, SQS and Lambda,
whose key "is URL encoded. For example, 'red flower.jpg' becomes 'red+flower.jpg'"
("notification-content-structure"). So the rule passes the key unchanged to the ingestion
pipeline, which must read that very object: a ``+`` is a plus, never a space.
"""

from __future__ import annotations

import pandas as pd
import pytest

from localcloud.engine import Engine
from model_code.contract import schema as contract
from model_code.contract.synthetic import generate

STACK = "local"
KEYS = {
    "space": "raw/customer-churn/march upload.csv",
    "plus": "raw/customer-churn/a+b.csv",
    # A key that only looks URL-encoded: decoding it would read "c+d.csv", another object.
    "percent": "raw/customer-churn/c%2Bd.csv",
}


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory):
    emulator.reset()
    result = Engine(
        STACK, emulator.endpoint_url, state_dir=tmp_path_factory.mktemp("state"), fresh_state=True
    ).up()
    return emulator, result.outputs


def ingestion_runs(emulator, outputs) -> list[dict]:
    sm = emulator.client("sagemaker")
    pipeline = outputs["pipelines"]["ingestion"].rsplit("/", 1)[-1]
    runs = []
    for summary in sm.list_pipeline_executions(PipelineName=pipeline, SortOrder="Ascending")[
        "PipelineExecutionSummaries"
    ]:
        arn = summary["PipelineExecutionArn"]
        described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        runs.append(
            {
                "status": described["PipelineExecutionStatus"],
                "key": {p["Name"]: p["Value"] for p in parameters}["InputDataKey"],
                "failures": [s.get("FailureReason") for s in steps if s["StepStatus"] == "Failed"],
            }
        )
    return runs


@pytest.mark.parametrize("kind", list(KEYS))
def test_an_upload_whose_key_needs_encoding_is_ingested(stack, kind):
    emulator, outputs = stack
    schema = contract.load(contract.EXAMPLE_SCHEMA)
    key = KEYS[kind]
    rows = generate(20, seed=len(kind), id_prefix=f"{kind.upper()}-")
    before = len(ingestion_runs(emulator, outputs))
    emulator.client("s3").put_object(
        Bucket=outputs["bucket"], Key=key, Body=rows.to_csv(index=False).encode()
    )
    emulator.behaviours.wait_for_executions(600)

    (run,) = ingestion_runs(emulator, outputs)[before:]
    assert run["key"] == key  # the key as S3 spelled it, as the rule passed it
    assert (run["status"], run["failures"]) == ("Succeeded", [])
    runtime = emulator.client("sagemaker-featurestore-runtime")
    found = runtime.batch_get_record(
        Identifiers=[
            {
                "FeatureGroupName": outputs["featureGroup"],
                "RecordIdentifiersValueAsString": list(rows[schema.entity_id]),
            }
        ]
    )
    assert sorted(r["RecordIdentifierValueAsString"] for r in found["Records"]) == sorted(
        rows[schema.entity_id]
    )
    assert not pd.Series([r["RecordIdentifierValueAsString"] for r in found["Records"]]).duplicated().any()
