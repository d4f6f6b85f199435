"""IAM: roles and their inline policies."""

from __future__ import annotations

from localcloud.translations.base import Translation, register, retag, tag_list


@register
class Role(Translation):
    type = "aws:iam/role:Role"
    force_new = frozenset({"name", "namePrefix", "path"})
    name_input = "name"
    name_max_length = 64

    def create(self, call, inputs):
        params = {
            "RoleName": inputs["name"],
            "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
            "Description": inputs.get("description"),
            "Path": inputs.get("path"),
            "MaxSessionDuration": inputs.get("maxSessionDuration"),
            "PermissionsBoundary": inputs.get("permissionsBoundary"),
            "Tags": tag_list(inputs.get("tags")) or None,
        }
        call("iam", "CreateRole", **{k: v for k, v in params.items() if v is not None})
        return inputs["name"], self._read(call, inputs["name"])

    @staticmethod
    def _read(call, name: str) -> dict:
        role = call("iam", "GetRole", RoleName=name)["Role"]
        return {"arn": role["Arn"], "uniqueId": role["RoleId"], "name": role["RoleName"]}

    def update(self, call, id_, olds, news, changed):
        if changed - {"assumeRolePolicy", "description", "maxSessionDuration", "tags", "permissionsBoundary"}:
            return super().update(call, id_, olds, news, changed)
        if "permissionsBoundary" in changed:
            if news.get("permissionsBoundary"):
                call(
                    "iam",
                    "PutRolePermissionsBoundary",
                    RoleName=id_,
                    PermissionsBoundary=news["permissionsBoundary"],
                )
            else:
                call("iam", "DeleteRolePermissionsBoundary", RoleName=id_)
        if "assumeRolePolicy" in changed:
            call("iam", "UpdateAssumeRolePolicy", RoleName=id_, PolicyDocument=news["assumeRolePolicy"])
        if changed & {"description", "maxSessionDuration"}:
            params = {
                "Description": news.get("description"),
                "MaxSessionDuration": news.get("maxSessionDuration"),
            }
            call("iam", "UpdateRole", RoleName=id_, **{k: v for k, v in params.items() if v is not None})
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("iam", "TagRole", RoleName=id_, Tags=tag_list(tags)),
                lambda keys: call("iam", "UntagRole", RoleName=id_, TagKeys=keys),
            )
        return self._read(call, id_)

    def read(self, call, id_, inputs):
        return {} if call.exists("iam", "GetRole", RoleName=id_) else None

    def delete(self, call, id_, inputs):
        call("iam", "DeleteRole", RoleName=id_)


@register
class RolePolicy(Translation):
    type = "aws:iam/rolePolicy:RolePolicy"
    force_new = frozenset({"name", "namePrefix", "role"})
    name_input = "name"
    name_max_length = 128

    def create(self, call, inputs):
        call(
            "iam",
            "PutRolePolicy",
            RoleName=inputs["role"],
            PolicyName=inputs["name"],
            PolicyDocument=inputs["policy"],
        )
        # The provider's id for an inline policy is "<role>:<policy>".
        return f"{inputs['role']}:{inputs['name']}", {}

    def update(self, call, id_, olds, news, changed):
        return self.create(call, news)[1]

    def read(self, call, id_, inputs):
        found = call.exists("iam", "GetRolePolicy", RoleName=inputs["role"], PolicyName=inputs["name"])
        return {} if found else None

    def delete(self, call, id_, inputs):
        call("iam", "DeleteRolePolicy", RoleName=inputs["role"], PolicyName=inputs["name"])


