"""The model package group and the approval rule that starts promotion."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime import rpc

from infra.model_registry import (
    TRIGGER_INPUT_PATHS,
    ModelRegistry,
    ModelRegistryArgs,
    approval_event_pattern,
    dead_letter_queue_policy,
    events_assume_role_policy,
    invoke_api_destination_policy,
    trigger_input_template,
    validate_trigger,
)
from tests.infra.harness import ACCOUNT, run

TRIGGER_INPUT_TEMPLATE = trigger_input_template("dev", ["dev", "staging", "prod"])

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
    return declare(
        gitlab_trigger_url=TRIGGER_URL,
        gitlab_trigger_token=pulumi.Output.secret("glptt-secret"),
        stack="dev",
        deploy_stacks=("dev", "staging", "prod"),
    )


# -- pure functions ------------------------------------------------------------------------------


def _matches(detail: dict) -> bool:
    # EventBridge's matching as moto implements it ($or, exists, anything-but prefix included).
    from moto.events.models import EventPattern

    event = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Package State Change",
        "detail": detail,
    }
    return EventPattern.load(json.dumps(approval_event_pattern(GROUP))).matches_event(event)


def test_approval_pattern_matches_approved_packages_of_this_group_only():
    approved = {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved"}
    assert _matches(approved)
    assert _matches({**approved, "ModelPackageDescription": "customer-churn model trained by the pipeline"})
    assert not _matches({**approved, "ModelApprovalStatus": "PendingManualApproval"})
    assert not _matches({**approved, "ModelPackageGroupName": "another-group"})


def test_a_promoted_copy_being_approved_starts_no_promotion():
    # mlops promote registers the copy Approved: its own event must not start a second pipeline.
    approved = {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved"}
    description = "Promoted from arn:aws:sagemaker:eu-west-1:111111111111:model-package/g/1"
    assert not _matches({**approved, "ModelPackageDescription": description})


def test_the_approval_pattern_fits_eventbridges_limit():
    assert len(json.dumps(approval_event_pattern("x" * 63))) <= 2048


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
            "MODEL_SOURCE_STACK": "dev",
            "DEPLOY_STACKS": "dev staging prod",
        }
    }


def test_a_stack_name_that_would_break_the_body_is_refused():
    with pytest.raises(ValueError, match="stack 'pro\"d'"):
        trigger_input_template("dev", ['pro"d'])


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


def test_an_undeliverable_approval_is_retried_then_dead_lettered_in_an_encrypted_queue(gitlab):
    rec, box = gitlab
    [target] = rec.of_type(TARGET)
    queue = rec.one("aws:sqs/queue:Queue")
    # EventBridge's own limits: at most 185 retries over at most 24 hours (PutTargets RetryPolicy).
    assert target.inputs["retryPolicy"] == {"maximumEventAgeInSeconds": 86400, "maximumRetryAttempts": 185}
    assert target.inputs["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
    assert queue.inputs["kmsMasterKeyId"] == KEY
    policy = rec.one("aws:sqs/queuePolicy:QueuePolicy").inputs
    assert json.loads(policy["policy"]) == dead_letter_queue_policy(queue.outputs["arn"], box["rule_arn"])
    [statement] = json.loads(policy["policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": box["rule_arn"]}}


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
