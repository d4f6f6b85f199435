"""The whole scenario with the linear strategy, read back through boto3."""

from __future__ import annotations

import pytest

from tests.localcloud.scenario.conftest import endpoint_state, scenario_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    overrides = {"deploymentStrategy": "linear", "linearStepPercent": "50"}
    with scenario_run(tmp_path_factory.mktemp("state"), overrides) as run:
        yield run


def test_the_retrained_version_is_rolled_out_linearly_and_serves_all_traffic(run):
    scenario, summary = run
    assert (summary["rollout"]["strategy"], summary["rollout"]["outcome"]) == ("linear", "completed")
    endpoint = endpoint_state(scenario)
    policy = endpoint["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert (policy["Type"], policy["LinearStepSize"]) == ("LINEAR", {"Type": "CAPACITY_PERCENT", "Value": 50})
    assert endpoint["EndpointConfigName"] == scenario.outputs["endpointConfigName"]
    assert [(v["model_version"], v["weight"]) for v in summary["endpoint"]["variants"]] == [(2, 1.0)]
    assert summary["rollout"]["errors_during_rollout"] == 0


def test_ground_truth_gives_the_served_model_a_quality_score(run):
    _, summary = run
    assert 0.6 < summary["quality"]["auc"] <= 1.0
    assert summary["quality"]["labelled"] == len(run[0].prepared.traffic)
