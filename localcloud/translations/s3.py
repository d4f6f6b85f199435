"""S3: the bucket and its settings (each its own resource, as in the provider), and objects.

Every bucket-settings resource's id is the bucket name, as the provider's is, and each is
one idempotent Put request; deleting one removes the setting (``Delete*``) where S3 has a
delete, and leaves the bucket as it is otherwise (public access block, ownership).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from localcloud.translations.base import PutTranslation, Translation, archive_bytes, register, tag_list


@register
class Bucket(Translation):
    type = "aws:s3/bucket:Bucket"
    force_new = frozenset({"bucket", "bucketPrefix"})
    name_input = "bucket"
    name_max_length = 63

    def create(self, call, inputs):
        name = inputs["bucket"]
        params: dict[str, Any] = {"Bucket": name}
        if call.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": call.region}
        call("s3", "CreateBucket", **params)
        call.created(name)
        self._tag(call, name, inputs.get("tags"))
        located = call("s3", "GetBucketLocation", Bucket=name)["LocationConstraint"] or "us-east-1"
        return name, {
            "arn": f"arn:aws:s3:::{name}",
            "bucketDomainName": f"{name}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{name}.s3.{located}.amazonaws.com",
            "region": located,
        }

    def update(self, call, id_, olds, news, changed):
        if changed - {"tags", "forceDestroy"}:
            return super().update(call, id_, olds, news, changed)
        if "tags" in changed:
            self._tag(call, id_, news.get("tags"))
            if not news.get("tags"):  # S3 replaces the whole tag set; none left is a delete
                call("s3", "DeleteBucketTagging", Bucket=id_)
        return {}

    @staticmethod
    def _tag(call, name: str, tags: dict[str, str] | None) -> None:
        if tags:
            call("s3", "PutBucketTagging", Bucket=name, Tagging={"TagSet": tag_list(tags)})

    def read(self, call, id_, inputs):
        return {} if call.exists("s3", "HeadBucket", Bucket=id_) else None

    def delete(self, call, id_, inputs):
        if inputs.get("forceDestroy"):
            _empty(call, id_)
        call("s3", "DeleteBucket", Bucket=id_)


def _empty(call, bucket: str) -> None:
    versions = call("s3", "ListObjectVersions", Bucket=bucket)
    doomed = [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])
    ]
    if doomed:
        call("s3", "DeleteObjects", Bucket=bucket, Delete={"Objects": doomed})


@register
class BucketVersioning(PutTranslation):
    type = "aws:s3/bucketVersioning:BucketVersioning"
    force_new = frozenset({"bucket", "expectedBucketOwner"})

    def create(self, call, inputs):
        call(
            "s3",
            "PutBucketVersioning",
            Bucket=inputs["bucket"],
            VersioningConfiguration=inputs["versioningConfiguration"],
        )
        return inputs["bucket"], {}

    def delete(self, call, id_, inputs):
        # S3 cannot turn versioning off once on; the provider suspends it.
        call("s3", "PutBucketVersioning", Bucket=id_, VersioningConfiguration={"Status": "Suspended"})


@register
class BucketServerSideEncryption(PutTranslation):
    type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    force_new = frozenset({"bucket", "expectedBucketOwner"})

    def create(self, call, inputs):
        call(
            "s3",
            "PutBucketEncryption",
            Bucket=inputs["bucket"],
            ServerSideEncryptionConfiguration={"Rules": inputs["rules"]},
        )
        return inputs["bucket"], {}

    def delete(self, call, id_, inputs):
        call("s3", "DeleteBucketEncryption", Bucket=id_)


@register
class BucketPublicAccessBlock(PutTranslation):
    type = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    force_new = frozenset({"bucket"})
    _FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")

    def create(self, call, inputs):
        config = {flag: bool(inputs.get(flag, False)) for flag in self._FLAGS}
        call("s3", "PutPublicAccessBlock", Bucket=inputs["bucket"], PublicAccessBlockConfiguration=config)
        return inputs["bucket"], {}

    def delete(self, call, id_, inputs):
        call("s3", "DeletePublicAccessBlock", Bucket=id_)


@register
class BucketOwnershipControls(PutTranslation):
    type = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
    force_new = frozenset({"bucket"})

    def create(self, call, inputs):
        call(
            "s3",
            "PutBucketOwnershipControls",
            Bucket=inputs["bucket"],
            OwnershipControls={"Rules": [inputs["rule"]]},
        )
        return inputs["bucket"], {}

    def delete(self, call, id_, inputs):
        call("s3", "DeleteBucketOwnershipControls", Bucket=id_)


@register
class BucketPolicy(PutTranslation):
    type = "aws:s3/bucketPolicy:BucketPolicy"
    force_new = frozenset({"bucket"})

    def create(self, call, inputs):
        call("s3", "PutBucketPolicy", Bucket=inputs["bucket"], Policy=inputs["policy"])
        return inputs["bucket"], {}

    def delete(self, call, id_, inputs):
        call("s3", "DeleteBucketPolicy", Bucket=id_)


@register
class BucketLifecycleConfiguration(PutTranslation):
    type = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    force_new = frozenset({"bucket", "expectedBucketOwner"})

    def create(self, call, inputs):
        call(
            "s3",
            "PutBucketLifecycleConfiguration",
            Bucket=inputs["bucket"],
            LifecycleConfiguration={"Rules": inputs["rules"]},
        )
        return inputs["bucket"], {}

    def delete(self, call, id_, inputs):
        call("s3", "DeleteBucketLifecycle", Bucket=id_)


@register
class BucketNotification(PutTranslation):
    type = "aws:s3/bucketNotification:BucketNotification"
    force_new = frozenset({"bucket"})

    def create(self, call, inputs):
        unsupported = {"lambdaFunctions", "queues", "topics"} & {k for k, v in inputs.items() if v}
        if unsupported:
            raise call.fail(f"notification targets {sorted(unsupported)} have no translation yet")
        config = {"EventBridgeConfiguration": {}} if inputs.get("eventbridge") else {}
        call(
            "s3",
            "PutBucketNotificationConfiguration",
            Bucket=inputs["bucket"],
            NotificationConfiguration=config,
        )
        return inputs["bucket"], {}

    def delete(self, call, id_, inputs):
        call("s3", "PutBucketNotificationConfiguration", Bucket=id_, NotificationConfiguration={})


@register
class BucketObjectv2(PutTranslation):
    type = "aws:s3/bucketObjectv2:BucketObjectv2"
    force_new = frozenset({"bucket", "key"})

    def create(self, call, inputs):
        body = _body(call, inputs)
        params: dict[str, Any] = {"Bucket": inputs["bucket"], "Key": inputs["key"], "Body": body}
        for member, name in (
            ("ContentType", "contentType"),
            ("ServerSideEncryption", "serverSideEncryption"),
            ("SSEKMSKeyId", "kmsKeyId"),
            ("BucketKeyEnabled", "bucketKeyEnabled"),
            ("CacheControl", "cacheControl"),
        ):
            if inputs.get(name) is not None:
                params[member] = inputs[name]
        if inputs.get("tags"):
            params["Tagging"] = urlencode(sorted(inputs["tags"].items()))
        answer = call("s3", "PutObject", **params)
        return f"{inputs['bucket']}/{inputs['key']}", {
            "etag": answer.get("ETag", "").strip('"'),
            "versionId": answer.get("VersionId", ""),
            "arn": f"arn:aws:s3:::{inputs['bucket']}/{inputs['key']}",
        }

    def delete(self, call, id_, inputs):
        # The provider deletes every version of the key, so a versioned bucket is left empty.
        bucket, key = inputs["bucket"], inputs["key"]
        listed = call("s3", "ListObjectVersions", Bucket=bucket, Prefix=key)
        versions = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])
            if v["Key"] == key
        ]
        if versions:
            call("s3", "DeleteObjects", Bucket=bucket, Delete={"Objects": versions})


def _body(call, inputs: dict[str, Any]) -> bytes:
    if inputs.get("content") is not None:
        return inputs["content"].encode()
    source = inputs.get("source") or {}
    if source.get("kind") == "file":
        return Path(source["path"]).read_bytes()
    if source.get("kind") == "archive":
        return archive_bytes(source)
    raise call.fail("source: an object needs content, a file or an archive of files and strings")
