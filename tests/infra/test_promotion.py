"""Promotion across stacks: the order, and the grants the source stack declares for its targets.

The expected policies are written out from AWS's documented forms (a cross-account grant names
the other account's root principal and narrows it with ``aws:PrincipalArn``; KMS use through S3
is ``kms:ViaService`` = ``s3.<region>.amazonaws.com``), never built with the module's helpers.
"""

from __future__ import annotations

import json

import pytest

from infra.promotion import Stage, model_artifact_prefixes, parse_order, stacks_to_deploy
from tests.infra.harness import ACCOUNT, run_stack

ORDER = (Stage("dev"), Stage("staging"), Stage("prod"))
PROD_ACCOUNT = "222222222222"
TWO_ACCOUNTS = ["dev", "staging", {"stack": "prod", "account": PROD_ACCOUNT}]
PROD_ROLE = f"arn:aws:iam::{PROD_ACCOUNT}:role/customer-churn-prod-promotion"
STAGING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/customer-churn-staging-promotion"


def test_an_approval_deploys_its_stack_and_those_after_it():
    assert stacks_to_deploy(ORDER, "dev") == ["dev", "staging", "prod"]
    assert stacks_to_deploy(ORDER, "staging") == ["staging", "prod"]


def test_a_prod_approval_never_deploys_dev():
    assert stacks_to_deploy(ORDER, "prod") == ["prod"]


def test_a_stack_outside_the_order_deploys_only_itself():
    assert stacks_to_deploy(ORDER, "local") == ["local"]
    assert stacks_to_deploy((), "dev") == ["dev"]


def test_the_granted_prefixes_hold_the_models_and_evaluations_but_not_the_training_data():
    models, evaluation = model_artifact_prefixes("customer-churn-dev-training")
    assert models == "pipelines/customer-churn-dev-training/models/"
    assert evaluation == "pipelines/customer-churn-dev-training/*/EvaluateModel/"
    assert not any(p.rstrip("/").endswith("EngineerFeatures") for p in (models, evaluation))


@pytest.fixture(scope="module")
def dev_two_accounts():
    return run_stack("dev", {"mlops-platform:promotionOrder": TWO_ACCOUNTS})


def _statements(document: str) -> dict[str, dict]:
    return {s.get("Sid"): s for s in json.loads(document)["Statement"]}


def test_the_source_bucket_grants_each_target_role_its_model_artifacts_only(dev_two_accounts):
    policy = dev_two_accounts.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
    # The bucket's ARN as the mocks answer it (AWS: arn:aws:s3:::customer-churn-dev-artifacts-<account>).
    bucket = dev_two_accounts.one("aws:s3/bucket:Bucket").outputs["arn"]
    grants = [s for s in json.loads(policy)["Statement"] if s["Effect"] == "Allow"]
    expected_resources = [
        f"{bucket}/pipelines/customer-churn-dev-training/models/*",
        f"{bucket}/pipelines/customer-churn-dev-training/*/EvaluateModel/*",
    ]
    by_principal = {s["Principal"]["AWS"]: s for s in grants}
    assert set(by_principal) == {f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{PROD_ACCOUNT}:root"}
    prod = by_principal[f"arn:aws:iam::{PROD_ACCOUNT}:root"]
    assert prod["Action"] == "s3:GetObject"
    assert prod["Resource"] == expected_resources
    assert prod["Condition"] == {"ArnEquals": {"aws:PrincipalArn": PROD_ROLE}}
    staging = by_principal[f"arn:aws:iam::{ACCOUNT}:root"]
    assert staging["Condition"] == {"ArnEquals": {"aws:PrincipalArn": STAGING_ROLE}}


def test_the_source_key_lets_the_other_accounts_role_decrypt_through_s3_only(dev_two_accounts):
    key = dev_two_accounts.one("aws:kms/key:Key").inputs["policy"]
    grants = [
        s for s in json.loads(key)["Statement"] if "aws:PrincipalArn" in json.dumps(s.get("Condition", {}))
    ]
    prod = next(s for s in grants if s["Principal"] == {"AWS": f"arn:aws:iam::{PROD_ACCOUNT}:root"})
    assert prod["Action"] == "kms:Decrypt"
    assert prod["Condition"] == {
        "ArnEquals": {"aws:PrincipalArn": PROD_ROLE},
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
    }
    assert len(grants) == 2  # staging and prod, nobody else


def test_the_last_stack_grants_nothing_and_owns_a_promotion_role_reading_the_other_account():
    rec = run_stack("prod", {"mlops-platform:promotionOrder": ["dev", "staging", "prod"]})
    policy = json.loads(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert [s for s in policy["Statement"] if s["Effect"] == "Allow"] == []
    prod_two = run_stack(
        "prod",
        {"mlops-platform:promotionOrder": [{"stack": "dev", "account": "111111111111"}, "staging", "prod"]},
    )
    role = next(r for r in prod_two.of_type("aws:iam/role:Role") if r.name == "promotion-role")
    assert role.inputs["name"] == "customer-churn-prod-promotion"
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"AWS": f"arn:aws:iam::{ACCOUNT}:root"}]
    document = next(
        r for r in prod_two.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "promotion-role-policy"
    )
    statements = _statements(document.inputs["policy"])
    assert statements["ReadDevModelArtifacts"]["Resource"] == [
        "arn:aws:s3:::customer-churn-dev-artifacts-111111111111/pipelines/customer-churn-dev-training/models/*",
        "arn:aws:s3:::customer-churn-dev-artifacts-111111111111/pipelines/customer-churn-dev-training/*/EvaluateModel/*",
    ]
    decrypt = statements["DecryptDevModelArtifacts"]
    assert decrypt["Resource"] == "arn:aws:kms:eu-west-1:111111111111:key/*"
    assert decrypt["Condition"]["ForAnyValue:StringEquals"] == {
        "kms:ResourceAliases": "alias/customer-churn-dev-artifacts-111111111111"
    }


