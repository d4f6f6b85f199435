"""SQS: the approval rule's dead-letter queue and its policy."""

from __future__ import annotations

from localcloud.translations import references
from localcloud.translations.base import PutTranslation, Translation, register

# Terraform's queue arguments and the queue attributes they set.
_ATTRIBUTES = {
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
}


def _value(value) -> str:
    # Numbers reach the engine as floats; queue attributes are strings of whole numbers.
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@register
class Queue(Translation):
    type = "aws:sqs/queue:Queue"
    force_new = frozenset({"name", "namePrefix", "fifoQueue"})
    name_input = "name"
    name_max_length = 80

    def create(self, call, inputs):
        references.kms_key(call, inputs.get("kmsMasterKeyId"), "kmsMasterKeyId")
        params = {
            "QueueName": inputs["name"],
            "Attributes": self._attributes(inputs) or None,
            "tags": dict(inputs.get("tags") or {}) or None,
        }
        url = call("sqs", "CreateQueue", **{k: v for k, v in params.items() if v is not None})["QueueUrl"]
        # The provider's id of a queue is its URL.
        return url, self._read(call, url)

    @staticmethod
    def _attributes(inputs) -> dict[str, str]:
        return {api: _value(inputs[tf]) for tf, api in _ATTRIBUTES.items() if inputs.get(tf) is not None}

    @staticmethod
    def _read(call, url) -> dict:
        found = call("sqs", "GetQueueAttributes", QueueUrl=url, AttributeNames=["QueueArn"])
        return {"arn": found["Attributes"]["QueueArn"], "url": url}

    def update(self, call, id_, olds, news, changed):
        if changed - set(_ATTRIBUTES) - {"tags"}:
            return super().update(call, id_, olds, news, changed)
        references.kms_key(call, news.get("kmsMasterKeyId"), "kmsMasterKeyId")
        attributes = {
            k: v for k, v in self._attributes(news).items() if k in {_ATTRIBUTES[c] for c in changed}
        }
        if attributes:
            call("sqs", "SetQueueAttributes", QueueUrl=id_, Attributes=attributes)
        if "tags" in changed and news.get("tags"):
            call("sqs", "TagQueue", QueueUrl=id_, Tags=dict(news["tags"]))
        return self._read(call, id_)

    def delete(self, call, id_, inputs):
        call("sqs", "DeleteQueue", QueueUrl=id_)


@register
class QueuePolicy(PutTranslation):
    type = "aws:sqs/queuePolicy:QueuePolicy"
    force_new = frozenset({"queueUrl"})

    def create(self, call, inputs):
        call(
            "sqs", "SetQueueAttributes", QueueUrl=inputs["queueUrl"], Attributes={"Policy": inputs["policy"]}
        )
        return inputs["queueUrl"], {}

    def delete(self, call, id_, inputs):
        if call.exists("sqs", "GetQueueUrl", QueueName=id_.rsplit("/", 1)[-1]):
            call("sqs", "SetQueueAttributes", QueueUrl=id_, Attributes={"Policy": ""})