@register
class OpenIdConnectProvider(Translation):
    """The bootstrap's GitLab OIDC provider: the URL is its identity, the rest updates in place."""

    type = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
    force_new = frozenset({"url"})

    def create(self, call, inputs):
        params = {
            "Url": inputs["url"],
            "ClientIDList": inputs.get("clientIdLists") or None,
            "ThumbprintList": inputs.get("thumbprintLists") or None,
            "Tags": tag_list(inputs.get("tags")) or None,
        }
        arn = call(
            "iam", "CreateOpenIDConnectProvider", **{k: v for k, v in params.items() if v is not None}
        )["OpenIDConnectProviderArn"]
        return arn, self._read(call, arn)

    @staticmethod
    def _read(call, arn: str) -> dict:
        found = call("iam", "GetOpenIDConnectProvider", OpenIDConnectProviderArn=arn)
        return {
            "arn": arn,
            "clientIdLists": found.get("ClientIDList", []),
            "thumbprintLists": found.get("ThumbprintList", []),
        }

    def update(self, call, id_, olds, news, changed):
        if changed - {"clientIdLists", "thumbprintLists", "tags"}:
            return super().update(call, id_, olds, news, changed)
        old_ids, new_ids = set(olds.get("clientIdLists") or []), set(news.get("clientIdLists") or [])
        for client in sorted(new_ids - old_ids):
            call("iam", "AddClientIDToOpenIDConnectProvider", OpenIDConnectProviderArn=id_, ClientID=client)
        for client in sorted(old_ids - new_ids):
            call(
                "iam",
                "RemoveClientIDFromOpenIDConnectProvider",
                OpenIDConnectProviderArn=id_,
                ClientID=client,
            )
        if "thumbprintLists" in changed:
            call(
                "iam",
                "UpdateOpenIDConnectProviderThumbprint",
                OpenIDConnectProviderArn=id_,
                ThumbprintList=news.get("thumbprintLists") or [],
            )
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call(
                    "iam", "TagOpenIDConnectProvider", OpenIDConnectProviderArn=id_, Tags=tag_list(tags)
                ),
                lambda keys: call(
                    "iam", "UntagOpenIDConnectProvider", OpenIDConnectProviderArn=id_, TagKeys=keys
                ),
            )
        return self._read(call, id_)

    def read(self, call, id_, inputs):
        return {} if call.exists("iam", "GetOpenIDConnectProvider", OpenIDConnectProviderArn=id_) else None

    def delete(self, call, id_, inputs):
        call("iam", "DeleteOpenIDConnectProvider", OpenIDConnectProviderArn=id_)


@register
class ManagedPolicy(Translation):
    """A customer managed policy (the bootstrap's permissions boundaries)."""

    type = "aws:iam/policy:Policy"
    force_new = frozenset({"name", "namePrefix", "path", "description"})
    name_input = "name"
    name_max_length = 128

    def create(self, call, inputs):
        params = {
            "PolicyName": inputs["name"],
            "PolicyDocument": inputs["policy"],
            "Path": inputs.get("path"),
            "Description": inputs.get("description"),
            "Tags": tag_list(inputs.get("tags")) or None,
        }
        policy = call("iam", "CreatePolicy", **{k: v for k, v in params.items() if v is not None})["Policy"]
        # The provider's id for a managed policy is its ARN.
        return policy["Arn"], {
            "arn": policy["Arn"],
            "policyId": policy["PolicyId"],
            "name": policy["PolicyName"],
        }

    def update(self, call, id_, olds, news, changed):
        if changed - {"policy", "tags"}:
            return super().update(call, id_, olds, news, changed)
        if "policy" in changed:
            # IAM keeps at most five versions: drop the oldest non-default one first, as the provider does.
            versions = call("iam", "ListPolicyVersions", PolicyArn=id_)["Versions"]
            old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            if len(versions) >= 5 and old:
                call("iam", "DeletePolicyVersion", PolicyArn=id_, VersionId=old[0]["VersionId"])
            call(
                "iam", "CreatePolicyVersion", PolicyArn=id_, PolicyDocument=news["policy"], SetAsDefault=True
            )
        if "tags" in changed:
            gone = sorted(set(olds.get("tags") or {}) - set(news.get("tags") or {}))
            if gone:
                call("iam", "UntagPolicy", PolicyArn=id_, TagKeys=gone)
            if news.get("tags"):
                call("iam", "TagPolicy", PolicyArn=id_, Tags=tag_list(news["tags"]))
        return {}

    def delete(self, call, id_, inputs):
        for version in call("iam", "ListPolicyVersions", PolicyArn=id_)["Versions"]:
            if not version["IsDefaultVersion"]:
                call("iam", "DeletePolicyVersion", PolicyArn=id_, VersionId=version["VersionId"])
        call("iam", "DeletePolicy", PolicyArn=id_)