def test_a_stack_that_promotes_nowhere_has_no_promotion_role():
    rec = run_stack("local")
    assert [r for r in rec.of_type("aws:iam/role:Role") if r.name == "promotion-role"] == []


def test_parse_order_needs_the_stack_itself():
    with pytest.raises(ValueError, match="does not list this stack 'qa'"):
        parse_order(["dev", "prod"], key="promotionOrder", stack="qa")


def test_the_source_group_lets_the_other_accounts_role_describe_its_packages(dev_two_accounts):
    policy = dev_two_accounts.one("aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy").inputs
    assert policy["modelPackageGroupName"] == "customer-churn-dev"
    document = json.loads(policy["resourcePolicy"])
    # A resource policy's elements as the IAM JSON policy reference spells them: any other key
    # (a misspelt "effect") makes CreateModelPackageGroupPolicy refuse the document.
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PromotionToProdDescribesPackages",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{PROD_ACCOUNT}:root"},
                "Action": "sagemaker:DescribeModelPackage",
                "Resource": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/customer-churn-dev/*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": PROD_ROLE}},
            }
        ],
    }


def test_within_one_account_no_group_policy_is_declared():
    rec = run_stack("dev")
    assert rec.of_type("aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy") == []


def test_prods_approval_trigger_asks_gitlab_to_deploy_prod_only():
    trigger = {
        "mlops-platform:gitlabTriggerUrl": "https://gitlab.example.com/api/v4/projects/42/trigger/pipeline",
        "mlops-platform:gitlabTriggerToken": "glptt-x",
    }
    rec = run_stack("prod", trigger)
    target = next(
        t
        for t in rec.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if t.inputs["targetId"] == "gitlab-promotion"
    )
    template = target.inputs["inputTransformer"]["inputTemplate"]
    body = json.loads(template.replace("<arn>", '"a"').replace("<group>", '"g"').replace("<version>", "1"))
    assert (body["variables"]["MODEL_SOURCE_STACK"], body["variables"]["DEPLOY_STACKS"]) == ("prod", "prod")


def test_parse_order_names_the_stacks_it_lists_when_the_stack_is_not_among_them():
    with pytest.raises(ValueError) as refused:
        parse_order(["dev", {"stack": "prod", "account": PROD_ACCOUNT}], key="promotionOrder", stack="qa")
    assert (
        str(refused.value)
        == "promotionOrder: [dev, prod] does not list this stack 'qa'; expected it in its place"
    )


# The IAM JSON policy elements a statement may hold (IAM User Guide, "IAM JSON policy elements
# reference"); a document with any other, or without Effect and an action, is refused
# (MalformedPolicyDocument) when the deploy puts it.
ELEMENTS = {
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}


def _documents(recorded):
    """Every policy document a stack declares, by resource and input."""
    for resource in recorded.resources:
        for name, value in resource.inputs.items():
            if isinstance(value, str) and '"Statement"' in value:
                yield f"{resource.name}.{name}", json.loads(value)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_policy_document_of_a_promoting_stack_follows_iams_grammar(stack):
    recorded = run_stack(stack, {"mlops-platform:promotionOrder": TWO_ACCOUNTS})
    documents = dict(_documents(recorded))
    assert len(documents) > 5
    for where, document in documents.items():
        assert document["Version"] == "2012-10-17", where
        for statement in document["Statement"]:
            assert set(statement) <= ELEMENTS, (where, statement)
            assert statement["Effect"] in ("Allow", "Deny"), (where, statement)
            assert ("Action" in statement) != ("NotAction" in statement), (where, statement)
            # Only a role's trust policy goes without a resource (the role is its resource).
            if not where.endswith("assumeRolePolicy"):
                assert ("Resource" in statement) != ("NotResource" in statement), (where, statement)
