"""Provider timeouts and failure shapes (issue 20, item 6).

terraform-provider-aws waits at most 60 minutes for an endpoint to be InService, and its
deletes succeed when the resource is already gone (each checks the service's "not found"
error). The Failed endpoint case is tests/localcloud/test_failed_endpoint.py.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import requests

from localcloud.translations import lookup
from localcloud.translations.base import DeployError, Request

ENDPOINT = lookup("aws:sagemaker/endpoint:Endpoint")

EVERYTHING = """
import json

import pulumi
import pulumi_aws as aws

if pulumi.Config("tiny").get_bool("declared") is not False:
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    role = aws.iam.Role("gone-role", name="gone-role", assume_role_policy=trust)
    aws.iam.RolePolicy("gone-policy", name="gone-policy", role=role.name, policy=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}))
    bucket = aws.s3.Bucket("gone-bucket", bucket="gone-bucket-tiny")
    aws.s3.BucketVersioning("gone-versioning", bucket=bucket.bucket,
        versioning_configuration={"status": "Enabled"})
    key = aws.kms.Key("gone-key", description="gone")
    aws.cloudwatch.LogGroup("gone-logs", name="/tiny/gone", retention_in_days=7)
    aws.cloudwatch.MetricAlarm("gone-alarm", name="gone-alarm", comparison_operator="GreaterThanThreshold",
        evaluation_periods=1, threshold=1, metric_name="Errors", namespace="Tiny", period=60, statistic="Sum")
    aws.sns.Topic("gone-topic", name="gone-topic")
    aws.sagemaker.ModelPackageGroup("gone-group", model_package_group_name="gone-group")
    aws.cloudwatch.EventRule("gone-rule", name="gone-rule", schedule_expression="rate(1 hour)")
    aws.ecr.Repository("gone-repository", name="gone-repository")
    aws.glue.CatalogDatabase("gone-database", name="gone_database")
"""


def test_the_endpoint_wait_ends_after_the_providers_sixty_minutes(fresh):
    """An endpoint still Updating after 60 minutes (on the emulator's clock) fails the deploy."""
    clock = f"{fresh.endpoint_url}/_mlops/clock"
    sagemaker = fresh.client("sagemaker")

    class Stuck(Request):
        def __call__(self, service, operation, **params):
            return {"EndpointStatus": "Updating", "EndpointName": params["EndpointName"]}

    call = Stuck(lambda service: sagemaker, "model-endpoint", ENDPOINT.type, "eu-west-1", "123456789012")
    before = datetime.fromisoformat(requests.get(clock, timeout=10).json()["now"])
    with pytest.raises(DeployError, match=r"timeout while waiting for state to become 'InService'.*60m0s"):
        ENDPOINT.update(call, "churn", {}, {"endpointConfigName": "new"}, {"endpointConfigName"})
    after = datetime.fromisoformat(requests.get(clock, timeout=10).json()["now"])
    assert (after - before).total_seconds() == 60 * 60


def test_deleting_resources_already_gone_succeeds(tmp_path, fresh):
    from tests.localcloud import scratch

    root = scratch.project(tmp_path, EVERYTHING)
    created = scratch.engine(root, fresh.endpoint_url).up()
    assert {o.op for o in created.operations} == {"create"}
    # Everything deleted outside the stack, as a user cleaning up by hand would.
    iam, s3, kms = fresh.client("iam"), fresh.client("s3"), fresh.client("kms")
    iam.delete_role_policy(RoleName="gone-role", PolicyName="gone-policy")
    iam.delete_role(RoleName="gone-role")
    s3.delete_bucket(Bucket="gone-bucket-tiny")
    key = next(r.id for r in scratch.state(root).resources.values() if r.name == "gone-key")
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    fresh.client("logs").delete_log_group(logGroupName="/tiny/gone")
    fresh.client("cloudwatch").delete_alarms(AlarmNames=["gone-alarm"])
    sns = fresh.client("sns")
    sns.delete_topic(TopicArn=sns.list_topics()["Topics"][0]["TopicArn"])
    fresh.client("sagemaker").delete_model_package_group(ModelPackageGroupName="gone-group")
    fresh.client("events").delete_rule(Name="gone-rule")
    fresh.client("ecr").delete_repository(repositoryName="gone-repository")
    fresh.client("glue").delete_database(Name="gone_database")

    removed = scratch.engine(root, fresh.endpoint_url, declared="false").up()
    assert {o.op for o in removed.operations} == {"delete"}
    assert len(removed.operations) == len(created.operations)
    assert scratch.state(root).resources == {}
