"""The data sources a program reads (``aws.get_caller_identity()``, ``get_region()``,
``get_partition()``) answer what terraform-provider-aws's data sources answer: the caller's
identity as STS gives it, the region with its EC2 endpoint, and the commercial partition's
DNS suffix and reverse-DNS prefix (the provider's documentation of ``aws_caller_identity``,
``aws_region`` and ``aws_partition``); an ``id`` each, as the provider sets it."""

from __future__ import annotations

import pytest

from localcloud.translations.base import DeployError
from tests.localcloud import scratch

READS_DATA_SOURCES = """
import pulumi
import pulumi_aws as aws

me = aws.get_caller_identity()
region = aws.get_region()
partition = aws.get_partition()
pulumi.export("identity", {"accountId": me.account_id, "arn": me.arn, "userId": me.user_id, "id": me.id})
pulumi.export("region", {"region": region.region, "name": region.name, "endpoint": region.endpoint, "id": region.id})
pulumi.export("partition", {"partition": partition.partition, "dnsSuffix": partition.dns_suffix,
    "reverseDnsPrefix": partition.reverse_dns_prefix, "id": partition.id})
"""


def test_a_program_reads_the_callers_identity_the_region_and_the_partition(tmp_path, fresh):
    root = scratch.project(tmp_path, READS_DATA_SOURCES)
    outputs = scratch.engine(root, fresh.endpoint_url).up().outputs
    caller = fresh.client("sts").get_caller_identity()
    assert outputs["identity"] == {
        "accountId": caller["Account"],
        "arn": caller["Arn"],
        "userId": caller["UserId"],
        "id": caller["Account"],
    }
    assert outputs["region"] == {
        "region": "eu-west-1",
        "name": "eu-west-1",  # deprecated in pulumi-aws 7 for `region`, still answered
        "endpoint": "ec2.eu-west-1.amazonaws.com",
        "id": "eu-west-1",
    }
    assert outputs["partition"] == {
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
        "reverseDnsPrefix": "com.amazonaws",
        "id": "aws",
    }


def test_a_data_source_without_translation_is_named(tmp_path, fresh):
    root = scratch.project(
        tmp_path, 'import pulumi_aws as aws\naws.get_availability_zones(state="available")\n'
    )
    with pytest.raises(DeployError, match=r"aws:index/getAvailabilityZones:getAvailabilityZones"):
        scratch.engine(root, fresh.endpoint_url).up()
