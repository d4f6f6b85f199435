"""The model package group and the approval rule that starts promotion."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime import rpc

from infra.model_registry import (
    TRIGGER_INPUT_PATHS,
    TRIGGER_INPUT_TEMPLATE,
    ModelRegistry,
    ModelRegistryArgs,
    approval_event_pattern,
    events_assume_role_policy,
    invoke_api_destination_policy,
    validate_trigger,
)
from tests.infra.harness import ACCOUNT, run

TAGS = {"project": "mlops-platform", "stack": "test", "owner": "ml-team"}
GROUP = "customer-churn-test"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/stack-key"
TRIGGER_URL = "https://gitlab.example.com/api/v4/projects/42/trigger/pipeline"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:alarms"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
CONNECTION = "aws:cloudwatch/eventConnection:EventConnection"
DESTINATION = "aws:cloudwatch/eventApiDestination:EventApiDestination"


def declare(**extra):
    box = {}

    def program():
        registry = ModelRegistry(
            "registry", ModelRegistryArgs(group_name=GROUP, tags=TAGS, kms_key_arn=KEY, **extra)
        )
        box["registry"] = registry
        return registry.approval_rule.arn.apply(lambda arn: box.update(rule_arn=arn))

    return run(program), box


def unsecret(value):
    """The plain value of an input the engine would keep secret."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value["value"]
    return value


@pytest.fixture(scope="module")
def plain():
    return declare()


@pytest.fixture(scope="module")
def gitlab():
    return declare(gitlab_trigger_url=TRIGGER_URL, gitlab_trigger_token=pulumi.Output.secret("glptt-secret"))


# -- pure functions ------------------------------------------------------------------------------


def test_approval_pattern_matches_approved_packages_of_this_group_only():
    assert approval_event_pattern(GROUP) == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [GROUP], "ModelApprovalStatus": ["Approved"]},
    }


def test_a_trigger_url_without_a_token_is_refused():
    with pytest.raises(ValueError, match="gitlab_trigger_token: missing"):
        validate_trigger(TRIGGER_URL, None)


def test_a_url_that_is_not_a_pipeline_trigger_is_refused():
    with pytest.raises(ValueError, match=r"/api/v4/projects/<id>/trigger/pipeline"):
        validate_trigger("https://gitlab.example.com/group/project", "token")


def test_a_plain_http_trigger_url_is_refused():
    with pytest.raises(ValueError, match="not a GitLab pipeline trigger URL"):
        validate_trigger(TRIGGER_URL.replace("https", "http"), "token")


def test_a_self_hosted_gitlab_under_a_path_is_accepted():
    validate_trigger("https://example.com/gitlab/api/v4/projects/group%2Fproject/trigger/pipeline", "token")


