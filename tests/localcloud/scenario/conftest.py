"""The scenario run per strategy: each test module runs one whole scenario and reads it back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from localcloud.scenario.data import prepare
from localcloud.scenario.run import Scenario

ROWS = 2000  # as `make local`: a retrained model on drifted rows is no worse than the first


@contextmanager
def scenario_run(
    state_dir: Path,
    overrides: dict[str, Any] | None = None,
    *,
    before_drift: Callable[[Scenario], None] | None = None,
    before_rollout: Callable[[Scenario], None] | None = None,
) -> Iterator[tuple[Scenario, dict[str, Any]]]:
    """``Scenario.run``'s steps, with the test's own action before phase 2 and before the roll-out."""
    scenario = Scenario(
        prepare(None, None, rows=ROWS, seed=0), state_dir=state_dir, overrides=overrides or {}
    )
    try:
        scenario.start()
        scenario.deploy()
        scenario.ingest()
        scenario.train()
        scenario.promote()
        scenario.serve("phase 1: held-out traffic", scenario.prepared.traffic)
        if before_drift:
            before_drift(scenario)
        scenario.serve(
            "phase 2: drifted traffic",
            scenario.prepared.drifted,
            feed_back=True,
        )
        if before_rollout:
            before_rollout(scenario)
        scenario.retrain_and_roll_out()
        scenario.feedback()
        yield scenario, scenario.summary(0.0)
    finally:
        scenario.stop()


def executions(scenario: Scenario, pipeline: str) -> list[dict]:
    """Every execution of one of the stack's pipelines, oldest first: status and parameters."""
    sm = scenario.client("sagemaker")
    found = sm.list_pipeline_executions(PipelineName=scenario.pipelines[pipeline], SortOrder="Ascending")
    runs = []
    for summary in found["PipelineExecutionSummaries"]:
        arn = summary["PipelineExecutionArn"]
        parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
        status = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        runs.append({"status": status, "parameters": {p["Name"]: p["Value"] for p in parameters}})
    return runs


def endpoint_state(scenario: Scenario) -> dict[str, Any]:
    """The endpoint as DescribeEndpoint shows it: status, configuration, variants and weights."""
    sm = scenario.client("sagemaker")
    return sm.describe_endpoint(EndpointName=scenario.outputs["endpointName"])
