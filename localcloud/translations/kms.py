"""KMS: the platform's customer managed key and its alias."""

from __future__ import annotations

from localcloud.translations.base import Translation, Unknown, register, retag, tag_list


@register
class Key(Translation):
    type = "aws:kms/key:Key"
    force_new = frozenset(
        {"customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId", "customKeyStoreId"}
    )

    def create(self, call, inputs):
        params = {
            "Description": inputs.get("description"),
            "Policy": inputs.get("policy"),
            "KeyUsage": inputs.get("keyUsage"),
            "KeySpec": inputs.get("customerMasterKeySpec"),
            "Tags": tag_list(inputs.get("tags"), "TagKey", "TagValue") or None,
        }
        metadata = call("kms", "CreateKey", **{k: v for k, v in params.items() if v is not None})[
            "KeyMetadata"
        ]
        key_id = metadata["KeyId"]
        call.created(key_id)
        if inputs.get("enableKeyRotation"):
            call("kms", "EnableKeyRotation", KeyId=key_id)
        return key_id, self._read(call, key_id)

    @staticmethod
    def _read(call, key_id: str) -> dict:
        metadata = call("kms", "DescribeKey", KeyId=key_id)["KeyMetadata"]
        return {"arn": metadata["Arn"], "keyId": metadata["KeyId"]}

    def update(self, call, id_, olds, news, changed):
        if changed - {"description", "policy", "enableKeyRotation", "tags", "deletionWindowInDays"}:
            return super().update(call, id_, olds, news, changed)
        if "description" in changed:
            call("kms", "UpdateKeyDescription", KeyId=id_, Description=news.get("description", ""))
        if "policy" in changed and news.get("policy"):
            call("kms", "PutKeyPolicy", KeyId=id_, PolicyName="default", Policy=news["policy"])
        if "enableKeyRotation" in changed:
            operation = "EnableKeyRotation" if news.get("enableKeyRotation") else "DisableKeyRotation"
            call("kms", operation, KeyId=id_)
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("kms", "TagResource", KeyId=id_, Tags=tag_list(tags, "TagKey", "TagValue")),
                lambda keys: call("kms", "UntagResource", KeyId=id_, TagKeys=keys),
            )
        return self._read(call, id_)

    def read(self, call, id_, inputs):
        if not call.exists("kms", "DescribeKey", KeyId=id_):
            return None
        # A key pending deletion is gone for the provider.
        state = call("kms", "DescribeKey", KeyId=id_)["KeyMetadata"].get("KeyState")
        return None if state == "PendingDeletion" else {}

    def delete(self, call, id_, inputs):
        window = inputs.get("deletionWindowInDays") or 30.0
        call("kms", "ScheduleKeyDeletion", KeyId=id_, PendingWindowInDays=window)


@register
class Alias(Translation):
    type = "aws:kms/alias:Alias"
    force_new = frozenset({"name", "namePrefix"})
    name_input = "name"

    def create(self, call, inputs):
        call("kms", "CreateAlias", AliasName=inputs["name"], TargetKeyId=inputs["targetKeyId"])
        return inputs["name"], self._read(call, inputs["name"])

    @staticmethod
    def _read(call, name: str) -> dict:
        aliases = call("kms", "ListAliases")["Aliases"]
        found = next((a for a in aliases if a["AliasName"] == name), None)
        if found is None:
            return {"arn": Unknown()}  # a preview: nothing was made to read
        return {
            "arn": found["AliasArn"],
            "targetKeyArn": f"arn:aws:kms:{call.region}:{call.account}:key/{found['TargetKeyId']}",
        }

    def update(self, call, id_, olds, news, changed):
        call("kms", "UpdateAlias", AliasName=id_, TargetKeyId=news["targetKeyId"])
        return self._read(call, id_)

    def delete(self, call, id_, inputs):
        call("kms", "DeleteAlias", AliasName=id_)
