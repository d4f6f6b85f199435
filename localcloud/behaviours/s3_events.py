"""S3 → EventBridge: buckets with EventBridge notifications on send "Object Created"/"Object Deleted".

Replaces moto's sender, which matched rules itself and delivered to every rule's targets
(ignoring patterns for some targets, swallowing the errors of others): the event now goes through
:func:`localcloud.behaviours.events.emit` like any other, in S3's documented detail shape
(``bucket.name``, ``object.key/size/etag/version-id/sequencer``, ``reason`` such as ``PutObject``).

The object's key goes into the event as it is, neither URL-encoded nor decoded: S3's user guide
says the key of the notification messages it sends to SNS, SQS and Lambda "is URL encoded. For
example, 'red flower.jpg' becomes 'red+flower.jpg'" (Event message structure), while its
EventBridge event message structure (``detail.object.key``, "ev-events") says no such thing. A
consumer that decoded an EventBridge key would read ``a+b.csv`` as ``a b.csv``; the ingestion rule
passes the key unchanged, and tests/localcloud/test_upload_keys.py ingests keys with a space, a
``+`` and a literal ``%2B``.

Not emulated: the request id and source IP are fixed placeholders; restore, tiering and ACL events.
"""

from __future__ import annotations

import itertools
from typing import Any

from moto.s3 import notifications

from localcloud.behaviours import events
from localcloud.behaviours.patching import Patcher

# S3's "reason" by moto's event name suffix (s3:ObjectCreated:Put → PutObject).
_REASONS = {
    "Put": "PutObject",
    "Post": "POST Object",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
    "Delete": "DeleteObject",
    "DeleteMarkerCreated": "DeleteObject",
}
_sequence = itertools.count(1)


def _send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    detail_type = notifications._detail_type(event_name)
    if detail_type not in ("Object Created", "Object Deleted"):
        return
    # The key as stored: EventBridge events carry it unencoded (see the module docstring).
    obj: dict[str, Any] = {"key": key.name, "sequencer": f"{next(_sequence):016X}"}
    if detail_type == "Object Created":
        obj |= {"size": key.size, "etag": key.etag.replace('"', "")}
    if getattr(key, "version_id", None) and key.version_id != "null":
        obj["version-id"] = key.version_id
    events.emit(
        account_id,
        bucket.region_name,
        source="aws.s3",
        detail_type=detail_type,
        resources=[bucket.arn],
        detail={
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": "EMULATOR0000000",
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": _REASONS.get(event_name.rsplit(":", 1)[-1], event_name.rsplit(":", 1)[-1]),
        },
    )


def install(patcher: Patcher) -> None:
    patcher.set(notifications, "_send_event_bridge_message", _send)
