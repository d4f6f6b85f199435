"""IAM's policy language as the emulator evaluates it, case by case from the IAM User Guide.

Each expected value is AWS's documented behaviour ("IAM JSON policy elements: Condition
operators", "Policy evaluation logic"), not the module's own helpers.
"""

from __future__ import annotations

import pytest

from localcloud.emulator.iam_policy import ALLOW, DENY, Principal, UnsupportedCondition, evaluate

ROLE = "arn:aws:iam::123456789012:role/app"
SESSION = Principal(
    arn="arn:aws:sts::123456789012:assumed-role/app/s1", account="123456789012", role_arn=ROLE
)


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action="s3:GetObject", resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_an_explicit_deny_wins_over_an_allow_in_the_same_policy():
    document = policy(allow("s3:*"), {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"})
    assert evaluate(document, "s3:GetObject", "arn:aws:s3:::b/k", {}).effect == DENY
    assert evaluate(document, "s3:PutObject", "arn:aws:s3:::b/k", {}).effect == ALLOW


def test_actions_match_without_case_and_resources_with_case():
    document = policy(allow("S3:getobject", "arn:aws:s3:::Bucket/*"))
    assert evaluate(document, "s3:GetObject", "arn:aws:s3:::Bucket/k", {}).effect == ALLOW
    assert evaluate(document, "s3:GetObject", "arn:aws:s3:::bucket/k", {}).effect is None


def test_a_resource_wildcard_spans_slashes_and_colons():
    document = policy(
        allow("logs:PutLogEvents", "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/*")
    )
    stream = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/e:log-stream:v/i"
    assert evaluate(document, "logs:PutLogEvents", stream, {}).effect == ALLOW


def test_not_action_allows_everything_else():
    document = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate(document, "iam:CreateUser", "*", {}).effect is None
    assert evaluate(document, "s3:GetObject", "*", {}).effect == ALLOW


def test_a_negated_operator_holds_when_the_key_is_missing():
    # "If the key that you specify ... is not present in the request context", negated
    # operators such as StringNotEquals evaluate to true (the documented pitfall of Deny + NotEquals).
    document = policy(allow(Condition={"StringNotEquals": {"aws:SourceVpc": "vpc-1"}}))
    assert evaluate(document, "s3:GetObject", "*", {}).effect == ALLOW
    assert evaluate(document, "s3:GetObject", "*", {"aws:sourcevpc": ["vpc-1"]}).effect is None


def test_a_positive_operator_fails_when_the_key_is_missing_unless_if_exists():
    strict = policy(allow(Condition={"StringEquals": {"aws:SourceAccount": "123456789012"}}))
    lenient = policy(allow(Condition={"StringEqualsIfExists": {"aws:SourceAccount": "123456789012"}}))
    assert evaluate(strict, "s3:GetObject", "*", {}).effect is None
    assert evaluate(lenient, "s3:GetObject", "*", {}).effect == ALLOW
    assert evaluate(lenient, "s3:GetObject", "*", {"aws:sourceaccount": ["999999999999"]}).effect is None


def test_several_values_of_one_key_are_or_and_several_keys_are_and():
    document = policy(
        allow(
            Condition={
                "StringEquals": {"aws:SourceAccount": ["111111111111", "123456789012"]},
                "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:eu-west-1:123456789012:*"},
            }
        )
    )
    context = {
        "aws:sourceaccount": ["123456789012"],
        "aws:sourcearn": ["arn:aws:sagemaker:eu-west-1:123456789012:pipeline/p"],
    }
    assert evaluate(document, "s3:GetObject", "*", context).effect == ALLOW
    other = {**context, "aws:sourcearn": ["arn:aws:sagemaker:eu-west-1:999999999999:pipeline/p"]}
    assert evaluate(document, "s3:GetObject", "*", other).effect is None


def test_bool_and_numeric_conditions_as_a_tls_only_bucket_policy_uses_them():
    document = policy(
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    )
    assert evaluate(document, "s3:GetObject", "*", {"aws:securetransport": ["false"]}).effect == DENY
    assert (
        evaluate(
            document, "s3:GetObject", "*", {"aws:securetransport": ["true"], "s3:tlsversion": ["1.0"]}
        ).effect
        == DENY
    )
    assert (
        evaluate(
            document, "s3:GetObject", "*", {"aws:securetransport": ["true"], "s3:tlsversion": ["1.3"]}
        ).effect
        is None
    )


def test_null_checks_whether_a_key_is_present():
    document = policy(allow(Condition={"Null": {"aws:TokenIssueTime": "true"}}))
    assert evaluate(document, "s3:GetObject", "*", {}).effect == ALLOW
    assert evaluate(document, "s3:GetObject", "*", {"aws:tokenissuetime": ["2026-01-01"]}).effect is None


def test_for_all_values_holds_for_an_empty_set_and_for_any_value_does_not():
    every = policy(allow(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["stack", "owner"]}}))
    some = policy(allow(Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["stack"]}}))
    assert evaluate(every, "s3:GetObject", "*", {}).effect == ALLOW
    assert evaluate(every, "s3:GetObject", "*", {"aws:tagkeys": ["stack", "cost"]}).effect is None
    assert evaluate(some, "s3:GetObject", "*", {}).effect is None
    assert evaluate(some, "s3:GetObject", "*", {"aws:tagkeys": ["cost", "stack"]}).effect == ALLOW


def test_an_operator_the_emulator_does_not_evaluate_is_refused_not_skipped():
    document = policy(allow(Condition={"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}))
    with pytest.raises(UnsupportedCondition, match="DateGreaterThan"):
        evaluate(document, "s3:GetObject", "*", {})


@pytest.mark.parametrize(
    ("principal", "how"),
    [
        ({"AWS": ROLE}, "role"),
        ({"AWS": SESSION.arn}, "session"),
        ({"AWS": "arn:aws:iam::123456789012:root"}, "account"),
        ({"AWS": "123456789012"}, "account"),
        ("*", "any"),
        ({"AWS": "arn:aws:iam::999999999999:root"}, ""),
        ({"Service": "sagemaker.amazonaws.com"}, ""),
    ],
)
def test_a_resource_policy_names_a_role_session_by_its_role_its_session_or_its_account(principal, how):
    document = policy({"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject", "Resource": "*"})
    verdict = evaluate(document, "s3:GetObject", "arn:aws:s3:::b/k", {}, SESSION)
    assert (verdict.effect, verdict.matched_by) == ((ALLOW, how) if how else (None, ""))


def test_a_service_principal_matches_only_its_service():
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
        }
    )
    sagemaker = Principal(
        arn="sagemaker.amazonaws.com", account="123456789012", service="sagemaker.amazonaws.com"
    )
    events = Principal(arn="events.amazonaws.com", account="123456789012", service="events.amazonaws.com")
    context = {"aws:sourceaccount": ["123456789012"]}
    assert evaluate(trust, "sts:AssumeRole", ROLE, context, sagemaker).effect == ALLOW
    assert evaluate(trust, "sts:AssumeRole", ROLE, context, events).effect is None
    assert evaluate(trust, "sts:AssumeRole", ROLE, {}, sagemaker).effect is None
