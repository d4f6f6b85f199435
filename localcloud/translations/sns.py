"""SNS: the alarm topic and its policy."""

from __future__ import annotations

import json

from localcloud.translations import references
from localcloud.translations.base import Translation, register, retag, tag_list

_ATTRIBUTES = {
    "kmsMasterKeyId": "KmsMasterKeyId",
    "displayName": "DisplayName",
    "deliveryPolicy": "DeliveryPolicy",
}


@register
class Topic(Translation):
    type = "aws:sns/topic:Topic"
    force_new = frozenset({"name", "namePrefix", "fifoTopic"})
    name_input = "name"
    name_max_length = 256

    def create(self, call, inputs):
        references.kms_key(call, inputs.get("kmsMasterKeyId"), "kmsMasterKeyId")
        attributes = {api: str(inputs[tf]) for tf, api in _ATTRIBUTES.items() if inputs.get(tf) is not None}
        params = {
            "Name": inputs["name"],
            "Attributes": attributes or None,
            "Tags": tag_list(inputs.get("tags")) or None,
        }
        arn = call("sns", "CreateTopic", **{k: v for k, v in params.items() if v is not None})["TopicArn"]
        # The provider's id of a topic is its ARN.
        return arn, {"arn": arn, "owner": call.account}

    def update(self, call, id_, olds, news, changed):
        if changed - set(_ATTRIBUTES) - {"tags"}:
            return super().update(call, id_, olds, news, changed)
        for tf in sorted(changed & set(_ATTRIBUTES)):
            call(
                "sns",
                "SetTopicAttributes",
                TopicArn=id_,
                AttributeName=_ATTRIBUTES[tf],
                AttributeValue=str(news.get(tf) or ""),
            )
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("sns", "TagResource", ResourceArn=id_, Tags=tag_list(tags)),
                lambda keys: call("sns", "UntagResource", ResourceArn=id_, TagKeys=keys),
            )
        return {"arn": id_, "owner": call.account}

    def read(self, call, id_, inputs):
        return {} if call.exists("sns", "GetTopicAttributes", TopicArn=id_) else None

    def delete(self, call, id_, inputs, outputs):
        call("sns", "DeleteTopic", TopicArn=id_)


@register
class TopicPolicy(Translation):
    type = "aws:sns/topicPolicy:TopicPolicy"
    force_new = frozenset({"arn"})

    def create(self, call, inputs):
        call(
            "sns",
            "SetTopicAttributes",
            TopicArn=inputs["arn"],
            AttributeName="Policy",
            AttributeValue=inputs["policy"],
        )
        return inputs["arn"], {"owner": call.account}

    def update(self, call, id_, olds, news, changed):
        return self.create(call, news)[1]

    def delete(self, call, id_, inputs, outputs):
        # The provider puts back the policy a new topic has: its owner may do everything.
        default = {
            "Version": "2008-10-17",
            "Id": "__default_policy_ID",
            "Statement": [
                {
                    "Sid": "__default_statement_ID",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "SNS:Publish",
                        "SNS:Subscribe",
                        "SNS:GetTopicAttributes",
                        "SNS:SetTopicAttributes",
                    ],
                    "Resource": id_,
                    "Condition": {"StringEquals": {"AWS:SourceOwner": call.account}},
                }
            ],
        }
        if call.exists("sns", "GetTopicAttributes", TopicArn=id_):
            call(
                "sns",
                "SetTopicAttributes",
                TopicArn=id_,
                AttributeName="Policy",
                AttributeValue=json.dumps(default),
            )
