"""Requests checked against AWS's service models beyond botocore's own type checks."""

from __future__ import annotations

import pytest

from pipelines.local import strict

ROLE = "arn:aws:iam::123456789012:role/pipeline"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"


def processing_job(**overrides):
    request = {
        "ProcessingJobName": "validate-data-1",
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
        },
        "AppSpecification": {"ImageUri": IMAGE},
        "RoleArn": ROLE,
        "Environment": {"AWS_REGION": "eu-west-1"},
    }
    request.update(overrides)
    return request


def test_a_valid_request_has_no_problems():
    assert strict.check_request("sagemaker", "CreateProcessingJob", processing_job()) == []


def test_an_over_long_name_is_named_with_the_limit():
    problems = strict.check_request(
        "sagemaker", "CreateProcessingJob", processing_job(ProcessingJobName="j" * 80)
    )
    assert problems == ["ProcessingJobName: has 80 characters, more than the maximum 63"]


def test_a_name_breaking_the_pattern_shows_the_pattern():
    problems = strict.check_request(
        "sagemaker", "CreateProcessingJob", processing_job(ProcessingJobName="bad_name")
    )
    assert problems == [
        "ProcessingJobName: 'bad_name' does not match the pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    ]


def test_an_unknown_instance_type_is_refused_by_its_enum():
    request = processing_job()
    request["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.bogus.huge"
    (problem,) = strict.check_request("sagemaker", "CreateProcessingJob", request)
    assert problem.startswith(
        "ProcessingResources.ClusterConfig.InstanceType: 'ml.bogus.huge' is not one of ml."
    )


def test_an_environment_key_is_checked_against_the_key_pattern():
    problems = strict.check_request(
        "sagemaker", "CreateProcessingJob", processing_job(Environment={"1BAD-KEY": "v"})
    )
    assert problems == [
        "Environment key '1BAD-KEY': '1BAD-KEY' does not match the pattern [a-zA-Z_][a-zA-Z0-9_]*"
    ]


def test_numeric_ranges_and_list_sizes_are_checked():
    request = processing_job()
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 0
    request["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] = 16385
    problems = strict.check_request("sagemaker", "CreateProcessingJob", request)
    assert problems == [
        "ProcessingResources.ClusterConfig.InstanceCount: 0 is below the minimum 1",
        "ProcessingResources.ClusterConfig.VolumeSizeInGB: 16385 is above the maximum 16384",
    ]
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    problems = strict.check_request("sagemaker", "CreateProcessingJob", processing_job(Tags=tags))
    assert problems == ["Tags: has 51 items, more than the maximum 50"]


def test_unicode_classes_in_patterns_are_understood():
    # Tag patterns use Java's \p{L} classes, which the re module cannot compile.
    tags = [{"Key": "équipe", "Value": "données: ok"}]
    assert strict.check_request("sagemaker", "CreateProcessingJob", processing_job(Tags=tags)) == []


def test_missing_members_and_wrong_types_are_reported_too():
    request = processing_job()
    del request["RoleArn"]
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "one"
    problems = strict.check_request("sagemaker", "CreateProcessingJob", request)
    assert any("RoleArn" in p and "Missing required parameter" in p for p in problems)
    assert any("InstanceCount" in p and "type: <class 'str'>" in p for p in problems)


def test_a_strict_client_refuses_before_sending(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = strict.strict_client("sagemaker", region_name="eu-west-1", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(strict.RequestRefused) as refused:
        client.create_processing_job(**processing_job(ProcessingJobName="j" * 80))
    assert refused.value.operation == "CreateProcessingJob"
    assert "ProcessingJobName: has 80 characters" in str(refused.value)


def test_patterns_with_java_surrogate_pairs_are_understood():
    # Glue's names allow every character, code points above U+FFFF written as surrogate pairs.
    assert strict.check_request("glue", "CreateDatabase", {"DatabaseInput": {"Name": "feature_db"}}) == []
    problems = strict.check_request("glue", "CreateDatabase", {"DatabaseInput": {"Name": "bad\x01name"}})
    assert any("DatabaseInput.Name" in p and "pattern" in p for p in problems)
