"""State is written after every step, as Pulumi checkpoints (issue 20, item 2).

A create that succeeded is recorded even when a later resource fails or the user presses
Ctrl-C, and a resource whose create failed after it existed (a bucket made, its tagging
refused) is recorded, so the next deploy updates it instead of failing "already exists".
"""

from __future__ import annotations

import json

import pytest

from localcloud.translations import iam as iam_translations
from localcloud.translations.base import DeployError
from tests.localcloud import scratch

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

TWO_ROLES = f"""
import pulumi
import pulumi_aws as aws

first = aws.iam.Role("first-role", name="first-role", assume_role_policy={TRUST!r})
aws.iam.Role("second-role", name="second-role", assume_role_policy={TRUST!r},
    opts=pulumi.ResourceOptions(depends_on=[first]))
"""

TAGGED_BUCKET = """
import pulumi
import pulumi_aws as aws

aws.s3.Bucket("data", bucket="tiny-data-bucket", tags=pulumi.Config("tiny").require_object("tags"))
"""


def test_ctrl_c_during_a_deploy_keeps_what_was_created_in_the_state(tmp_path, fresh, monkeypatch):
    root = scratch.project(tmp_path, TWO_ROLES)
    create = iam_translations.Role.create

    def interrupted(self, call, inputs):
        if inputs["name"] == "second-role" and not call.dry:
            raise KeyboardInterrupt
        return create(self, call, inputs)

    monkeypatch.setattr(iam_translations.Role, "create", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scratch.engine(root, fresh.endpoint_url).up()
    monkeypatch.undo()

    assert [r.id for r in scratch.state(root).resources.values()] == ["first-role"]
    again = scratch.engine(root, fresh.endpoint_url).up()
    assert sorted((o.op, o.name) for o in again.operations) == [
        ("create", "second-role"),
        ("same", "first-role"),
    ]
    names = sorted(r["RoleName"] for r in fresh.client("iam").list_roles()["Roles"])
    assert names == ["first-role", "second-role"]


def test_a_bucket_whose_tagging_is_refused_is_recorded_and_the_next_deploy_updates_it(tmp_path, fresh):
    root = scratch.project(tmp_path, TAGGED_BUCKET)
    s3 = fresh.client("s3")
    # S3 refuses tag keys in the reserved aws: prefix (InvalidTag) once the bucket exists.
    with pytest.raises(DeployError, match="InvalidTag"):
        scratch.engine(root, fresh.endpoint_url, tags={"aws:team": "ml"}).up()
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["tiny-data-bucket"]
    assert [r.id for r in scratch.state(root).resources.values()] == ["tiny-data-bucket"]

    fixed = scratch.engine(root, fresh.endpoint_url, tags={"team": "ml"}).up()
    assert [(o.op, o.name) for o in fixed.operations] == [("update", "data")]
    assert s3.get_bucket_tagging(Bucket="tiny-data-bucket")["TagSet"] == [{"Key": "team", "Value": "ml"}]
    again = scratch.engine(root, fresh.endpoint_url, tags={"team": "ml"}).up()
    assert [o.op for o in again.operations] == ["same"]


AFTER_A_FAILURE = f"""
import pulumi
import pulumi_aws as aws

taken = aws.iam.Role("taken-role", name="taken-role", assume_role_policy={TRUST!r})


async def once_the_role_is_settled():
    # The bucket reads nothing of the role; its name only becomes known once the role's
    # registration has ended, so it is registered after the role's create failed.
    try:
        await taken.urn.future()
    except Exception:
        pass
    return "tiny-later-bucket"


aws.s3.Bucket("later-bucket", bucket=pulumi.Output.from_input(once_the_role_is_settled()))
"""


def test_after_a_resource_fails_the_deploy_starts_no_other(tmp_path, fresh):
    """As `pulumi up` stops issuing steps once one failed: the unrelated bucket registered after
    the failure is not created, in AWS or in the state, and the error names the role."""
    root = scratch.project(tmp_path, AFTER_A_FAILURE)
    iam = fresh.client("iam")
    iam.create_role(RoleName="taken-role", AssumeRolePolicyDocument=TRUST)

    with pytest.raises(DeployError, match=r"taken-role.*EntityAlreadyExists"):
        scratch.engine(root, fresh.endpoint_url).up()
    assert fresh.client("s3").list_buckets()["Buckets"] == []
    assert scratch.state(root).resources == {}


def _collect_a_failed_future(exc: BaseException) -> None:
    """A future whose exception nobody retrieved, collected: asyncio logs it, as it does for
    each failed registration of a deploy."""
    import asyncio
    import gc

    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        future.set_exception(exc)
        del future
        gc.collect()
    finally:
        loop.close()


def test_a_failed_resource_is_reported_once_not_again_by_asyncio(caplog):
    import localcloud.engine  # noqa: F401  (installs the filter, as every deploy does)

    with caplog.at_level("ERROR", logger="asyncio"):
        _collect_a_failed_future(DeployError("second-role (aws:iam/role:Role): refused"))
        _collect_a_failed_future(KeyboardInterrupt())
        assert caplog.records == []
        # Anything else asyncio reports still reaches the user.
        _collect_a_failed_future(ValueError("a bug"))
    assert [r.getMessage().splitlines()[0] for r in caplog.records] == [
        "Future exception was never retrieved"
    ]
    assert isinstance(caplog.records[0].exc_info[1], ValueError)
