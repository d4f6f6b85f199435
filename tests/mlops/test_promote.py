"""``mlops promote``'s decisions that need no AWS: what is copied, where, and what is refused."""

from __future__ import annotations

import re

import pytest

from mlops.promote import (
    PromotionError,
    approval_status,
    find_promoted,
    main,
    plan_copies,
    rewrite,
    source_stack_of,
    target_image,
    target_package_request,
)

SOURCE = "customer-churn-dev-artifacts-111111111111"
TARGET = "customer-churn-staging-artifacts-222222222222"
TRAINING = "customer-churn-dev-training"
ARN = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/customer-churn-dev/7"


def package(
    model_key: str, evaluation_key: str = f"pipelines/{TRAINING}/e1/EvaluateModel/evaluation/evaluation.json"
):
    return {
        "ModelPackageArn": ARN,
        "InferenceSpecification": {
            "Containers": [{"Image": "img", "ModelDataUrl": f"s3://{SOURCE}/{model_key}"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{SOURCE}/{evaluation_key}"}
            }
        },
        "CustomerMetadataProperties": {"DataEnd": "2026-03-01T00:00:00Z"},
    }


def copies_of(pkg):
    return plan_copies(
        pkg, source_bucket=SOURCE, source_stack="dev", training_pipeline=TRAINING, target_bucket=TARGET
    )


def staging_request(pkg, copies):
    """The CreateModelPackage request of dev's package promoted into staging."""
    return target_package_request(
        pkg,
        group="customer-churn-staging",
        image="repo@sha256:x",
        copies=copies,
        source_stack="dev",
        source_account="111111111111",
    )


def test_the_model_and_its_evaluation_are_copied_under_the_targets_promoted_prefix():
    copies = copies_of(package(f"pipelines/{TRAINING}/models/job-1/output/model.tar.gz"))
    assert copies == {
        f"s3://{SOURCE}/pipelines/{TRAINING}/models/job-1/output/model.tar.gz": (
            f"s3://{TARGET}/pipelines/promoted/dev/pipelines/{TRAINING}/models/job-1/output/model.tar.gz"
        ),
        f"s3://{SOURCE}/pipelines/{TRAINING}/e1/EvaluateModel/evaluation/evaluation.json": (
            f"s3://{TARGET}/pipelines/promoted/dev/pipelines/{TRAINING}/e1/EvaluateModel/evaluation/evaluation.json"
        ),
    }


def test_an_object_outside_the_granted_prefixes_is_refused_naming_the_field():
    # The training split sits beside the model under the pipeline's prefix, but is not granted.
    bad = package(f"pipelines/{TRAINING}/e1/EngineerFeatures/train/train.csv")
    with pytest.raises(
        PromotionError, match=r"InferenceSpecification.Containers\[0\].ModelDataUrl: .* outside"
    ):
        copies_of(bad)


def test_an_object_in_another_bucket_is_refused():
    bad = package(f"pipelines/{TRAINING}/models/job-1/output/model.tar.gz")
    bad["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] = "s3://elsewhere/evaluation.json"
    with pytest.raises(
        PromotionError, match=re.escape("ModelMetrics.ModelQuality.Statistics: s3://elsewhere")
    ):
        copies_of(bad)


def test_the_target_request_points_at_the_copies_and_carries_lineage():
    pkg = package(f"pipelines/{TRAINING}/models/job-1/output/model.tar.gz")
    copies = copies_of(pkg)
    request = staging_request(pkg, copies)
    (container,) = request["InferenceSpecification"]["Containers"]
    assert container == {
        "Image": "repo@sha256:x",
        "ModelDataUrl": rewrite(pkg, copies)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
    }
    assert container["ModelDataUrl"].startswith(f"s3://{TARGET}/")
    assert request["CustomerMetadataProperties"] == {
        "DataEnd": "2026-03-01T00:00:00Z",
        "PromotedFrom": ARN,
        "PromotedFromStack": "dev",
        "PromotedFromAccount": "111111111111",
    }
    assert request["ModelPackageDescription"] == f"Promoted from {ARN}"
    assert request["ModelApprovalStatus"] == "Approved"


def test_the_copy_keeps_what_create_model_package_takes_back_from_the_described_package():
    """DescribeModelPackage's container also names the source image's digest and the source
    object's ETag, which CreateModelPackage would take as the copy's: they are left out."""
    pkg = package(f"pipelines/{TRAINING}/models/job-1/output/model.tar.gz")
    spec = pkg["InferenceSpecification"]
    spec["Containers"][0].update(
        ContainerHostname="model",
        ImageDigest="sha256:" + "b" * 64,
        ModelDataETag='"0123abcd"',
        Environment={"MODEL_SERVER_WORKERS": "2"},
        Framework="SKLEARN",
        FrameworkVersion="1.7",
    )
    spec.update(
        SupportedRealtimeInferenceInstanceTypes=["ml.m5.large"],
        SupportedTransformInstanceTypes=["ml.m5.xlarge"],
    )
    request = staging_request(pkg, copies_of(pkg))
    target = request["InferenceSpecification"]
    (container,) = target.pop("Containers")
    assert sorted(container) == [
        "ContainerHostname",
        "Environment",
        "Framework",
        "FrameworkVersion",
        "Image",
        "ModelDataUrl",
    ]
    assert (container["Framework"], container["FrameworkVersion"]) == ("SKLEARN", "1.7")
    assert container["Environment"] == {"MODEL_SERVER_WORKERS": "2"}
    assert target == {
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["application/json"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        "SupportedTransformInstanceTypes": ["ml.m5.xlarge"],
    }


def test_a_group_of_another_schema_is_refused():
    with pytest.raises(PromotionError, match="group 'fraud-dev' is not a customer-churn stack's group"):
        source_stack_of("fraud-dev", "customer-churn")


def test_the_targets_quality_bar_decides_the_copys_approval():
    assert approval_status({"Auc": "0.82"}, stack="prod", min_auc=0.8) == "Approved"
    assert approval_status({}, stack="prod", min_auc=0.8) == "PendingManualApproval"
    with pytest.raises(PromotionError, match=re.escape("Auc: 0.75 is below prod's minAuc 0.8")):
        approval_status({"Auc": "0.75"}, stack="prod", min_auc=0.8)


@pytest.mark.parametrize("given", [["--stack", "staging"], ["--from", ARN]])
def test_mlops_promote_needs_both_the_package_and_the_target_stack(given, capsys):
    with pytest.raises(SystemExit) as exited:
        main(given)
    missing = "--from" if "--stack" in given else "--stack"
    assert exited.value.code == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_an_s3_uri_in_the_packages_metadata_is_copied_and_pointed_at_the_copy():
    pkg = package(f"pipelines/{TRAINING}/models/job-1/output/model.tar.gz")
    baseline = f"s3://{SOURCE}/pipelines/{TRAINING}/e1/EvaluateModel/baseline/baseline.json"
    pkg["CustomerMetadataProperties"]["Baseline"] = baseline
    copies = copies_of(pkg)
    expected = (
        f"s3://{TARGET}/pipelines/promoted/dev/pipelines/{TRAINING}/e1/EvaluateModel/baseline/baseline.json"
    )
    assert copies[baseline] == expected
    request = staging_request(pkg, copies)
    assert request["CustomerMetadataProperties"]["Baseline"] == expected


MANIFEST = (
    '{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", '
    '"config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, '
    '"digest": "sha256:' + "c" * 64 + '"}, "layers": []}'
)


def test_a_source_image_named_by_digest_is_found_by_that_digest_in_the_targets_repository():
    """staging's copy names its image by digest; promoted to prod, prod's repository must hold it."""
    import boto3
    from moto import mock_aws

    registry = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
    with mock_aws():
        ecr = boto3.client("ecr", region_name="eu-west-1")
        ecr.create_repository(repositoryName="customer-churn-prod")
        digest = ecr.put_image(
            repositoryName="customer-churn-prod", imageManifest=MANIFEST, imageTag="c0ffee"
        )["image"]["imageId"]["imageDigest"]
        source = f"111111111111.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-staging@{digest}"
        assert (
            target_image(ecr, source, "customer-churn-prod", registry)
            == f"{registry}/customer-churn-prod@{digest}"
        )
        absent = "sha256:" + "d" * 64
        with pytest.raises(PromotionError) as refused:
            target_image(ecr, source.replace(digest, absent), "customer-churn-prod", registry)
    assert str(refused.value).startswith(
        f"image {source.replace(digest, absent)}: digest {absent} is not in the target repository customer-churn-prod ("
    )
    assert str(refused.value).endswith("): push the build there first")


def test_mlops_promote_help_names_the_command_and_what_it_does(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0
    assert shown.startswith(
        "usage: mlops promote [-h] --from SOURCE --stack STACK [--role-arn ROLE_ARN] [--json]"
    )
    assert (
        "\nmlops promote --from <package-arn> --stack <target>: give a stack its own copy of an approved model.\n"
        in shown
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "ValidationException",
            "--stack: the target's model package group customer-churn-prod does not exist "
            "(ValidationException): deploy prod once before promoting to it",
        ),
        (
            "AccessDeniedException",
            "--stack: the target's model package group customer-churn-prod: AccessDeniedException: ",
        ),
    ],
)
def test_a_target_group_that_cannot_be_read_stops_the_promotion_naming_why(code, message):
    import boto3
    from botocore.stub import Stubber

    sm = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(sm) as stub:
        stub.add_client_error("describe_model_package_group", service_error_code=code, service_message="no")
        with pytest.raises(PromotionError) as refused:
            find_promoted(sm, "customer-churn-prod", ARN, "prod")
    assert str(refused.value).startswith(message)