def test_the_body_sent_to_gitlab_carries_the_package_as_text_variables():
    # What EventBridge does: an unquoted placeholder becomes the JSON value, a quoted one its text.
    event = {"ModelPackageArn": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/{GROUP}/3"}
    body = (
        TRIGGER_INPUT_TEMPLATE.replace("<arn>", json.dumps(event["ModelPackageArn"]))
        .replace("<group>", json.dumps(GROUP))
        .replace("<version>", "3")
    )
    assert json.loads(body) == {
        "variables": {
            "MODEL_PACKAGE_ARN": event["ModelPackageArn"],
            "MODEL_PACKAGE_GROUP": GROUP,
            "MODEL_PACKAGE_VERSION": "3",
        }
    }


def test_every_placeholder_has_an_event_path():
    for name in TRIGGER_INPUT_PATHS:
        assert f"<{name}>" in TRIGGER_INPUT_TEMPLATE
    assert all(path.startswith("$.detail.") for path in TRIGGER_INPUT_PATHS.values())


def test_only_eventbridge_for_this_rule_may_assume_the_trigger_role():
    rule = f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/{GROUP}-approved"
    [statement] = events_assume_role_policy(rule)["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule}}


def test_trigger_role_may_only_invoke_its_api_destination():
    destination = f"arn:aws:events:eu-west-1:{ACCOUNT}:api-destination/x/abc"
    [statement] = invoke_api_destination_policy(destination)["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("events:InvokeApiDestination", destination)


# -- without a GitLab trigger --------------------------------------------------------------------


def test_model_package_group_is_named_and_tagged(plain):
    rec, box = plain
    group = rec.one("aws:sagemaker/modelPackageGroup:ModelPackageGroup").inputs
    assert (group["modelPackageGroupName"], group["tags"]) == (GROUP, TAGS)
    assert box["registry"].group_name == GROUP


def test_approval_rule_watches_this_group(plain):
    rec, box = plain
    rule = rec.one(RULE).inputs
    assert json.loads(rule["eventPattern"]) == approval_event_pattern(GROUP)
    assert rule["name"] == box["registry"].approval_rule_name == f"{GROUP}-approved"
    assert rule["tags"] == TAGS


def test_without_a_trigger_or_topic_the_rule_has_no_target(plain):
    rec, _ = plain
    assert rec.of_type(TARGET) == []
    assert rec.of_type(CONNECTION) == rec.of_type(DESTINATION) == []


def test_a_notification_topic_receives_approvals():
    rec, _ = declare(notification_topic_arn=TOPIC)
    [target] = rec.of_type(TARGET)
    assert (target.inputs["rule"], target.inputs["arn"]) == (f"{GROUP}-approved", TOPIC)


# -- with a GitLab trigger -----------------------------------------------------------------------


def test_connection_sends_the_token_as_a_secret_query_parameter(gitlab):
    rec, _ = gitlab
    connection = rec.one(CONNECTION).inputs
    auth = unsecret(connection["authParameters"])
    query = {q["key"]: q for q in auth["invocationHttpParameters"]["queryStrings"]}
    assert query["token"] == {"key": "token", "value": "glptt-secret", "isValueSecret": True}
    assert query["ref"]["value"] == "main"


def test_the_token_stays_a_pulumi_secret(gitlab):
    rec, _ = gitlab
    assert rec.one(CONNECTION).inputs["authParameters"][rpc._special_sig_key] == rpc._special_secret_sig


def test_connection_secret_is_encrypted_with_the_stack_key(gitlab):
    rec, _ = gitlab
    assert rec.one(CONNECTION).inputs["kmsKeyIdentifier"] == KEY


def test_api_destination_posts_to_the_trigger_through_the_connection(gitlab):
    rec, _ = gitlab
    destination = rec.one(DESTINATION)
    connection = rec.one(CONNECTION)
    assert destination.inputs["invocationEndpoint"] == TRIGGER_URL
    assert destination.inputs["httpMethod"] == "POST"
    assert destination.inputs["connectionArn"] == connection.outputs["arn"]
    assert destination.inputs["invocationRateLimitPerSecond"] >= 1


def test_approvals_reach_the_api_destination_with_the_package_as_variables(gitlab):
    rec, _ = gitlab
    [target] = rec.of_type(TARGET)
    assert target.inputs["rule"] == f"{GROUP}-approved"
    assert target.inputs["arn"] == rec.one(DESTINATION).outputs["arn"]
    assert target.inputs["inputTransformer"] == {
        "inputPaths": TRIGGER_INPUT_PATHS,
        "inputTemplate": TRIGGER_INPUT_TEMPLATE,
    }


def test_the_target_role_is_scoped_to_the_rule_and_the_destination(gitlab):
    rec, box = gitlab
    role = rec.one("aws:iam/role:Role")
    policy = rec.one("aws:iam/rolePolicy:RolePolicy").inputs
    [target] = rec.of_type(TARGET)
    assert target.inputs["roleArn"] == role.outputs["arn"]
    assert json.loads(role.inputs["assumeRolePolicy"]) == events_assume_role_policy(box["rule_arn"])
    assert policy["role"] == f"{role.name}-id"
    assert json.loads(policy["policy"]) == invoke_api_destination_policy(rec.one(DESTINATION).outputs["arn"])


def test_the_trigger_role_is_tagged(gitlab):
    rec, _ = gitlab
    assert rec.one("aws:iam/role:Role").inputs["tags"] == TAGS
