"""Tag-only changes update in place, for every type, and removed tags are removed (issue 20, item 7).

In terraform-provider-aws ``tags`` is never ForceNew: every resource type updates its tags in
place through its service's tagging API (untag the keys removed, tag the rest). Each tag set
here is read back through the service's own tag listing.
"""

from __future__ import annotations

import pytest

from tests.localcloud import scratch

PROGRAM = """
import json

import pulumi
import pulumi_aws as aws

tags = pulumi.Config("tiny").require_object("tags")
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
role = aws.iam.Role("tagged-role", name="tagged-role", assume_role_policy=trust, tags=tags)
aws.s3.Bucket("tagged-bucket", bucket="tagged-bucket-tiny", tags=tags)
aws.kms.Key("tagged-key", description="tagged", tags=tags)
aws.cloudwatch.LogGroup("tagged-logs", name="/tiny/tagged", retention_in_days=7, tags=tags)
aws.cloudwatch.MetricAlarm("tagged-alarm", name="tagged-alarm", comparison_operator="GreaterThanThreshold",
    evaluation_periods=1, threshold=1, metric_name="Errors", namespace="Tiny", period=60, statistic="Sum",
    tags=tags)
aws.sns.Topic("tagged-topic", name="tagged-topic", tags=tags)
aws.cloudwatch.EventRule("tagged-rule", name="tagged-rule", schedule_expression="rate(1 hour)", tags=tags)
aws.ecr.Repository("tagged-repository", name="tagged-repository", tags=tags)
aws.sagemaker.ModelPackageGroup("tagged-group", model_package_group_name="tagged-group", tags=tags)
model = aws.sagemaker.Model("tagged-model", name="tagged-model", execution_role_arn=role.arn,
    primary_container={"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}, tags=tags)
aws.sagemaker.EndpointConfiguration("tagged-config", name="tagged-config", production_variants=[{
    "variant_name": "champion", "model_name": model.name, "instance_type": "ml.m5.large",
    "initial_instance_count": 1}], tags=tags)
aws.sagemaker.FeatureGroup("tagged-features", feature_group_name="tagged-features",
    record_identifier_feature_name="id", event_time_feature_name="ts",
    feature_definitions=[{"feature_name": "id", "feature_type": "String"},
                         {"feature_name": "ts", "feature_type": "String"}],
    online_store_config={"enable_online_store": True}, role_arn=role.arn, tags=tags,
    offline_store_config={"s3_storage_config": {"s3_uri": "s3://tagged-bucket-tiny/features"}})
"""

BEFORE = {"team": "ml", "cost-center": "42"}
AFTER = {"team": "ml", "owner": "ana"}  # cost-center removed, owner added


def _pairs(tags, key="Key", value="Value") -> dict[str, str]:
    return {t[key]: t[value] for t in tags}


@pytest.fixture
def retagged(tmp_path, fresh):
    root = scratch.project(tmp_path, PROGRAM)
    created = scratch.engine(root, fresh.endpoint_url, tags=BEFORE).up()
    updated = scratch.engine(root, fresh.endpoint_url, tags=AFTER).up()
    return root, created, updated


def test_a_tag_only_change_updates_every_type_in_place(retagged):
    _, created, updated = retagged
    assert {o.op for o in created.operations} == {"create"}
    assert sorted((o.op, o.name) for o in updated.operations) == sorted(
        ("update", o.name) for o in created.operations
    )
    assert all(o.changed == ["tags"] for o in updated.operations)


def test_removed_tags_are_removed_and_added_ones_added(retagged, fresh):
    root, _, _ = retagged
    ids = {r.name: r for r in scratch.state(root).resources.values()}
    arn = {name: r.outputs.get("arn") for name, r in ids.items()}
    found = {
        "tagged-role": _pairs(fresh.client("iam").list_role_tags(RoleName="tagged-role")["Tags"]),
        "tagged-bucket": _pairs(fresh.client("s3").get_bucket_tagging(Bucket="tagged-bucket-tiny")["TagSet"]),
        "tagged-key": _pairs(
            fresh.client("kms").list_resource_tags(KeyId=ids["tagged-key"].id)["Tags"], "TagKey", "TagValue"
        ),
        "tagged-logs": fresh.client("logs").list_tags_for_resource(resourceArn=arn["tagged-logs"])["tags"],
        "tagged-alarm": _pairs(
            fresh.client("cloudwatch").list_tags_for_resource(ResourceARN=arn["tagged-alarm"])["Tags"]
        ),
        "tagged-topic": _pairs(
            fresh.client("sns").list_tags_for_resource(ResourceArn=arn["tagged-topic"])["Tags"]
        ),
        "tagged-rule": _pairs(
            fresh.client("events").list_tags_for_resource(ResourceARN=arn["tagged-rule"])["Tags"]
        ),
        "tagged-repository": _pairs(
            fresh.client("ecr").list_tags_for_resource(resourceArn=arn["tagged-repository"])["tags"]
        ),
    }
    sagemaker = fresh.client("sagemaker")
    for name in ("tagged-group", "tagged-model", "tagged-config", "tagged-features"):
        found[name] = _pairs(sagemaker.list_tags(ResourceArn=arn[name])["Tags"])
    assert found == dict.fromkeys(found, AFTER)
