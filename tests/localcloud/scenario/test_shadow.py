"""The whole scenario with the shadow strategy: the retrained version shadows the first, and the
monitoring pipeline compares the two on the same requests."""

from __future__ import annotations

import pytest

from tests.localcloud.scenario.conftest import scenario_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    overrides = {"deploymentStrategy": "shadow", "shadowSamplingPercent": "100"}
    with scenario_run(tmp_path_factory.mktemp("state"), overrides) as run:
        yield run


def test_the_retrained_version_shadows_the_first_which_still_answers(run):
    scenario, summary = run
    variants = {v["name"]: v for v in summary["endpoint"]["variants"]}
    production = [v for v in variants.values() if not v.get("shadow")]
    shadow = [v for v in variants.values() if v.get("shadow")]
    assert [(v["model_version"], v["weight"]) for v in production] == [(1, 1.0)]
    assert [v["model_version"] for v in shadow] == [2]
    config = scenario.client("sagemaker").describe_endpoint_config(
        EndpointConfigName=scenario.outputs["endpointConfigName"]
    )
    assert [v["VariantName"] for v in config["ShadowProductionVariants"]] == [shadow[0]["name"]]


def test_both_variants_traffic_is_captured_and_compared(run):
    scenario, summary = run
    s3, bucket = scenario.client("s3"), scenario.outputs["bucket"]
    for variant in summary["endpoint"]["variants"]:
        prefix = f"data-capture/{summary['endpoint']['name']}/{variant['name']}/"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        assert any(k.endswith(".jsonl") for k in keys), prefix
    comparison = summary["quality"]["shadow"]
    assert comparison["compared"] >= len(scenario.prepared.traffic)
    assert 0.5 <= comparison["agreement_rate"] <= 1.0
    assert 0.5 < comparison["challenger_auc"] <= 1.0 and 0.5 < comparison["production_auc"] <= 1.0
