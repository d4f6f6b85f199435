"""Online feature lookup deployed: a stack with ``onlineFeatureLookup: true`` in the emulator.

The endpoint role's grant is read back through IAM and checked against AWS's Service
Authorization Reference for SageMaker (the data parliament ships: the actions, their resource
type ``feature-group`` and its ARN format); a request carrying only the record identifier, sent
through InvokeEndpoint, is scored on the features the online store holds.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from botocore.exceptions import ClientError

from localcloud.engine import Engine
from model_code.ingestion.ingest import to_records
from tests.localcloud.behaviours.endpoint_setup import pack
from tests.localcloud.conftest import register_approved

STACK = "dev"
CONFIG = "mlops-platform:"


def _sagemaker_reference() -> dict:
    definitions = json.loads(resources.files("parliament").joinpath("iam_definition.json").read_text())
    return next(service for service in definitions if service["prefix"] == "sagemaker")


@pytest.fixture(scope="module")
def deployed(emulator, tmp_path_factory, model_dir):
    emulator.reset()
    state = tmp_path_factory.mktemp("state")
    lookup = {f"{CONFIG}onlineFeatureLookup": "true"}
    outputs = Engine(STACK, emulator.endpoint_url, state_dir=state, overrides=lookup).up().outputs
    package = register_approved(emulator, outputs["modelPackageGroup"], outputs["bucket"], pack(model_dir))
    overrides = {**lookup, f"{CONFIG}modelPackageArn": package}
    return Engine(STACK, emulator.endpoint_url, state_dir=state, overrides=overrides).up().outputs


def test_the_endpoint_role_may_read_records_of_its_feature_group_only(emulator, deployed):
    iam = emulator.client("iam")
    group_arn = emulator.client("sagemaker").describe_feature_group(
        FeatureGroupName=deployed["featureGroup"]
    )["FeatureGroupArn"]
    role = f"{deployed['endpointName']}-endpoint"
    statements = [
        statement
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        for statement in iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]["Statement"]
        if any(str(a).startswith("sagemaker:") for a in _as_list(statement["Action"]))
    ]
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert sorted(_as_list(statement["Action"])) == ["sagemaker:BatchGetRecord", "sagemaker:GetRecord"]
    assert _as_list(statement["Resource"]) == [group_arn]
    # AWS's reference: both actions are authorised on the feature-group resource type, whose
    # ARN is arn:${Partition}:sagemaker:${Region}:${Account}:feature-group/${FeatureGroupName}.
    reference = _sagemaker_reference()
    privileges = {p["privilege"]: p for p in reference["privileges"]}
    for action in ("BatchGetRecord", "GetRecord"):
        assert [r["resource_type"] for r in privileges[action]["resource_types"]] == ["feature-group*"]
    (arn_format,) = [r["arn"] for r in reference["resources"] if r["resource"] == "feature-group"]
    pattern = re.escape(arn_format).replace(re.escape("${Partition}"), "aws")
    for placeholder in ("${Region}", "${Account}", "${FeatureGroupName}"):
        pattern = pattern.replace(re.escape(placeholder), "[^:/]+")
    assert re.fullmatch(pattern, group_arn)
    assert group_arn.endswith(f":feature-group/{deployed['featureGroup']}")


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_an_identifier_alone_is_scored_through_the_endpoint_as_the_full_record(
    emulator, deployed, churn_frame, churn_schema
):
    rows = churn_frame.head(3)
    runtime = emulator.client("sagemaker-featurestore-runtime")
    for record in to_records(rows, churn_schema):
        runtime.put_record(FeatureGroupName=deployed["featureGroup"], Record=record)
    full = json.loads(rows[[churn_schema.entity_id, *churn_schema.feature_names]].to_json(orient="records"))
    ids = [{churn_schema.entity_id: r[churn_schema.entity_id]} for r in full]
    endpoint = emulator.client("sagemaker-runtime")

    def invoke(instances):
        answer = endpoint.invoke_endpoint(
            EndpointName=deployed["endpointName"],
            Body=json.dumps({"instances": instances}).encode(),
            ContentType="application/json",
        )
        return json.loads(answer["Body"].read())

    assert invoke(ids) == invoke(full)
    with pytest.raises(ClientError) as refused:
        invoke([{churn_schema.entity_id: "C-unknown"}])
    error = refused.value.response
    assert error["OriginalStatusCode"] == 400
    assert (
        f"no record in the online store of {deployed['featureGroup']} for 'C-unknown'"
        in error["OriginalMessage"]
    )
