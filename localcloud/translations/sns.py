"""SNS: the alarm topic, its policy and its (email) subscriptions."""

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

    def delete(self, call, id_, inputs):
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

    def delete(self, call, id_, inputs):
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


_SUBSCRIPTION_ATTRIBUTES = {
    "filterPolicy": "FilterPolicy",
    "filterPolicyScope": "FilterPolicyScope",
    "rawMessageDelivery": "RawMessageDelivery",
    "redrivePolicy": "RedrivePolicy",
    "deliveryPolicy": "DeliveryPolicy",
    "subscriptionRoleArn": "SubscriptionRoleArn",
}


@register
class TopicSubscription(Translation):
    """A subscription; an email endpoint stays pending until its owner confirms, as on AWS."""

    type = "aws:sns/topicSubscription:TopicSubscription"
    force_new = frozenset({"topic", "protocol", "endpoint"})

    def create(self, call, inputs):
        topic = inputs["topic"]
        if not call.exists("sns", "GetTopicAttributes", TopicArn=topic):
            raise call.fail(f"topic refers to SNS topic {topic!r}, which does not exist")
        attributes = {
            api: str(inputs[tf]).lower() if isinstance(inputs[tf], bool) else str(inputs[tf])
            for tf, api in _SUBSCRIPTION_ATTRIBUTES.items()
            if inputs.get(tf) is not None
        }
        params = {
            "TopicArn": topic,
            "Protocol": inputs["protocol"],
            "Endpoint": inputs["endpoint"],
            "Attributes": attributes or None,
            "ReturnSubscriptionArn": True,
        }
        arn = call("sns", "Subscribe", **{k: v for k, v in params.items() if v is not None})[
            "SubscriptionArn"
        ]
        # The provider's id of a subscription is its ARN.
        return arn, {"arn": arn, "ownerId": call.account, **self._pending(call, arn)}

    @staticmethod
    def _pending(call, arn: str) -> dict:
        attributes = call("sns", "GetSubscriptionAttributes", SubscriptionArn=arn)["Attributes"]
        return {"pendingConfirmation": attributes.get("PendingConfirmation") == "true"}

    def update(self, call, id_, olds, news, changed):
        for tf in sorted(changed & set(_SUBSCRIPTION_ATTRIBUTES)):
            value = news.get(tf)
            call(
                "sns",
                "SetSubscriptionAttributes",
                SubscriptionArn=id_,
                AttributeName=_SUBSCRIPTION_ATTRIBUTES[tf],
                AttributeValue=""
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value),
            )
        if changed - set(_SUBSCRIPTION_ATTRIBUTES):
            return super().update(call, id_, olds, news, changed - set(_SUBSCRIPTION_ATTRIBUTES))
        return {"arn": id_, "ownerId": call.account, **self._pending(call, id_)}

    def delete(self, call, id_, inputs):
        call("sns", "Unsubscribe", SubscriptionArn=id_)
