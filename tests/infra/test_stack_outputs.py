"""The outputs ``mlops verify`` and CI's deploy read back: they say what the program declared."""

from __future__ import annotations

import pulumi

from infra.ml_pipelines import definition_digest
from tests.infra import harness


def test_outputs_name_the_declared_pipelines_configuration_and_model(monkeypatch):
    exports: dict = {}
    monkeypatch.setattr(
        pulumi,
        "export",
        lambda name, value: pulumi.Output.from_input(value).apply(lambda v: exports.__setitem__(name, v)),
    )
    package = harness.MODEL_PACKAGE.format(stack="dev")
    rec = harness.run_stack("dev", {"mlops-platform:modelPackageArn": package})

    declared = {
        r.inputs["pipelineName"].rsplit("-", 1)[-1]: definition_digest(r.inputs["pipelineDefinition"])
        for r in rec.of_type("aws:sagemaker/pipeline:Pipeline")
    }
    assert exports["pipelineDefinitionDigests"] == declared
    config = rec.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs["name"]
    assert exports["endpointConfigName"] == config
    assert exports["modelPackageArn"] == package
    assert exports["shadowModelPackageArn"] is None  # dev is all-at-once: no shadow variant
