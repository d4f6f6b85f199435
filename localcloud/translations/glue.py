"""Glue: the data catalog database of the feature group's offline store."""

from __future__ import annotations

from localcloud.translations.base import Translation, register, retag


@register
class CatalogDatabase(Translation):
    type = "aws:glue/catalogDatabase:CatalogDatabase"
    force_new = frozenset({"name", "catalogId"})
    name_input = "name"
    name_max_length = 255

    @staticmethod
    def _database(inputs) -> dict:
        database = {
            "Name": inputs["name"],
            "Description": inputs.get("description"),
            "LocationUri": inputs.get("locationUri"),
            "Parameters": inputs.get("parameters"),
        }
        return {k: v for k, v in database.items() if v is not None}

    def create(self, call, inputs):
        params = {"DatabaseInput": self._database(inputs), "Tags": inputs.get("tags") or None}
        call("glue", "CreateDatabase", **{k: v for k, v in params.items() if v is not None})
        found = call("glue", "GetDatabase", Name=inputs["name"])["Database"]
        catalog = found.get("CatalogId", call.account)
        # The provider's id is "<catalog>:<name>"; Glue returns no ARN, the provider builds it.
        return f"{catalog}:{inputs['name']}", {
            "arn": f"arn:aws:glue:{call.region}:{catalog}:database/{inputs['name']}",
            "catalogId": catalog,
        }

    def update(self, call, id_, olds, news, changed):
        if changed - {"description", "locationUri", "parameters", "tags"}:
            return super().update(call, id_, olds, news, changed)
        if changed - {"tags"}:
            call("glue", "UpdateDatabase", Name=news["name"], DatabaseInput=self._database(news))
        if "tags" in changed:
            catalog = id_.split(":", 1)[0]
            arn = f"arn:aws:glue:{call.region}:{catalog}:database/{news['name']}"
            retag(
                olds,
                news,
                lambda tags: call("glue", "TagResource", ResourceArn=arn, TagsToAdd=tags),
                lambda keys: call("glue", "UntagResource", ResourceArn=arn, TagsToRemove=keys),
            )
        return {}

    def read(self, call, id_, inputs):
        return {} if call.exists("glue", "GetDatabase", Name=inputs["name"]) else None

    def delete(self, call, id_, inputs):
        call("glue", "DeleteDatabase", Name=inputs["name"])
